package store

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// CreateRouteTable creates an extra (non-main) route table in a VPC, holding
// the local route.
func (s *Store) CreateRouteTable(ctx context.Context, vpcRef, name string) (*pb.RouteTable, error) {
	vpc, err := s.GetVPC(ctx, vpcRef)
	if err != nil {
		return nil, err
	}
	rtb := &pb.RouteTable{
		Id: model.NewID(model.KindRouteTable), Name: name, VpcId: vpc.Id, CreateTime: timestamppb.Now(),
		Routes: []*pb.Route{{DestinationCidr: vpc.Cidr, Target: LocalTarget, State: pb.RouteState_ROUTE_STATE_ACTIVE}},
	}
	var t txn
	t.present(s.resKey(model.KindVPC, vpc.Id))
	if name != "" {
		t.absent(s.nameKey(model.KindRouteTable, name))
		t.put(s.nameKey(model.KindRouteTable, name), rtb.Id)
	}
	t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
	t.put(s.refKey(vpc.Id, rtb.Id), "")
	ok, _, err := s.commit(ctx, &t)
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := s.nameFree(ctx, model.KindRouteTable, name); err != nil {
			return nil, err
		}
		return nil, model.NotFoundf("VPC %s was deleted meanwhile", vpc.Id)
	}
	return rtb, nil
}

// GetRouteTable reads a route table by name or id, with route states.
func (s *Store) GetRouteTable(ctx context.Context, ref string) (*pb.RouteTable, error) {
	rtb := new(pb.RouteTable)
	if _, err := s.load(ctx, model.KindRouteTable, ref, rtb); err != nil {
		return nil, err
	}
	return rtb, s.fillRouteStates(ctx, rtb)
}

