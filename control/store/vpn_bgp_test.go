package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// TestVPNBGPPropagation: what a tunnel's established session learned
// propagates as VPN_BGP; its session going down withdraws it unless the
// other tunnel's session carries it; the preferred tunnel is a carrying one.
func TestVPNBGPPropagation(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	s.cfg.VPNPools = []netip.Prefix{mustPrefix("198.51.100.0/29")}
	vpc, err := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []string{"edge-1", "edge-2"} {
		if _, err := s.RegisterHost(c, e, netip.AddrFrom4([4]byte{127, 0, 2, byte(i + 1)}), pb.HostRole_HOST_ROLE_EDGE, "", &pb.EdgeFunction{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateCustomerGateway(c, "office", netip.MustParseAddr("203.0.113.7"), 65010); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVpnGateway(c, "red-vgw", 64600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachVpnGateway(c, "red-vgw", "red"); err != nil {
		t.Fatal(err)
	}
	conn, err := s.CreateVpnConnection(c, VpnConnectionSpec{CustomerGateway: "office", VpnGateway: "red-vgw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnableRoutePropagation(c, vpc.MainRouteTableId, "red-vgw"); err != nil {
		t.Fatal(err)
	}
	e0, e1 := conn.Tunnels[0].EdgeId, conn.Tunnels[1].EdgeId
	ets, err := s.EdgeTunnels(c, e0)
	if err != nil || len(ets) != 1 || ets[0].Bgp.GetLocalAsn() != 64600 || ets[0].Bgp.GetPeerAsn() != 65010 {
		t.Fatalf("edge tunnels of a BGP connection: %v %v", ets, err)
	}
	bgpUp := func(learned ...string) *pb.TunnelStatus {
		return &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_UP, Bgp: &pb.VpnBgpStatus{State: BGPEstablished, Learned: learned}}
	}
	bgpDown := &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_UP, Bgp: &pb.VpnBgpStatus{State: "active", Reason: "hold timer expired"}}
	routes := func() []string {
		t.Helper()
		rtb, err := s.GetRouteTable(c, vpc.MainRouteTableId)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rtb.Routes {
			if r.Target == conn.Id && r.Origin != pb.RouteOrigin_ROUTE_ORIGIN_VPN_BGP {
				t.Fatalf("route %v: origin %v, want VPN_BGP", r.DestinationCidr, r.Origin)
			}
		}
		return routeSet(rtb.Routes)
	}
	preferred := func() int {
		got, _ := s.GetVpnConnection(c, conn.Id, false)
		for i, tu := range got.Tunnels {
			if tu.Preferred {
				return i
			}
		}
		return -1
	}

	// Tunnel 1 up, session not yet: nothing propagates, not preferred.
	if err := s.ReportTunnelState(c, e0, conn.Id, 0, bgpDown); err != nil {
		t.Fatal(err)
	}
	if got := routes(); len(got) != 1 || preferred() != -1 {
		t.Fatalf("session down: routes %v, preferred %d", got, preferred())
	}
	if err := s.ReportTunnelState(c, e0, conn.Id, 0, bgpUp("192.168.0.0/16")); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/16→local", "192.168.0.0/16→" + conn.Id}
	if got := routes(); !slices.Equal(got, want) || preferred() != 0 {
		t.Fatalf("tunnel 1 established: %v (preferred %d), want %v", got, preferred(), want)
	}
	if err := s.ReportTunnelState(c, e1, conn.Id, 1, bgpUp("192.168.0.0/16", "172.16.0.0/12")); err != nil {
		t.Fatal(err)
	}
	want = []string{"10.0.0.0/16→local", "172.16.0.0/12→" + conn.Id, "192.168.0.0/16→" + conn.Id}
	if got := routes(); !slices.Equal(got, want) {
		t.Fatalf("both established: %v, want %v", got, want)
	}
	if ets, err := s.EdgeTunnels(c, e0); err != nil || !slices.Equal(ets[0].Routes, []string{"172.16.0.0/12", "192.168.0.0/16"}) {
		t.Fatalf("edge tunnels' routes (what the site may send from): %v %v", ets, err)
	}
	// Tunnel 1's session down: tunnel 2 carries, 192.168/16 stays.
	if err := s.ReportTunnelState(c, e0, conn.Id, 0, bgpDown); err != nil {
		t.Fatal(err)
	}
	if got := routes(); !slices.Equal(got, want) || preferred() != 1 {
		t.Fatalf("tunnel 1's session down: %v (preferred %d), want %v on tunnel 2", got, preferred(), want)
	}
	evs, _ := s.ListEvents(c, 100)
	if !slices.ContainsFunc(evs, func(e *pb.SecurityEvent) bool { return e.Reason == ReasonTunnelDown && e.Operational }) {
		t.Fatalf("no operational event for the session going down: %v", evs)
	}
	// Tunnel 2's withdraws 172.16/12; then it goes down: all withdrawn.
	if err := s.ReportTunnelState(c, e1, conn.Id, 1, bgpUp("192.168.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if got := routes(); len(got) != 2 {
		t.Fatalf("after a withdrawal: %v", got)
	}
	if err := s.ReportTunnelState(c, e1, conn.Id, 1, &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_DOWN}); err != nil {
		t.Fatal(err)
	}
	if got := routes(); len(got) != 1 {
		t.Fatalf("both sessions down: %v", got)
	}
	// Bad reports are refused with what is wrong.
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("192.168.%d.0/24", i)
	}
	for _, bad := range [][]string{many, {"bogus"}, {"169.254.0.0/16"}} {
		if err := s.ReportTunnelState(c, e0, conn.Id, 0, bgpUp(bad...)); !errors.Is(err, model.ErrInvalid) {
			t.Fatalf("report learning %d prefixes %.20v: %v, want invalid", len(bad), bad, err)
		}
	}
}

func TestCarrying(t *testing.T) {
	up := pb.TunnelState_TUNNEL_STATE_UP
	for _, tc := range []struct {
		st   *pb.TunnelStatus
		want bool
	}{
		{nil, false},
		{&pb.TunnelStatus{State: up}, true},
		{&pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_CONNECTING, Bgp: &pb.VpnBgpStatus{State: BGPEstablished}}, false},
		{&pb.TunnelStatus{State: up, Bgp: &pb.VpnBgpStatus{State: "idle"}}, false},
		{&pb.TunnelStatus{State: up, Bgp: &pb.VpnBgpStatus{State: BGPEstablished}}, true},
	} {
		if got := Carrying(tc.st); got != tc.want {
			t.Errorf("Carrying(%v) = %v, want %v", tc.st, got, tc.want)
		}
	}
}

func FuzzValidateBGPStatus(f *testing.F) {
	f.Add("192.168.0.0/16", "10.0.0.0/8")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		st := &pb.VpnBgpStatus{State: BGPEstablished, Learned: []string{a, b}}
		if err := ValidateBGPStatus(st); err == nil {
			for _, l := range st.Learned {
				if _, err := netip.ParsePrefix(l); err != nil {
					t.Fatalf("accepted %q", l)
				}
			}
		}
	})
}
