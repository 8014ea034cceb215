package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

const (
	vgwA  = "vgw-00000000000000aa"
	vpnA  = "vpn-00000000000000a1"
	vpnB  = "vpn-00000000000000b2"
	dxA   = "dxvif-00000000000000d1"
	pcxA  = "pcx-00000000000000c1"
	local = "local"
)

func routeSet(rs []*pb.Route) []string {
	var out []string
	for _, r := range rs {
		s := r.DestinationCidr + "→" + r.Target
		if r.State == pb.RouteState_ROUTE_STATE_INACTIVE {
			s += " (inactive)"
		}
		out = append(out, s)
	}
	return out
}

// TestEffectiveRoutesPriority: AWS's priority for one prefix — the
// table's own route, then Direct Connect, then VPN static, then VPN BGP —
// with a source that is down withdrawn so the next one takes over, and
// longer prefixes left to the hosts' longest-prefix match.
func TestEffectiveRoutesPriority(t *testing.T) {
	own := []*pb.Route{
		{DestinationCidr: "10.0.0.0/16", Target: local, State: pb.RouteState_ROUTE_STATE_ACTIVE},
		{DestinationCidr: "172.16.0.0/16", Target: pcxA, State: pb.RouteState_ROUTE_STATE_ACTIVE},
	}
	prop := func(src string, o pb.RouteOrigin, ps ...string) *pb.PropagatedRoutes {
		return &pb.PropagatedRoutes{VgwId: vgwA, SourceId: src, Origin: o, Prefixes: ps}
	}
	all := []*pb.PropagatedRoutes{
		prop(vpnA, pb.RouteOrigin_ROUTE_ORIGIN_VPN_BGP, "192.168.0.0/16", "172.16.0.0/16", "192.168.1.0/24"),
		prop(vpnB, pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC, "192.168.0.0/16"),
		prop(dxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, "192.168.0.0/16"),
	}
	for _, tc := range []struct {
		name string
		down []string
		want []string
	}{
		{"all up: Direct Connect wins, own route beats propagated", nil, []string{
			"10.0.0.0/16→local", "172.16.0.0/16→" + pcxA,
			"172.16.0.0/16→" + vpnA + " (inactive)",
			"192.168.0.0/16→" + dxA, "192.168.0.0/16→" + vpnB + " (inactive)", "192.168.0.0/16→" + vpnA + " (inactive)",
			"192.168.1.0/24→" + vpnA,
		}},
		{"Direct Connect down: VPN static over VPN BGP", []string{dxA}, []string{
			"10.0.0.0/16→local", "172.16.0.0/16→" + pcxA,
			"172.16.0.0/16→" + vpnA + " (inactive)",
			"192.168.0.0/16→" + vpnB, "192.168.0.0/16→" + vpnA + " (inactive)", "192.168.0.0/16→" + dxA + " (inactive)",
			"192.168.1.0/24→" + vpnA,
		}},
		{"only BGP left", []string{dxA, vpnB}, []string{
			"10.0.0.0/16→local", "172.16.0.0/16→" + pcxA,
			"172.16.0.0/16→" + vpnA + " (inactive)",
			"192.168.0.0/16→" + vpnA, "192.168.0.0/16→" + vpnB + " (inactive)", "192.168.0.0/16→" + dxA + " (inactive)",
			"192.168.1.0/24→" + vpnA,
		}},
		{"everything down: nothing propagated is active", []string{dxA, vpnA, vpnB}, []string{
			"10.0.0.0/16→local", "172.16.0.0/16→" + pcxA,
			"172.16.0.0/16→" + vpnA + " (inactive)",
			"192.168.0.0/16→" + vpnA + " (inactive)", "192.168.0.0/16→" + vpnB + " (inactive)", "192.168.0.0/16→" + dxA + " (inactive)",
			"192.168.1.0/24→" + vpnA + " (inactive)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EffectiveRoutes(own, all, func(src string) (bool, string) {
				if slices.Contains(tc.down, src) {
					return false, src + " is down"
				}
				return true, ""
			})
			gs := routeSet(got)
			slices.Sort(gs)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(gs, want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(gs, "\n  "), strings.Join(want, "\n  "))
			}
			active := ActiveRoutes(got)
			seen := map[string]bool{}
			for _, r := range active {
				if seen[r.DestinationCidr] {
					t.Fatalf("two active routes for %s: %v", r.DestinationCidr, routeSet(active))
				}
				seen[r.DestinationCidr] = true
				if r.State == pb.RouteState_ROUTE_STATE_INACTIVE {
					t.Fatalf("inactive route kept: %v", r)
				}
			}
			for _, r := range got {
				if r.State == pb.RouteState_ROUTE_STATE_INACTIVE && r.InactiveReason == "" {
					t.Fatalf("inactive route %s→%s says not why", r.DestinationCidr, r.Target)
				}
			}
		})
	}
	// The inputs are not modified (world shares them between snapshots).
	if len(own) != 2 || all[0].Prefixes[0] != "192.168.0.0/16" {
		t.Fatal("EffectiveRoutes changed its input")
	}
}

