package store

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// DefaultACLRule is the number of the allow-all entries of a VPC's default
// ACL, as on AWS.
const DefaultACLRule = 100

// defaultACL is a VPC's default network ACL: everything allowed both ways.
func defaultACL(vpc *pb.Vpc) *pb.NetworkAcl {
	all := func() *pb.NetworkAclEntry {
		return &pb.NetworkAclEntry{RuleNumber: DefaultACLRule, Protocol: model.ProtoAll, FromPort: model.AnyPort, ToPort: model.AnyPort, Cidr: AnyCIDR, Allow: true}
	}
	return &pb.NetworkAcl{
		Id: vpc.DefaultNetworkAclId, VpcId: vpc.Id, IsDefault: true, CreateTime: vpc.CreateTime,
		Inbound: []*pb.NetworkAclEntry{all()}, Outbound: []*pb.NetworkAclEntry{all()},
	}
}

// CreateNetworkACL creates a custom ACL in a VPC. As on AWS, it has no
// entries: it denies everything until entries are added.
func (s *Store) CreateNetworkACL(ctx context.Context, vpcRef, name string) (*pb.NetworkAcl, error) {
	vpc, err := s.GetVPC(ctx, vpcRef)
	if err != nil {
		return nil, err
	}
	a := &pb.NetworkAcl{Id: model.NewID(model.KindNetworkACL), Name: name, VpcId: vpc.Id, CreateTime: timestamppb.Now()}
	var t txn
	t.present(s.resKey(model.KindVPC, vpc.Id))
	if name != "" {
		t.absent(s.nameKey(model.KindNetworkACL, name))
		t.put(s.nameKey(model.KindNetworkACL, name), a.Id)
	}
	t.putProto(s.resKey(model.KindNetworkACL, a.Id), a)
	t.put(s.refKey(vpc.Id, a.Id), "")
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return a, err
	}
	if err := s.nameFree(ctx, model.KindNetworkACL, name); err != nil {
		return nil, err
	}
	return nil, model.NotFoundf("VPC %s was deleted", vpc.Id)
}

// GetNetworkACL reads an ACL by name or id, with its subnets.
func (s *Store) GetNetworkACL(ctx context.Context, ref string) (*pb.NetworkAcl, error) {
	a := new(pb.NetworkAcl)
	if _, err := s.load(ctx, model.KindNetworkACL, ref, a); err != nil {
		return nil, err
	}
	subnets, err := s.keysUnder(ctx, s.refPrefix(a.Id))
	a.SubnetIds = subnets
	return a, err
}

// ListNetworkACLs lists ACLs, of one VPC when vpcID is set, with their
// subnets: each VPC's default ACL first, then by name.
func (s *Store) ListNetworkACLs(ctx context.Context, vpcID string) ([]*pb.NetworkAcl, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindNetworkACL))+"/", func() *pb.NetworkAcl { return new(pb.NetworkAcl) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(a *pb.NetworkAcl) bool { return a.VpcId != vpcID })
	}
	subnets, err := s.ListSubnets(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	byID := map[string]*pb.NetworkAcl{}
	for _, a := range all {
		byID[a.Id] = a
	}
	for _, sn := range subnets {
		if a := byID[sn.NetworkAclId]; a != nil {
			a.SubnetIds = append(a.SubnetIds, sn.Id)
		}
	}
	slices.SortFunc(all, func(a, b *pb.NetworkAcl) int {
		return compareVPCFirst(a.VpcId, a.IsDefault, a.Name, a.Id, b.VpcId, b.IsDefault, b.Name, b.Id)
	})
	return all, nil
}

// DeleteNetworkACL deletes a custom ACL no subnet is associated with.
func (s *Store) DeleteNetworkACL(ctx context.Context, ref string) error {
	return retry(ctx, "delete network ACL", func() error {
		a := new(pb.NetworkAcl)
		rev, err := s.load(ctx, model.KindNetworkACL, ref, a)
		if err != nil {
			return err
		}
		if a.IsDefault {
			return model.Preconditionf("%s is the default network ACL of %s and cannot be deleted; it is deleted with the VPC", a.Id, a.VpcId)
		}
		var t txn
		t.unchanged(s.resKey(model.KindNetworkACL, a.Id), rev)
		t.emptyPrefix(s.refPrefix(a.Id))
		t.del(s.resKey(model.KindNetworkACL, a.Id))
		if a.Name != "" {
			t.del(s.nameKey(model.KindNetworkACL, a.Name))
		}
		t.del(s.refKey(a.VpcId, a.Id))
		ok, _, err := s.commit(ctx, &t)
		if err != nil || ok {
			return err
		}
		in, err := s.blockers(ctx, a.Id)
		if err != nil {
			return err
		}
		if in != "" {
			return model.Preconditionf("network ACL %s is associated with subnets %s; associate them with another ACL first (openvpc acl associate ACL --subnet SUBNET)", a.Id, in)
		}
		return errRetry
	})
}

