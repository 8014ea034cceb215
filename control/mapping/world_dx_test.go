package mapping

import (
	"slices"
	"testing"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestDirectConnectWorld: a DX edge's scope is the VPCs behind the VIFs on
// its connections, and it is among those VPCs' hosts; its record names the
// VIFs as its Direct Connect targets; a VIF's propagated route beats a VPN
// route for the same prefix while the edge is healthy, and loses to it
// when the edge goes down.
func TestDirectConnectWorld(t *testing.T) {
	w := newWorld()
	apply := func(r store.Record) *delta {
		t.Helper()
		d := newDelta(1)
		if err := w.apply(r, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dxFn := []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT}}
	edge := &pb.Host{Id: "edge-1", Role: pb.HostRole_HOST_ROLE_EDGE, Functions: dxFn}
	apply(rec(t, store.RecHost, "edge-1", edge))
	apply(rec(t, store.RecHost, "edge-2", &pb.Host{Id: "edge-2", Role: pb.HostRole_HOST_ROLE_EDGE, Functions: dxFn}))
	rtb := &pb.RouteTable{Id: "rtb-1", VpcId: "vpc-a", Main: true, PropagatingVgws: []string{"vgw-1"},
		Routes: []*pb.Route{{DestinationCidr: "10.1.0.0/16", Target: "local"}}}
	apply(rec(t, store.RecVPC, "vpc-a", &pb.Vpc{Id: "vpc-a", Cidr: "10.1.0.0/16", MainRouteTableId: "rtb-1"}))
	apply(rec(t, store.RecRouteTable, "rtb-1", rtb))
	apply(rec(t, store.RecVPNGateway, "vgw-1", &pb.VpnGateway{Id: "vgw-1", VpcId: "vpc-a"}))
	apply(rec(t, store.RecDXConnection, "dxcon-1", &pb.DxConnection{Id: "dxcon-1", Edge: "edge-1", Port: "eth1"}))
	d := apply(rec(t, store.RecDXVIF, "dxvif-0000000000000001", &pb.DxVirtualInterface{Id: "dxvif-0000000000000001", ConnectionId: "dxcon-1", VpnGatewayId: "vgw-1"}))
	if !has(d.scopeDirty, "edge-1") || !has(d.hostsChanged, "edge-1") || !has(d.edges, "edge-1") || !has(d.facts, "vpc-a") {
		t.Fatalf("a new VIF marked scope %v, records %v, edges %v, facts %v", d.scopeDirty, d.hostsChanged, d.edges, d.facts)
	}
	if s := w.scope("edge-1"); !has(s, "vpc-a") {
		t.Fatalf("edge-1's scope %v lacks the VIF's VPC", s)
	}
	if s := w.scope("edge-2"); len(s) != 0 {
		t.Fatalf("edge-2 holds no VIF, yet its scope is %v", s)
	}
	if hs := w.hostsOf("vpc-a"); !has(hs, "edge-1") || has(hs, "edge-2") {
		t.Fatalf("hostsOf(vpc-a) = %v", hs)
	}
	if fns := w.hostRecord(edge).Functions; len(fns) != 1 || !slices.Equal(fns[0].Targets, []string{"dxvif-0000000000000001"}) {
		t.Fatalf("edge-1's record functions %v", fns)
	}
	if fns := w.hostRecord(w.hosts["edge-2"]).Functions; len(fns) != 0 {
		t.Fatalf("edge-2 with no VIF still has functions %v in its record", fns)
	}

	// The same prefix from the VIF and from a VPN connection's static
	// routes: Direct Connect wins while its edge is healthy.
	apply(rec(t, store.RecPropagated, "vgw-1.dxvif-0000000000000001", &pb.PropagatedRoutes{VgwId: "vgw-1", SourceId: "dxvif-0000000000000001", Origin: pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, Prefixes: []string{"192.0.2.0/24"}}))
	apply(rec(t, store.RecPropagated, "vgw-1.vpn-1", &pb.PropagatedRoutes{VgwId: "vgw-1", SourceId: "vpn-1", Origin: pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC, Prefixes: []string{"192.0.2.0/24"}}))
	target := func() string {
		for _, r := range w.propagatedRoutes("vpc-a", w.rtbs["rtb-1"]) {
			if r.DestinationCidr == "192.0.2.0/24" {
				return r.Target
			}
		}
		return ""
	}
	if got := target(); got != "dxvif-0000000000000001" {
		t.Fatalf("192.0.2.0/24 → %q, want the VIF", got)
	}
	sick := &pb.Host{Id: "edge-1", Role: pb.HostRole_HOST_ROLE_EDGE, Functions: dxFn, Unhealthy: true}
	if d := apply(rec(t, store.RecHost, "edge-1", sick)); !has(d.facts, "vpc-a") {
		t.Fatalf("the DX edge going down did not mark vpc-a: %v", d.facts)
	}
	if got := target(); got == "dxvif-0000000000000001" {
		t.Fatalf("with its edge down the VIF still carries 192.0.2.0/24")
	}
	apply(rec(t, store.RecHost, "edge-1", edge))
	if got := target(); got != "dxvif-0000000000000001" {
		t.Fatalf("the edge back: 192.0.2.0/24 → %q, want the VIF again", got)
	}
}