// TestEffectiveRoutesTieIsDeterministic: two VPN connections of the same
// origin for one prefix: the lower source id wins on every server.
func TestEffectiveRoutesTieIsDeterministic(t *testing.T) {
	a := &pb.PropagatedRoutes{VgwId: vgwA, SourceId: vpnB, Origin: pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC, Prefixes: []string{"192.168.0.0/16"}}
	b := &pb.PropagatedRoutes{VgwId: vgwA, SourceId: vpnA, Origin: pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC, Prefixes: []string{"192.168.0.0/16"}}
	for _, order := range [][]*pb.PropagatedRoutes{{a, b}, {b, a}} {
		got := ActiveRoutes(EffectiveRoutes(nil, order, nil))
		if len(got) != 1 || got[0].Target != vpnA {
			t.Fatalf("active: %v, want only %s", routeSet(got), vpnA)
		}
	}
}

func TestValidateInsideCIDR(t *testing.T) {
	for _, ok := range []string{"169.254.10.0/30", "169.254.6.0/30", "169.254.169.248/30", "169.254.255.252/30"} {
		if err := ValidateInsideCIDR(netip.MustParsePrefix(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"169.254.0.0/30", "169.254.1.0/30", "169.254.2.0/30", "169.254.3.0/30", "169.254.4.0/30",
		"169.254.5.0/30", "169.254.169.252/30", "169.254.10.0/29", "169.254.10.4/31", "169.254.10.1/30", "10.0.0.0/30", "169.255.0.0/30"} {
		if err := ValidateInsideCIDR(netip.MustParsePrefix(bad)); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%s accepted (%v)", bad, err)
		}
	}
	if err := ValidateInsideCIDR(netip.Prefix{}); !errors.Is(err, model.ErrInvalid) {
		t.Errorf("zero prefix accepted")
	}
}

func TestValidateASN(t *testing.T) {
	for _, ok := range []uint32{1, 65000, 64512, 4200000000, 4294967294} {
		if err := ValidateASN(ok, false); err != nil {
			t.Errorf("%d: %v", ok, err)
		}
	}
	for _, bad := range []uint32{0, 7224, 4294967295} {
		if err := ValidateASN(bad, false); err == nil {
			t.Errorf("%d accepted", bad)
		}
	}
	if ValidateASN(64512, true) == nil {
		t.Error("a customer gateway with the VPC side's ASN 64512 accepted")
	}
}

func TestValidatePSK(t *testing.T) {
	for _, ok := range []string{"abcdefgh", "A1._b2c3", strings.Repeat("x", 64), "1234567890"} {
		if err := ValidatePSK(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "short", strings.Repeat("x", 65), "0abcdefgh", "abc defgh", "abc-defgh", "abcdéfgh", "abc\"defgh"} {
		if err := ValidatePSK(bad); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
	for range 100 {
		if k := newPSK(); ValidatePSK(k) != nil {
			t.Fatalf("generated key %q breaks the rules: %v", k, ValidatePSK(k))
		}
	}
}

func TestValidateSiteRoute(t *testing.T) {
	for _, ok := range []string{"192.168.0.0/16", "198.51.100.0/24", "10.1.0.0/16", "203.0.113.5/32"} {
		if err := ValidateSiteRoute(netip.MustParsePrefix(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0/0", "192.168.0.1/16", "169.254.0.0/24", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/8", "::/0"} {
		if err := ValidateSiteRoute(netip.MustParsePrefix(bad)); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%s accepted (%v)", bad, err)
		}
	}
}

// FuzzVPNValidators: no input panics the validators, and what they accept
// keeps its promises.
func FuzzVPNValidators(f *testing.F) {
	f.Add("169.254.10.0/30", "abcdefgh", uint32(65000))
	f.Add("169.254.0.0/30", "0bad", uint32(7224))
	f.Add("10.0.0.0/8", "", uint32(0))
	f.Fuzz(func(t *testing.T, cidr, psk string, asn uint32) {
		if p, err := netip.ParsePrefix(cidr); err == nil {
			if ValidateInsideCIDR(p) == nil && (p.Bits() != 30 || !linkLocal.Contains(p.Addr()) || p.Masked() != p) {
				t.Fatalf("inside CIDR %s accepted", p)
			}
			if ValidateSiteRoute(p) == nil && (p.Bits() == 0 || p.Masked() != p || !p.Addr().Is4() || linkLocal.Overlaps(p)) {
				t.Fatalf("site route %s accepted", p)
			}
		}
		if ValidatePSK(psk) == nil {
			if len(psk) < 8 || len(psk) > 64 || psk[0] == '0' || strings.ContainsAny(psk, " \"'\\\n{}#=") {
				t.Fatalf("PSK %q accepted", psk)
			}
		}
		if ValidateASN(asn, true) == nil && (asn == 0 || asn == 7224 || asn == 64512 || asn == 4294967295) {
			t.Fatalf("ASN %d accepted", asn)
		}
	})
}

// TestPlaceTunnels: two edges or more put a connection's tunnels on two
// different ones; placement is the same for the same inputs.
func TestPlaceTunnels(t *testing.T) {
	if p := PlaceTunnels(vpnA, nil); p != [2]string{} {
		t.Fatalf("no edges: %v", p)
	}
	if p := PlaceTunnels(vpnA, []string{"e1"}); p != [2]string{"e1", "e1"} {
		t.Fatalf("one edge: %v", p)
	}
	for _, es := range [][]string{{"e1", "e2"}, {"e1", "e2", "e3"}} {
		p := PlaceTunnels(vpnA, es)
		if p[0] == p[1] || p != PlaceTunnels(vpnA, es) || len(es) == 3 && p != PlaceTunnels(vpnA, []string{es[2], es[0], es[1]}) {
			t.Fatalf("edges %v: %v", es, p)
		}
	}
	// An edge joining takes tunnels only onto itself (tunnel 2 may take the
	// edge tunnel 1 left); one leaving moves only the tunnels it held (and
	// tunnel 2 when tunnel 1 lands on its edge); tunnels spread.
	four := []string{"e1", "e2", "e3", "e4"}
	per := map[string]int{}
	for i := range 1000 {
		vpn := fmt.Sprintf("vpn-%016x", i)
		before, after := PlaceTunnels(vpn, four[:3]), PlaceTunnels(vpn, four)
		if after[0] != before[0] && after[0] != "e4" {
			t.Fatalf("%s: tunnel 1 moved from %s to %s when e4 joined", vpn, before[0], after[0])
		}
		if after[1] != before[1] && after[1] != "e4" && !(after[0] == "e4" && after[1] == before[0]) {
			t.Fatalf("%s: tunnel 2 moved from %s to %s when e4 joined (tunnel 1: %s → %s)", vpn, before[1], after[1], before[0], after[0])
		}
		per[after[0]]++
		per[after[1]]++
		left := PlaceTunnels(vpn, []string{"e1", "e3", "e4"})
		if after[0] != "e2" && left[0] != after[0] {
			t.Fatalf("%s: tunnel 1 on %s moved to %s when e2 left", vpn, after[0], left[0])
		}
		if after[1] != "e2" && left[1] != after[1] && left[0] != after[1] {
			t.Fatalf("%s: tunnel 2 on %s moved to %s when e2 left", vpn, after[1], left[1])
		}
	}
	for _, e := range four {
		if per[e] < 350 || per[e] > 650 {
			t.Fatalf("tunnels per edge over 1000 connections: %v; want about 500 each", per)
		}
	}
}

// TestPreferredTunnel: the tunnel up the longest carries the traffic, so
// a tunnel coming back does not take it over.
func TestPreferredTunnel(t *testing.T) {
	now := time.Now()
	up := func(ago time.Duration) *pb.TunnelStatus {
		return &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_UP, Since: timestamppb.New(now.Add(-ago))}
	}
	down := &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_DOWN}
	for _, tc := range []struct {
		sts  []*pb.TunnelStatus
		want int
	}{
		{[]*pb.TunnelStatus{nil, nil}, -1},
		{[]*pb.TunnelStatus{down, down}, -1},
		{[]*pb.TunnelStatus{up(time.Minute), down}, 0},
		{[]*pb.TunnelStatus{down, up(time.Minute)}, 1},
		{[]*pb.TunnelStatus{up(time.Second), up(time.Minute)}, 1},
		{[]*pb.TunnelStatus{up(time.Hour), up(time.Minute)}, 0},
	} {
		if got := PreferredTunnel(tc.sts); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.sts, got, tc.want)
		}
	}
}

