package store

import (
	"net/netip"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

const s3Name = "com.openvpc.test.s3"

// TestEndpointLifecycle: an endpoint adds its route (prefix list →
// vpce-…) to its route tables in one change, modify adds and removes
// tables, route create takes a pl- destination only toward an endpoint,
// and delete removes every route it added.
func TestEndpointLifecycle(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	s, c := f.s, ctx(t)
	svc, err := s.RegisterService(c, s3Name, []netip.Prefix{mustPrefix("198.51.100.0/28")}, []netip.Addr{netip.MustParseAddr("127.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsID(model.KindPrefixList, svc.PrefixListId) {
		t.Fatalf("service %v has no prefix list id", svc)
	}
	again, err := s.RegisterService(c, s3Name, []netip.Prefix{mustPrefix("198.51.100.0/27")}, nil)
	if err != nil || again.PrefixListId != svc.PrefixListId || again.Cidrs[0] != "198.51.100.0/27" {
		t.Fatalf("re-registered: %v, %v; want the same prefix list, new CIDRs", again, err)
	}
	_, err = s.CreateVpcEndpoint(c, "red", "com.openvpc.test.nope", nil, "")
	wantKind(t, err, model.ErrNotFound, "not registered")

	main := f.vpc.MainRouteTableId
	ep, err := s.CreateVpcEndpoint(c, "red", s3Name, []string{main}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsID(model.KindEndpoint, ep.Id) || ep.PrefixListId != svc.PrefixListId || len(ep.RouteTableIds) != 1 {
		t.Fatalf("created %v", ep)
	}
	rtb, err := s.GetRouteTable(c, main)
	if err != nil {
		t.Fatal(err)
	}
	route := func(rtb *pb.RouteTable) *pb.Route {
		for _, r := range rtb.Routes {
			if r.DestinationPrefixListId == svc.PrefixListId {
				return r
			}
		}
		return nil
	}
	if r := route(rtb); r == nil || r.Target != ep.Id || r.State != pb.RouteState_ROUTE_STATE_ACTIVE {
		t.Fatalf("main table routes %v: want %s → %s, active", rtb.Routes, svc.PrefixListId, ep.Id)
	}
	_, err = s.CreateVpcEndpoint(c, "red", s3Name, []string{main}, "")
	wantKind(t, err, model.ErrExists, "already routes "+svc.PrefixListId)

	// route create: a pl- destination only toward an endpoint; an endpoint only with its pl-.
	other, err := s.CreateRouteTable(c, "red", "other")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateRoute(c, other.Id, mustPrefix("198.51.100.0/28"), ep.Id)
	wantKind(t, err, model.ErrInvalid, "prefix list as destination")
	_, err = s.CreatePrefixListRoute(c, other.Id, svc.PrefixListId, "pcx-0000000000000001")
	wantKind(t, err, model.ErrInvalid, "routes only to a gateway endpoint")
	_, err = s.CreatePrefixListRoute(c, other.Id, "pl-00000000000000ff", ep.Id)
	wantKind(t, err, model.ErrInvalid, "not pl-00000000000000ff")
	got, err := s.CreatePrefixListRoute(c, other.Id, svc.PrefixListId, ep.Id)
	if err != nil || route(got) == nil {
		t.Fatalf("route create with the endpoint's prefix list: %v, %v", got, err)
	}
	if ep, _ = s.GetVpcEndpoint(c, ep.Id); len(ep.RouteTableIds) != 2 {
		t.Fatalf("the endpoint's tables %v, want both", ep.RouteTableIds)
	}
	err = s.DeleteRouteTable(c, other.Id)
	wantKind(t, err, model.ErrPrecondition, "still associated with")
	if got, err = s.DeletePrefixListRoute(c, other.Id, svc.PrefixListId); err != nil || route(got) != nil {
		t.Fatalf("route delete: %v, %v", got, err)
	}

	// Another VPC's table cannot be associated.
	if _, err := s.CreateVPC(c, "blue", mustPrefix("10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	blue, _ := s.GetVPC(c, "blue")
	_, err = s.ModifyVpcEndpoint(c, ep.Id, false, "", []string{blue.MainRouteTableId}, nil)
	wantKind(t, err, model.ErrInvalid, "not in the endpoint's VPC")

	ep, err = s.ModifyVpcEndpoint(c, ep.Id, true, `{"Statement":[]}`, nil, nil)
	if err != nil || ep.PolicyDocument != `{"Statement":[]}` {
		t.Fatalf("modify policy: %v %v", ep, err)
	}
	err = s.DeleteVPC(c, "red")
	wantKind(t, err, model.ErrPrecondition)
	if err := s.DeleteVpcEndpoint(c, ep.Id); err != nil {
		t.Fatal(err)
	}
	if rtb, _ = s.GetRouteTable(c, main); route(rtb) != nil {
		t.Fatalf("the endpoint's route stayed: %v", rtb.Routes)
	}
	if eps, _ := s.ListVpcEndpoints(c, ""); len(eps) != 0 {
		t.Fatalf("endpoints left: %v", eps)
	}
}