func entries(a *pb.NetworkAcl, egress bool) *[]*pb.NetworkAclEntry {
	if egress {
		return &a.Outbound
	}
	return &a.Inbound
}

func aclDirection(egress bool) string {
	if egress {
		return "outbound"
	}
	return "inbound"
}

// AddACLEntry adds a numbered entry to one direction of an ACL; numbers
// are unique per direction, and entries are kept lowest first, the order
// hosts evaluate them in.
func (s *Store) AddACLEntry(ctx context.Context, ref string, egress bool, e *pb.NetworkAclEntry) (*pb.NetworkAcl, error) {
	if err := model.CheckACLRuleNumber(e.RuleNumber); err != nil {
		return nil, err
	}
	if err := (model.Match{Protocol: e.Protocol, From: e.FromPort, To: e.ToPort}).Check(); err != nil {
		return nil, err
	}
	return s.changeACL(ctx, ref, "add network ACL entry", func(a *pb.NetworkAcl) error {
		list := entries(a, egress)
		i, found := slices.BinarySearchFunc(*list, e.RuleNumber, func(x *pb.NetworkAclEntry, n int32) int { return int(x.RuleNumber - n) })
		if found {
			have := (*list)[i]
			return model.Existsf("network ACL %s already has %s rule number %d (%s %s %s); choose another number, or delete that entry first", a.Id, aclDirection(egress), e.RuleNumber, verb(have.Allow), model.Match{Protocol: have.Protocol, From: have.FromPort, To: have.ToPort}, have.Cidr)
		}
		*list = slices.Insert(*list, i, e)
		return nil
	})
}

func verb(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// DeleteACLEntry removes the entry with a number from one direction.
func (s *Store) DeleteACLEntry(ctx context.Context, ref string, egress bool, number int32) (*pb.NetworkAcl, error) {
	return s.changeACL(ctx, ref, "delete network ACL entry", func(a *pb.NetworkAcl) error {
		list := entries(a, egress)
		i := slices.IndexFunc(*list, func(x *pb.NetworkAclEntry) bool { return x.RuleNumber == number })
		if i < 0 {
			return model.NotFoundf("network ACL %s has no %s rule number %d; openvpc acl get %s lists its entries", a.Id, aclDirection(egress), number, a.Id)
		}
		*list = slices.Delete(*list, i, i+1)
		return nil
	})
}

// changeACL rewrites an ACL with change, in one guarded transaction.
func (s *Store) changeACL(ctx context.Context, ref, what string, change func(*pb.NetworkAcl) error) (*pb.NetworkAcl, error) {
	var out *pb.NetworkAcl
	err := retry(ctx, what, func() error {
		a := new(pb.NetworkAcl)
		rev, err := s.load(ctx, model.KindNetworkACL, ref, a)
		if err != nil {
			return err
		}
		if err := change(a); err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindNetworkACL, a.Id), rev)
		t.putProto(s.resKey(model.KindNetworkACL, a.Id), a)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.SubnetIds, err = s.keysUnder(ctx, s.refPrefix(out.Id))
	return out, err
}

// AssociateNetworkACL moves a subnet to an ACL of its VPC, from whichever
// it was associated with: a subnet always has exactly one.
func (s *Store) AssociateNetworkACL(ctx context.Context, ref, subnetRef string) (*pb.NetworkAcl, *pb.Subnet, error) {
	var sn *pb.Subnet
	err := retry(ctx, "associate network ACL", func() error {
		a := new(pb.NetworkAcl)
		if _, err := s.load(ctx, model.KindNetworkACL, ref, a); err != nil {
			return err
		}
		sn = new(pb.Subnet)
		srev, err := s.load(ctx, model.KindSubnet, subnetRef, sn)
		if err != nil {
			return err
		}
		if a.VpcId != sn.VpcId {
			return model.Invalidf("network ACL %s belongs to %s, subnet %s to %s; a subnet's ACL must be of its own VPC", a.Id, a.VpcId, sn.Id, sn.VpcId)
		}
		if sn.NetworkAclId == a.Id {
			return nil
		}
		var t txn
		t.unchanged(s.resKey(model.KindSubnet, sn.Id), srev)
		t.present(s.resKey(model.KindNetworkACL, a.Id))
		if sn.NetworkAclId != "" {
			t.del(s.refKey(sn.NetworkAclId, sn.Id))
		}
		t.put(s.refKey(a.Id, sn.Id), "")
		sn.NetworkAclId = a.Id
		t.putProto(s.resKey(model.KindSubnet, sn.Id), sn)
		return s.commitOrRetry(ctx, &t)
	})
	if err != nil {
		return nil, nil, err
	}
	a, err := s.GetNetworkACL(ctx, sn.NetworkAclId)
	return a, sn, err
}
