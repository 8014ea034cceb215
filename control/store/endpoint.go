package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Services are kept at svc/<name>; gateway endpoints at vpce/<id>, with
// ref/<vpc-id>/<vpce-id> (the VPC cannot go while it has endpoints) and
// ref/<rtb-id>/<vpce-id> (nor an associated route table). Each associated
// route table holds the endpoint's route, prefix list → vpce-…, written in
// the same transaction as the endpoint.

const svcPrefix = "svc"

func (s *Store) svcKey(name string) string { return s.key(svcPrefix, name) }

// RegisterService adds a service or updates its addresses and nodes; its
// prefix list id stays the one it got first.
func (s *Store) RegisterService(ctx context.Context, name string, cidrs []netip.Prefix, nodes []netip.Addr) (*pb.Service, error) {
	var out *pb.Service
	err := retry(ctx, "register service", func() error {
		svc := new(pb.Service)
		rev, found, err := s.getProto(ctx, s.svcKey(name), svc)
		if err != nil {
			return err
		}
		if !found {
			svc = &pb.Service{Name: name, PrefixListId: model.NewID(model.KindPrefixList)}
		}
		svc.Cidrs, svc.NodeAddresses = nil, nil
		for _, c := range cidrs {
			svc.Cidrs = append(svc.Cidrs, c.Masked().String())
		}
		for _, n := range nodes {
			svc.NodeAddresses = append(svc.NodeAddresses, n.String())
		}
		svc.UpdateTime = timestamppb.Now()
		var t txn
		if found {
			t.unchanged(s.svcKey(name), rev)
		} else {
			t.absent(s.svcKey(name))
		}
		t.putProto(s.svcKey(name), svc)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = svc
		return nil
	})
	return out, err
}

// GetService reads a registered service by name.
func (s *Store) GetService(ctx context.Context, name string) (*pb.Service, error) {
	svc := new(pb.Service)
	_, found, err := s.getProto(ctx, s.svcKey(name), svc)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, model.NotFoundf("service %q is not registered; openvpc service list shows those that are", name)
	}
	return svc, nil
}