// TestVPNLifecycle: cgw, vgw, attach, a connection with two tunnels, a
// static route propagated into a route table once enabled — inactive until
// a tunnel is up, active then — and the refusals on the way.
func TestVPNLifecycle(t *testing.T) {
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
	if _, err := s.CreateCustomerGateway(c, "office", netip.MustParseAddr("127.0.0.1"), 0); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("loopback customer gateway: %v", err)
	}
	cgw, err := s.CreateCustomerGateway(c, "office", netip.MustParseAddr("203.0.113.7"), 0)
	if err != nil || cgw.BgpAsn != DefaultCustomerASN {
		t.Fatalf("cgw: %v %v", cgw, err)
	}
	vgw, err := s.CreateVpnGateway(c, "red-vgw", 0)
	if err != nil || vgw.AmazonSideAsn != DefaultAmazonASN {
		t.Fatalf("vgw: %v %v", vgw, err)
	}
	if _, err := s.EnableRoutePropagation(c, vpc.MainRouteTableId, "red-vgw"); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("propagation from a detached vgw: %v", err)
	}
	if _, err := s.AttachVpnGateway(c, "red-vgw", "red"); err != nil {
		t.Fatal(err)
	}
	other, _ := s.CreateVpnGateway(c, "", 0)
	if _, err := s.AttachVpnGateway(c, other.Id, "red"); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("second vgw on red: %v", err)
	}
	if _, err := s.CreateVpnConnection(c, VpnConnectionSpec{CustomerGateway: "office", VpnGateway: "red-vgw",
		Tunnels: [2]TunnelOptions{{InsideCIDR: mustPrefix("169.254.0.0/30")}}}); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("reserved inside CIDR: %v", err)
	}
	conn, err := s.CreateVpnConnection(c, VpnConnectionSpec{Name: "office-vpn", CustomerGateway: "office", VpnGateway: "red-vgw", StaticRoutesOnly: true,
		Tunnels: [2]TunnelOptions{{InsideCIDR: mustPrefix("169.254.10.0/30"), PSK: "tunnel1.key_ok"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(conn.Tunnels) != 2 || conn.Tunnels[0].InsideCidr != "169.254.10.0/30" || conn.Tunnels[0].PreSharedKey != "tunnel1.key_ok" ||
		conn.Tunnels[1].InsideCidr == "" || ValidatePSK(conn.Tunnels[1].PreSharedKey) != nil ||
		conn.Tunnels[0].OutsideAddress == conn.Tunnels[1].OutsideAddress || conn.Tunnels[0].DpdTimeoutSeconds != DefaultDPDTimeout {
		t.Fatalf("tunnels: %v", conn.Tunnels)
	}
	if conn.Tunnels[0].EdgeId == conn.Tunnels[1].EdgeId || conn.Tunnels[0].EdgeId == "" {
		t.Fatalf("tunnels on edges %q and %q; want two different edges", conn.Tunnels[0].EdgeId, conn.Tunnels[1].EdgeId)
	}
	got, _ := s.GetVpnConnection(c, "office-vpn", false)
	if got.Tunnels[0].PreSharedKey != "" {
		t.Fatal("get shows the pre-shared key")
	}
	if ls, _ := s.ListVpnConnections(c); len(ls) != 1 || ls[0].Tunnels[1].PreSharedKey != "" {
		t.Fatalf("list: %v", ls)
	}
	// The pool of 6 addresses holds 3 connections, not 4.
	for i := range 2 {
		if _, err := s.CreateVpnConnection(c, VpnConnectionSpec{CustomerGateway: "office", VpnGateway: "red-vgw"}); err != nil {
			t.Fatalf("connection %d: %v", i+2, err)
		}
	}
	if _, err := s.CreateVpnConnection(c, VpnConnectionSpec{CustomerGateway: "office", VpnGateway: "red-vgw"}); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("pool exhausted: %v", err)
	}

	if _, err := s.AddVpnRoute(c, "office-vpn", mustPrefix("192.168.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddVpnRoute(c, "office-vpn", mustPrefix("192.168.0.0/16")); !errors.Is(err, model.ErrExists) {
		t.Fatalf("route twice: %v", err)
	}
	rtb, err := s.EnableRoutePropagation(c, vpc.MainRouteTableId, "red-vgw")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.0/16→local", "192.168.0.0/16→" + conn.Id + " (inactive)"}; !slices.Equal(routeSet(rtb.Routes), want) {
		t.Fatalf("routes before a tunnel is up: %v, want %v", routeSet(rtb.Routes), want)
	}
	if r := rtb.Routes[1]; r.Origin != pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC || r.VgwId != vgw.Id || !strings.Contains(r.InactiveReason, "no tunnel") {
		t.Fatalf("propagated route: %v", r)
	}
	up := &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_UP}
	wrong := conn.Tunnels[1].EdgeId
	if err := s.ReportTunnelState(c, wrong, conn.Id, 0, up); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("report from the edge the tunnel is not on: %v", err)
	}
	if err := s.ReportTunnelState(c, conn.Tunnels[0].EdgeId, conn.Id, 0, up); err != nil {
		t.Fatal(err)
	}
	rtb, _ = s.GetRouteTable(c, vpc.MainRouteTableId)
	if want := []string{"10.0.0.0/16→local", "192.168.0.0/16→" + conn.Id}; !slices.Equal(routeSet(rtb.Routes), want) {
		t.Fatalf("routes with tunnel 1 up: %v, want %v", routeSet(rtb.Routes), want)
	}
	got, _ = s.GetVpnConnection(c, conn.Id, false)
	if !got.Tunnels[0].Preferred || got.Tunnels[1].Preferred || got.Tunnels[0].Status.GetState() != pb.TunnelState_TUNNEL_STATE_UP {
		t.Fatalf("tunnels after the report: %v", got.Tunnels)
	}
	ets, err := s.EdgeTunnels(c, conn.Tunnels[0].EdgeId)
	if err != nil || !slices.ContainsFunc(ets, func(e *pb.EdgeTunnel) bool {
		return e.VpnConnectionId == conn.Id && e.Tunnel == 0 && e.Config.PreSharedKey == "tunnel1.key_ok" && e.PeerAddress == "203.0.113.7" && e.VpcCidr == "10.0.0.0/16"
	}) {
		t.Fatalf("edge tunnels: %v %v", ets, err)
	}

	// Detached, the vgw propagates nothing; deleting it is refused while
	// attached or used.
	if err := s.DeleteVpnGateway(c, "red-vgw"); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("delete attached vgw: %v", err)
	}
	if _, err := s.DetachVpnGateway(c, "red-vgw"); err != nil {
		t.Fatal(err)
	}
	rtb, _ = s.GetRouteTable(c, vpc.MainRouteTableId)
	if len(rtb.Routes) != 1 {
		t.Fatalf("routes with the vgw detached: %v", routeSet(rtb.Routes))
	}
	if err := s.DeleteVpnGateway(c, "red-vgw"); !errors.Is(err, model.ErrPrecondition) || !strings.Contains(err.Error(), conn.Id[:4]) {
		t.Fatalf("delete vgw with connections: %v", err)
	}
	if err := s.DeleteCustomerGateway(c, "office"); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("delete used cgw: %v", err)
	}
	ls, _ := s.ListVpnConnections(c)
	for _, v := range ls {
		if err := s.DeleteVpnConnection(c, v.Id); err != nil {
			t.Fatal(err)
		}
	}
	if prs, _ := s.ListPropagatedRoutes(c, vgw.Id); len(prs) != 0 {
		t.Fatalf("propagated routes left behind: %v", prs)
	}
	if err := s.DeleteVpnGateway(c, "red-vgw"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCustomerGateway(c, "office"); err != nil {
		t.Fatal(err)
	}
	// Every address is free again: a new connection gets the first one.
	if used, _ := s.keysUnder(c, s.key("pubip")+"/"); len(used) != 0 {
		t.Fatalf("addresses left allocated: %v", used)
	}
}

