package mapping

import (
	"testing"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestEndpointFacts: an endpoint is a fact of its VPC, its routes reach
// hosts expanded to the service's CIDRs (and follow the service's
// re-registration), the world's own route table is left alone, and the
// VPC enters the scope of edges serving endpoints only while it has one.
func TestEndpointFacts(t *testing.T) {
	w := newWorld()
	apply := func(r store.Record) *delta {
		t.Helper()
		d := newDelta(1)
		if err := w.apply(r, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	apply(rec(t, store.RecVPC, "vpc-a", &pb.Vpc{Id: "vpc-a", Vni: 7, Cidr: "10.0.0.0/16"}))
	rtb := &pb.RouteTable{Id: "rtb-a", VpcId: "vpc-a", Main: true, Routes: []*pb.Route{
		{DestinationCidr: "10.0.0.0/16", Target: store.LocalTarget},
		{DestinationPrefixListId: "pl-s3", Target: "vpce-0000000000000001"},
	}}
	apply(rec(t, store.RecRouteTable, "rtb-a", rtb))
	edge := &pb.Host{Id: "edge-1", Role: pb.HostRole_HOST_ROLE_EDGE, Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT}}}
	inet := &pb.Host{Id: "edge-2", Role: pb.HostRole_HOST_ROLE_EDGE, Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET}}}
	apply(rec(t, store.RecHost, "edge-1", edge))
	apply(rec(t, store.RecHost, "edge-2", inet))
	if s := w.scope("edge-1"); len(s) != 0 {
		t.Fatalf("without an endpoint the endpoint edge's scope is %v", s)
	}

	svc := &pb.Service{Name: "com.openvpc.test.s3", PrefixListId: "pl-s3", Cidrs: []string{"203.0.113.128/28"}, NodeAddresses: []string{"127.0.1.250"}}
	apply(rec(t, store.RecService, svc.Name, svc))
	ep := &pb.VpcEndpoint{Id: "vpce-0000000000000001", VpcId: "vpc-a", ServiceName: svc.Name, PrefixListId: "pl-s3", RouteTableIds: []string{"rtb-a"}}
	d := apply(rec(t, store.RecEndpoint, ep.Id, ep))
	if !has(d.facts, "vpc-a") || !has(d.scopeDirty, "edge-1") {
		t.Fatalf("an endpoint created: facts %v, scope-dirty %v; want vpc-a and edge-1", d.facts, d.scopeDirty)
	}
	if s := w.scope("edge-1"); !has(s, "vpc-a") {
		t.Fatalf("the endpoint edge's scope is %v, want vpc-a", s)
	}
	if s := w.scope("edge-2"); has(s, "vpc-a") {
		t.Fatal("an internet-only edge got a VPC without an internet gateway")
	}
	if !has(w.hostsOf("vpc-a"), "edge-1") {
		t.Fatal("vpc-a's changes do not reach the endpoint edge")
	}
	f := w.facts("vpc-a")
	if len(f.Endpoints) != 1 || f.Endpoints[0].Cidrs[0] != "203.0.113.128/28" || f.Endpoints[0].NodeAddresses[0] != "127.0.1.250" {
		t.Fatalf("endpoint facts %v", f.Endpoints)
	}
	routes := f.RouteTables[0].Routes
	if len(routes) != 2 || routes[1].DestinationCidr != "203.0.113.128/28" || routes[1].Target != ep.Id || routes[1].DestinationPrefixListId != "" ||
		routes[1].State != pb.RouteState_ROUTE_STATE_ACTIVE {
		t.Fatalf("routes to hosts %v: want the prefix list expanded to its CIDR, active", routes)
	}
	if w.rtbs["rtb-a"].Routes[1].DestinationPrefixListId != "pl-s3" {
		t.Fatal("facts() rewrote the world's own route table")
	}

	// The service re-registers with two CIDRs: its endpoints' VPCs change.
	svc2 := &pb.Service{Name: svc.Name, PrefixListId: "pl-s3", Cidrs: []string{"203.0.113.128/28", "192.0.2.0/28"}, NodeAddresses: svc.NodeAddresses}
	if d := apply(rec(t, store.RecService, svc.Name, svc2)); !has(d.facts, "vpc-a") {
		t.Fatalf("a service change marked %v", d.facts)
	}
	if routes := w.facts("vpc-a").RouteTables[0].Routes; len(routes) != 3 {
		t.Fatalf("routes after the service grew: %v", routes)
	}

	// Deleted: the route (now dangling in the table) routes nothing, and the scope shrinks.
	d = apply(store.Record{Kind: store.RecEndpoint, ID: ep.Id, Deleted: true, Value: mustMarshal(t, ep)})
	if !has(d.scopeDirty, "edge-1") {
		t.Fatal("deleting the endpoint does not touch the endpoint edge's scope")
	}
	if routes := w.facts("vpc-a").RouteTables[0].Routes; len(routes) != 1 {
		t.Fatalf("a deleted endpoint's route reaches hosts: %v", routes)
	}
	if s := w.scope("edge-1"); has(s, "vpc-a") {
		t.Fatal("vpc-a stays in the endpoint edge's scope")
	}
}

func mustMarshal(t *testing.T, ep *pb.VpcEndpoint) []byte {
	return rec(t, store.RecEndpoint, ep.Id, ep).Value
}