// ListServices lists the registered services, by name.
func (s *Store) ListServices(ctx context.Context) ([]*pb.Service, error) {
	all, err := listProto(ctx, s, s.key(svcPrefix)+"/", func() *pb.Service { return new(pb.Service) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *pb.Service) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

// CreateVpcEndpoint creates a gateway endpoint of a VPC to a service and
// adds its route to each of the route tables.
func (s *Store) CreateVpcEndpoint(ctx context.Context, vpcRef, service string, rtbRefs []string, policy string) (*pb.VpcEndpoint, error) {
	var out *pb.VpcEndpoint
	err := retry(ctx, "create endpoint", func() error {
		vpc, err := s.GetVPC(ctx, vpcRef)
		if err != nil {
			return err
		}
		svc, err := s.GetService(ctx, service)
		if err != nil {
			return err
		}
		ep := &pb.VpcEndpoint{Id: model.NewID(model.KindEndpoint), VpcId: vpc.Id, ServiceName: svc.Name, PrefixListId: svc.PrefixListId,
			PolicyDocument: policy, CreateTime: timestamppb.Now()}
		var t txn
		t.present(s.resKey(model.KindVPC, vpc.Id))
		t.present(s.svcKey(svc.Name))
		if err := s.associate(ctx, ep, rtbRefs, &t); err != nil {
			return err
		}
		t.putProto(s.resKey(model.KindEndpoint, ep.Id), ep)
		t.put(s.refKey(vpc.Id, ep.Id), "")
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = ep
		return nil
	})
	return out, err
}

// associate adds ep's route to each route table (which must be of ep's
// VPC and have no route for the prefix list yet) to t, and the tables to
// ep.
func (s *Store) associate(ctx context.Context, ep *pb.VpcEndpoint, rtbRefs []string, t *txn) error {
	for _, ref := range rtbRefs {
		rtb := new(pb.RouteTable)
		rev, err := s.load(ctx, model.KindRouteTable, ref, rtb)
		if err != nil {
			return err
		}
		if rtb.VpcId != ep.VpcId {
			return model.Invalidf("route table %s is in %s, not in the endpoint's VPC %s", rtb.Id, rtb.VpcId, ep.VpcId)
		}
		if slices.Contains(ep.RouteTableIds, rtb.Id) {
			return model.Invalidf("route table %s is named twice or already associated with %s", rtb.Id, ep.Id)
		}
		for _, r := range rtb.Routes {
			if r.DestinationPrefixListId == ep.PrefixListId {
				return model.Existsf("route table %s already routes %s (to %s); a route table reaches a service through one endpoint", rtb.Id, ep.PrefixListId, r.Target)
			}
		}
		rtb.Routes = append(rtb.Routes, &pb.Route{DestinationPrefixListId: ep.PrefixListId, Target: ep.Id})
		t.unchanged(s.resKey(model.KindRouteTable, rtb.Id), rev)
		t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
		t.put(s.refKey(rtb.Id, ep.Id), "")
		ep.RouteTableIds = append(ep.RouteTableIds, rtb.Id)
	}
	return nil
}

// dissociate removes ep's route from each of the route tables, in t.
func (s *Store) dissociate(ctx context.Context, ep *pb.VpcEndpoint, rtbIDs []string, t *txn) error {
	for _, id := range rtbIDs {
		rtb := new(pb.RouteTable)
		rev, err := s.load(ctx, model.KindRouteTable, id, rtb)
		if err != nil {
			return err
		}
		if !slices.Contains(ep.RouteTableIds, rtb.Id) {
			return model.Invalidf("route table %s is not associated with %s", rtb.Id, ep.Id)
		}
		rtb.Routes = slices.DeleteFunc(rtb.Routes, func(r *pb.Route) bool { return r.Target == ep.Id })
		t.unchanged(s.resKey(model.KindRouteTable, rtb.Id), rev)
		t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
		t.del(s.refKey(rtb.Id, ep.Id))
		ep.RouteTableIds = slices.DeleteFunc(ep.RouteTableIds, func(r string) bool { return r == rtb.Id })
	}
	return nil
}

// GetVpcEndpoint reads an endpoint by id.
func (s *Store) GetVpcEndpoint(ctx context.Context, id string) (*pb.VpcEndpoint, error) {
	ep := new(pb.VpcEndpoint)
	_, err := s.load(ctx, model.KindEndpoint, id, ep)
	return ep, err
}

// ListVpcEndpoints lists endpoints, of one VPC when vpcID is set.
func (s *Store) ListVpcEndpoints(ctx context.Context, vpcID string) ([]*pb.VpcEndpoint, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindEndpoint))+"/", func() *pb.VpcEndpoint { return new(pb.VpcEndpoint) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(e *pb.VpcEndpoint) bool { return e.VpcId != vpcID })
	}
	slices.SortFunc(all, func(a, b *pb.VpcEndpoint) int { return strings.Compare(a.Id, b.Id) })
	return all, nil
}

// ModifyVpcEndpoint sets the policy (when setPolicy) and adds and removes
// route tables, in one transaction.
func (s *Store) ModifyVpcEndpoint(ctx context.Context, id string, setPolicy bool, policy string, add, remove []string) (*pb.VpcEndpoint, error) {
	var out *pb.VpcEndpoint
	err := retry(ctx, "modify endpoint", func() error {
		ep := new(pb.VpcEndpoint)
		rev, err := s.load(ctx, model.KindEndpoint, id, ep)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindEndpoint, ep.Id), rev)
		if err := s.dissociate(ctx, ep, remove, &t); err != nil {
			return err
		}
		if err := s.associate(ctx, ep, add, &t); err != nil {
			return err
		}
		if setPolicy {
			ep.PolicyDocument = policy
		}
		t.putProto(s.resKey(model.KindEndpoint, ep.Id), ep)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = ep
		return nil
	})
	return out, err
}