// TestSetPropagatedRoutes: the general entry point (Direct Connect uses it)
// replaces a source's routes whole and refuses what is not a source.
func TestSetPropagatedRoutes(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	ps := []netip.Prefix{mustPrefix("192.168.1.0/24"), mustPrefix("192.168.0.0/24"), mustPrefix("192.168.0.0/24")}
	if err := s.SetPropagatedRoutes(c, vgwA, dxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, ps); err != nil {
		t.Fatal(err)
	}
	prs, _ := s.ListPropagatedRoutes(c, vgwA)
	if len(prs) != 1 || !slices.Equal(prs[0].Prefixes, []string{"192.168.0.0/24", "192.168.1.0/24"}) {
		t.Fatalf("after set: %v", prs)
	}
	if err := s.SetPropagatedRoutes(c, vgwA, dxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, ps[:1]); err != nil {
		t.Fatal(err)
	}
	if prs, _ = s.ListPropagatedRoutes(c, vgwA); len(prs) != 1 || !slices.Equal(prs[0].Prefixes, []string{"192.168.1.0/24"}) {
		t.Fatalf("after replace: %v", prs)
	}
	if err := s.SetPropagatedRoutes(c, vgwA, dxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, nil); err != nil {
		t.Fatal(err)
	}
	if prs, _ = s.ListPropagatedRoutes(c, vgwA); len(prs) != 0 {
		t.Fatalf("after withdraw: %v", prs)
	}
	for _, bad := range []struct {
		vgw, src string
		o        pb.RouteOrigin
		ps       []netip.Prefix
	}{
		{"vpc-00000000000000aa", dxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, ps},
		{vgwA, pcxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, ps},
		{vgwA, dxA, pb.RouteOrigin_ROUTE_ORIGIN_STATIC, ps},
		{vgwA, dxA, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, []netip.Prefix{mustPrefix("0.0.0.0/0")}},
	} {
		if err := s.SetPropagatedRoutes(c, bad.vgw, bad.src, bad.o, bad.ps); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%v accepted: %v", bad, err)
		}
	}
}
