package store

import (
	"context"
	"net/netip"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// CreateSubnet creates a subnet inside its VPC's CIDR, overlapping no
// sibling, associated with rtbRef or else the VPC's main route table.
func (s *Store) CreateSubnet(ctx context.Context, vpcRef string, cidr netip.Prefix, name, rtbRef string) (*pb.Subnet, error) {
	var out *pb.Subnet
	err := retry(ctx, "create subnet", func() error {
		vpc := new(pb.Vpc)
		vpcRev, err := s.load(ctx, model.KindVPC, vpcRef, vpc)
		if err != nil {
			return err
		}
		if err := s.checkSubnetCIDR(ctx, vpc, cidr); err != nil {
			return err
		}
		rtbID := vpc.MainRouteTableId
		if rtbRef != "" {
			rtb, err := s.GetRouteTable(ctx, rtbRef)
			if err != nil {
				return err
			}
			if rtb.VpcId != vpc.Id {
				return model.Invalidf("route table %s belongs to %s, not to %s", rtb.Id, rtb.VpcId, vpc.Id)
			}
			rtbID = rtb.Id
		}
		sn := &pb.Subnet{
			Id: model.NewID(model.KindSubnet), Name: name, VpcId: vpc.Id, Cidr: cidr.String(),
			RouteTableId: rtbID, Gateway: model.Gateway(cidr).String(), CreateTime: timestamppb.Now(),
			NetworkAclId: vpc.DefaultNetworkAclId,
		}
		var t txn
		// Rewriting the VPC serializes subnet creation within it, so two
		// overlapping subnets cannot both pass the check above.
		t.unchanged(s.resKey(model.KindVPC, vpc.Id), vpcRev)
		t.putProto(s.resKey(model.KindVPC, vpc.Id), vpc)
		t.present(s.resKey(model.KindRouteTable, rtbID))
		if name != "" {
			t.absent(s.nameKey(model.KindSubnet, name))
			t.put(s.nameKey(model.KindSubnet, name), sn.Id)
		}
		t.putProto(s.resKey(model.KindSubnet, sn.Id), sn)
		t.put(s.refKey(vpc.Id, sn.Id), "")
		t.put(s.refKey(rtbID, sn.Id), "")
		if sn.NetworkAclId != "" {
			t.put(s.refKey(sn.NetworkAclId, sn.Id), "")
		}
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.nameFree(ctx, model.KindSubnet, name); err != nil {
				return err
			}
			return errRetry
		}
		out = sn
		return nil
	})
	return out, err
}

func (s *Store) checkSubnetCIDR(ctx context.Context, vpc *pb.Vpc, cidr netip.Prefix) error {
	vpcCIDR := netip.MustParsePrefix(vpc.Cidr)
	if cidr.Bits() < vpcCIDR.Bits() || !vpcCIDR.Contains(cidr.Addr()) {
		return model.Invalidf("subnet %s is not inside VPC %s (%s)", cidr, vpc.Id, vpc.Cidr)
	}
	siblings, err := s.ListSubnets(ctx, vpc.Id)
	if err != nil {
		return err
	}
	for _, sib := range siblings {
		if p := netip.MustParsePrefix(sib.Cidr); p.Overlaps(cidr) {
			return model.Existsf("subnet %s overlaps %s (%s)", cidr, sib.Id, sib.Cidr)
		}
	}
	return nil
}

// GetSubnet reads a subnet by name or id.
func (s *Store) GetSubnet(ctx context.Context, ref string) (*pb.Subnet, error) {
	sn := new(pb.Subnet)
	_, err := s.load(ctx, model.KindSubnet, ref, sn)
	return sn, err
}

// ListSubnets lists subnets, of one VPC when vpcID is set, by CIDR.
func (s *Store) ListSubnets(ctx context.Context, vpcID string) ([]*pb.Subnet, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindSubnet))+"/", func() *pb.Subnet { return new(pb.Subnet) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(sn *pb.Subnet) bool { return sn.VpcId != vpcID })
	}
	slices.SortFunc(all, func(a, b *pb.Subnet) int {
		if a.VpcId != b.VpcId {
			return compareNames(a.VpcId, "", b.VpcId, "")
		}
		return netip.MustParsePrefix(a.Cidr).Addr().Compare(netip.MustParsePrefix(b.Cidr).Addr())
	})
	return all, nil
}

// DeleteSubnet deletes a subnet that holds no instances.
func (s *Store) DeleteSubnet(ctx context.Context, ref string) error {
	return retry(ctx, "delete subnet", func() error { return s.deleteSubnetOnce(ctx, ref) })
}

func (s *Store) deleteSubnetOnce(ctx context.Context, ref string) error {
	sn := new(pb.Subnet)
	rev, err := s.load(ctx, model.KindSubnet, ref, sn)
	if err != nil {
		return err
	}
	var t txn
	t.unchanged(s.resKey(model.KindSubnet, sn.Id), rev)
	t.emptyPrefix(s.refPrefix(sn.Id))
	if err := s.dropFlowLogs(ctx, sn.Id, &t); err != nil {
		return err
	}
	t.del(s.resKey(model.KindSubnet, sn.Id))
	if sn.Name != "" {
		t.del(s.nameKey(model.KindSubnet, sn.Name))
	}
	t.del(s.refKey(sn.VpcId, sn.Id))
	t.del(s.refKey(sn.RouteTableId, sn.Id))
	if sn.NetworkAclId != "" {
		t.del(s.refKey(sn.NetworkAclId, sn.Id))
	}
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		s.ipam.forget(sn.Id)
		return err
	}
	in, err := s.blockers(ctx, sn.Id)
	if err != nil {
		return err
	}
	if in != "" {
		return model.Preconditionf("subnet %s still has instances %s; terminate them first", sn.Id, in)
	}
	return errRetry
}

// AssociateRouteTable moves a subnet to another route table of its VPC,
// in one transaction: the subnet names the new table, and the reference
// that keeps a table from being deleted under its subnets moves with it.
func (s *Store) AssociateRouteTable(ctx context.Context, subnetRef, rtbRef string) (*pb.Subnet, error) {
	var out *pb.Subnet
	err := retry(ctx, "associate route table", func() error {
		sn := new(pb.Subnet)
		rev, err := s.load(ctx, model.KindSubnet, subnetRef, sn)
		if err != nil {
			return err
		}
		rtb := new(pb.RouteTable)
		if _, err := s.load(ctx, model.KindRouteTable, rtbRef, rtb); err != nil {
			return err
		}
		if rtb.VpcId != sn.VpcId {
			return model.Invalidf("route table %s belongs to %s, and subnet %s to %s: a subnet can only use a route table of its own VPC", rtb.Id, rtb.VpcId, sn.Id, sn.VpcId)
		}
		if rtb.Id == sn.RouteTableId {
			out = sn // already there: nothing to change
			return nil
		}
		old := sn.RouteTableId
		sn.RouteTableId = rtb.Id
		var t txn
		t.unchanged(s.resKey(model.KindSubnet, sn.Id), rev)
		// A table being deleted checks that no reference to it is left;
		// this one must exist at commit, so the two cannot both succeed.
		t.present(s.resKey(model.KindRouteTable, rtb.Id))
		t.putProto(s.resKey(model.KindSubnet, sn.Id), sn)
		t.del(s.refKey(old, sn.Id))
		t.put(s.refKey(rtb.Id, sn.Id), "")
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			return errRetry
		}
		out = sn
		return nil
	})
	return out, err
}