// DeleteVpcEndpoint deletes an endpoint and its routes.
func (s *Store) DeleteVpcEndpoint(ctx context.Context, id string) error {
	return retry(ctx, "delete endpoint", func() error {
		ep := new(pb.VpcEndpoint)
		rev, err := s.load(ctx, model.KindEndpoint, id, ep)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindEndpoint, ep.Id), rev)
		if err := s.dissociate(ctx, ep, slices.Clone(ep.RouteTableIds), &t); err != nil {
			return err
		}
		t.del(s.resKey(model.KindEndpoint, ep.Id))
		t.del(s.refKey(ep.VpcId, ep.Id))
		return s.commitOrRetry(ctx, &t)
	})
}

// CreatePrefixListRoute is route create with a prefix list destination:
// allowed only toward a gateway endpoint of the table's VPC whose service
// has that prefix list, and the same as associating the table with it.
func (s *Store) CreatePrefixListRoute(ctx context.Context, rtbRef, pl, target string) (*pb.RouteTable, error) {
	if !model.IsID(model.KindEndpoint, target) {
		return nil, model.Invalidf("a prefix list destination (%s) routes only to a gateway endpoint (vpce-…), not to %q", pl, target)
	}
	ep, err := s.GetVpcEndpoint(ctx, target)
	if err != nil {
		return nil, err
	}
	if ep.PrefixListId != pl {
		return nil, model.Invalidf("endpoint %s leads to %s, whose prefix list is %s, not %s", ep.Id, ep.ServiceName, ep.PrefixListId, pl)
	}
	if _, err := s.ModifyVpcEndpoint(ctx, ep.Id, false, "", []string{rtbRef}, nil); err != nil {
		return nil, err
	}
	return s.GetRouteTable(ctx, rtbRef)
}

// DeletePrefixListRoute removes the route for prefix list pl: its
// endpoint's association with the table.
func (s *Store) DeletePrefixListRoute(ctx context.Context, rtbRef, pl string) (*pb.RouteTable, error) {
	rtb, err := s.GetRouteTable(ctx, rtbRef)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(rtb.Routes, func(r *pb.Route) bool { return r.DestinationPrefixListId == pl })
	if i < 0 {
		return nil, model.NotFoundf("route table %s has no route for %s", rtb.Id, pl)
	}
	if _, err := s.ModifyVpcEndpoint(ctx, rtb.Routes[i].Target, false, "", nil, []string{rtb.Id}); err != nil {
		return nil, err
	}
	return s.GetRouteTable(ctx, rtb.Id)
}

// ServiceCatalog reads what a node of svc needs to accept endpoint
// traffic: svc's endpoints with their VPCs' VNIs, the underlay addresses
// of the edges that serve endpoints (the senders it may believe) and svc's
// nodes. Nothing about other services or other VPCs.
func (s *Store) ServiceCatalog(ctx context.Context, svc *pb.Service) (*pb.DescribeServiceCatalogResponse, error) {
	eps, err := s.ListVpcEndpoints(ctx, "")
	if err != nil {
		return nil, err
	}
	out := &pb.DescribeServiceCatalogResponse{NodeAddresses: svc.NodeAddresses}
	vnis := map[string]uint32{}
	for _, ep := range eps {
		if ep.ServiceName != svc.Name {
			continue
		}
		vni, ok := vnis[ep.VpcId]
		if !ok {
			v, err := s.GetVPC(ctx, ep.VpcId)
			if errors.Is(err, model.ErrNotFound) {
				continue // deleted since the endpoints were read (a VPC goes only after its endpoints, so this one went too)
			}
			if err != nil {
				return nil, err
			}
			vni, vnis[ep.VpcId] = v.Vni, v.Vni
		}
		out.Endpoints = append(out.Endpoints, &pb.CatalogEndpoint{Id: ep.Id, VpcId: ep.VpcId, Vni: vni, PolicyDocument: ep.PolicyDocument})
	}
	hosts, err := listProto(ctx, s, s.key("host")+"/", func() *pb.Host { return new(pb.Host) })
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if h.Role == pb.HostRole_HOST_ROLE_EDGE && slices.ContainsFunc(h.Functions, func(f *pb.EdgeFunction) bool {
			return f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT
		}) {
			out.EdgeAddresses = append(out.EdgeAddresses, h.UnderlayAddress)
		}
	}
	slices.Sort(out.EdgeAddresses)
	return out, nil
}