// ListRouteTables lists route tables, of one VPC when vpcID is set.
func (s *Store) ListRouteTables(ctx context.Context, vpcID string) ([]*pb.RouteTable, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindRouteTable))+"/", func() *pb.RouteTable { return new(pb.RouteTable) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(r *pb.RouteTable) bool { return r.VpcId != vpcID })
	}
	slices.SortFunc(all, func(a, b *pb.RouteTable) int {
		if a.VpcId != b.VpcId {
			return strings.Compare(a.VpcId, b.VpcId)
		}
		if a.Main != b.Main {
			if a.Main {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Id, b.Id)
	})
	for _, r := range all {
		if err := s.fillRouteStates(ctx, r); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// fillRouteStates marks each route active or blackhole: a route to a
// peering carries traffic only while the peering is active, one to an
// internet gateway only while it is attached to the route table's VPC.
func (s *Store) fillRouteStates(ctx context.Context, rtb *pb.RouteTable) error {
	for _, r := range rtb.Routes {
		r.State = pb.RouteState_ROUTE_STATE_ACTIVE
		if model.IsID(model.KindIGW, r.Target) {
			g := new(pb.InternetGateway)
			_, found, err := s.getProto(ctx, s.resKey(model.KindIGW, r.Target), g)
			if err != nil {
				return err
			}
			if !found || g.VpcId != rtb.VpcId {
				r.State = pb.RouteState_ROUTE_STATE_BLACKHOLE
			}
			continue
		}
		if !model.IsID(model.KindPeering, r.Target) {
			continue
		}
		p := new(pb.Peering)
		_, found, err := s.getProto(ctx, s.resKey(model.KindPeering, r.Target), p)
		if err != nil {
			return err
		}
		if !found || p.State != pb.PeeringState_PEERING_STATE_ACTIVE {
			r.State = pb.RouteState_ROUTE_STATE_BLACKHOLE
		}
	}
	return s.fillPropagated(ctx, rtb)
}

// DeleteRouteTable deletes a non-main route table no subnet uses.
func (s *Store) DeleteRouteTable(ctx context.Context, ref string) error {
	return retry(ctx, "delete route table", func() error { return s.deleteRouteTableOnce(ctx, ref) })
}

func (s *Store) deleteRouteTableOnce(ctx context.Context, ref string) error {
	rtb := new(pb.RouteTable)
	rev, err := s.load(ctx, model.KindRouteTable, ref, rtb)
	if err != nil {
		return err
	}
	if rtb.Main {
		return model.Preconditionf("route table %s is the main route table of %s; it goes when the VPC is deleted", rtb.Id, rtb.VpcId)
	}
	var t txn
	t.unchanged(s.resKey(model.KindRouteTable, rtb.Id), rev)
	t.emptyPrefix(s.refPrefix(rtb.Id))
	t.del(s.resKey(model.KindRouteTable, rtb.Id))
	t.del(s.refKey(rtb.VpcId, rtb.Id))
	if rtb.Name != "" {
		t.del(s.nameKey(model.KindRouteTable, rtb.Name))
	}
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	in, err := s.blockers(ctx, rtb.Id)
	if err != nil {
		return err
	}
	if in != "" {
		return model.Preconditionf("route table %s is still associated with %s", rtb.Id, in)
	}
	return errRetry
}

// CreateRoute adds a route dest → target to a route table. A peering
// target must be an active peering of the table's VPC.
func (s *Store) CreateRoute(ctx context.Context, rtbRef string, dest netip.Prefix, target string) (*pb.RouteTable, error) {
	var out *pb.RouteTable
	err := retry(ctx, "create route", func() error {
		rtb := new(pb.RouteTable)
		rev, err := s.load(ctx, model.KindRouteTable, rtbRef, rtb)
		if err != nil {
			return err
		}
		for _, r := range rtb.Routes {
			if r.DestinationCidr == dest.String() {
				return model.Existsf("route table %s already has a route for %s (to %s); delete it first", rtb.Id, dest, r.Target)
			}
		}
		if err := checkNotInsideLocal(rtb, dest); err != nil {
			return err
		}
		var t txn
		id, err := s.checkRouteTarget(ctx, rtb, target, &t)
		if err != nil {
			return err
		}
		rtb.Routes = append(rtb.Routes, &pb.Route{DestinationCidr: dest.String(), Target: id})
		t.unchanged(s.resKey(model.KindRouteTable, rtb.Id), rev)
		t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			return errRetry
		}
		out = rtb
		return s.fillRouteStates(ctx, rtb)
	})
	return out, err
}

// checkNotInsideLocal refuses a route more specific than the table's
// local route, as AWS does for peering and gateway targets: it would
// silently take part of the VPC's own addresses away from its instances
// (longest prefix wins) and send it to a peer or the internet.
func checkNotInsideLocal(rtb *pb.RouteTable, dest netip.Prefix) error {
	for _, r := range rtb.Routes {
		if r.Target != LocalTarget {
			continue
		}
		local, err := netip.ParsePrefix(r.DestinationCidr)
		if err == nil && local.Bits() <= dest.Bits() && local.Contains(dest.Addr()) {
			return model.Invalidf("route %s is inside the VPC's local route %s of route table %s: traffic to the VPC's own addresses stays local; route only destinations outside %s", dest, local, rtb.Id, local)
		}
	}
	return nil
}

// checkRouteTarget validates a route target and adds the conditions that
// keep it valid until commit; it returns the target's id.
func (s *Store) checkRouteTarget(ctx context.Context, rtb *pb.RouteTable, target string, t *txn) (string, error) {
	switch {
	case target == LocalTarget:
		return "", model.Invalidf("the local route is created with the VPC; routes you add target a peering (pcx-…) or an internet gateway (igw-…)")
	case target == "":
		return "", model.Invalidf("no route target given; use a peering (pcx-…) or an internet gateway (igw-…)")
	case strings.HasPrefix(target, "vgw-"), strings.HasPrefix(target, "vpn-"):
		return "", model.Invalidf("route target %s: a site's routes reach a route table by propagation; enable it (openvpc route-table propagation enable ROUTE-TABLE --vgw VGW) and give the VPN connection its routes (openvpc vpn route add VPN --dest CIDR)", target)
	case strings.HasPrefix(target, "dxvif-"), strings.HasPrefix(target, "vpce-"):
		return "", model.Invalidf("route target %s: VPN, Direct Connect and endpoints are not available yet", target)
	case model.IsID(model.KindIGW, target) || !model.IsID(model.KindPeering, target) && s.exists(ctx, model.KindIGW, target):
		g := new(pb.InternetGateway)
		rev, err := s.load(ctx, model.KindIGW, target, g)
		if err != nil {
			return "", model.Invalidf("route target %s is not an internet gateway that exists", target)
		}
		if g.VpcId != rtb.VpcId {
			return "", model.Preconditionf("internet gateway %s is not attached to this route table's VPC %s; attach it first (openvpc igw attach %s --vpc %s)", g.Id, rtb.VpcId, g.Id, rtb.VpcId)
		}
		t.unchanged(s.resKey(model.KindIGW, g.Id), rev)
		return g.Id, nil
	}
	p := new(pb.Peering)
	rev, err := s.load(ctx, model.KindPeering, target, p)
	if err != nil {
		return "", model.Invalidf("route target %q is not a peering (pcx-…) or internet gateway (igw-…) that exists", target)
	}
	if p.RequesterVpcId != rtb.VpcId && p.AccepterVpcId != rtb.VpcId {
		return "", model.Invalidf("peering %s connects %s and %s, not this route table's VPC %s", p.Id, p.RequesterVpcId, p.AccepterVpcId, rtb.VpcId)
	}
	if p.State != pb.PeeringState_PEERING_STATE_ACTIVE {
		return "", model.Preconditionf("peering %s is not active yet; accept it first (openvpc peering accept %s)", p.Id, p.Id)
	}
	t.unchanged(s.resKey(model.KindPeering, p.Id), rev)
	return p.Id, nil
}

// exists reports whether a resource of kind k is named ref.
func (s *Store) exists(ctx context.Context, k model.Kind, ref string) bool {
	_, err := s.resolve(ctx, k, ref)
	return err == nil
}

// DeleteRoute removes the route for dest from a route table. The local
// route cannot be removed.
func (s *Store) DeleteRoute(ctx context.Context, rtbRef string, dest netip.Prefix) (*pb.RouteTable, error) {
	var out *pb.RouteTable
	err := retry(ctx, "delete route", func() error {
		rtb := new(pb.RouteTable)
		rev, err := s.load(ctx, model.KindRouteTable, rtbRef, rtb)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(rtb.Routes, func(r *pb.Route) bool { return r.DestinationCidr == dest.String() })
		if i < 0 {
			return model.NotFoundf("route table %s has no route for %s", rtb.Id, dest)
		}
		if rtb.Routes[i].Target == LocalTarget {
			return model.Invalidf("the local route %s of route table %s cannot be deleted", dest, rtb.Id)
		}
		rtb.Routes = slices.Delete(rtb.Routes, i, i+1)
		var t txn
		t.unchanged(s.resKey(model.KindRouteTable, rtb.Id), rev)
		t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			return errRetry
		}
		out = rtb
		return s.fillRouteStates(ctx, rtb)
	})
	return out, err
}
