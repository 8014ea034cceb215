package tables

import (
	"net/netip"
	"testing"
)

// testVPC is VPC 7 (10.7.0.0/16), peered with VPC 9 (10.9.0.0/16) over pcx 0x79.
// Subnet 10.7.0.0/24 uses the main route table 1, subnet 10.7.1.0/24 table 2,
// and subnet 10.7.2.0/24 names table 2 for a /25 inside it.
func testVPC() VPC {
	p := netip.MustParsePrefix
	return VPC{
		VNI: 7, ID: 0x7, CIDR: p("10.7.0.0/16"), MainRouteTable: 1,
		Subnets: []Subnet{
			{ID: 1, CIDR: p("10.7.0.0/24")},
			{ID: 2, CIDR: p("10.7.1.0/24"), RouteTable: 2},
			{ID: 3, CIDR: p("10.7.2.0/23")},
			{ID: 4, CIDR: p("10.7.2.0/25"), RouteTable: 2},
		},
		RouteTables: []RouteTable{
			{ID: 1, Routes: []Route{
				{Dst: p("0.0.0.0/0"), Target: Target{TargetInternetGateway, 0x1}},
				{Dst: p("10.7.0.0/16"), Target: Target{Kind: TargetLocal}},
				{Dst: p("10.9.1.0/24"), Target: Target{Kind: TargetBlackhole}},
				{Dst: p("10.9.0.0/16"), Target: Target{TargetPeering, 0x79}},
				{Dst: p("192.168.0.0/16"), Target: Target{TargetVPNGateway, 0x2}},
				{Dst: p("192.168.7.7/32"), Target: Target{TargetDirectConnect, 0x3}},
				{Dst: p("52.216.0.0/15"), Target: Target{TargetEndpoint, 0x4}},
			}},
			{ID: 2, Routes: []Route{
				{Dst: p("10.7.0.0/16"), Target: Target{Kind: TargetLocal}},
				{Dst: p("10.9.0.0/16"), Target: Target{TargetPeering, 0x79}},
			}},
		},
		Peerings: []Peering{{ID: 0x79, PeerVNI: 9}},
	}
}

func TestRoute(t *testing.T) {
	tb := newTestTables(t)
	v, ok := tb.Load().VPC(7)
	if !ok {
		t.Fatal("no VPC 7")
	}
	const (
		inMain   = "10.7.0.10"  // subnet 1, main table
		inRtb2   = "10.7.1.10"  // subnet 2, table 2
		inNested = "10.7.2.10"  // subnet 4 (/25) inside subnet 3 (/23): the /25 wins
		inOuter  = "10.7.3.200" // subnet 3 only: main table
		outside  = "10.8.0.1"   // in no subnet
	)
	tests := []struct {
		src, dst string
		want     string // Target.String(), "" for no route
	}{
		{inMain, "10.7.1.20", "local"},
		{inMain, "10.9.0.5", "pcx-0000000000000079"},
		{inMain, "10.9.1.5", "blackhole"}, // more specific than the peering route
		{inMain, "8.8.8.8", "igw-0000000000000001"},
		{inMain, "192.168.1.1", "vgw-0000000000000002"},
		{inMain, "192.168.7.7", "dxvif-0000000000000003"},
		{inMain, "52.217.1.1", "vpce-0000000000000004"},
		{inRtb2, "10.7.0.1", "local"},
		{inRtb2, "10.9.1.5", "pcx-0000000000000079"},
		{inRtb2, "8.8.8.8", ""}, // table 2 has no default route
		{inNested, "8.8.8.8", ""},
		{inOuter, "8.8.8.8", "igw-0000000000000001"},
		{outside, "10.7.0.1", ""},
		{inMain, "fd00::1", ""},
	}
	for _, tt := range tests {
		r := v.Route(netip.MustParseAddr(tt.src), netip.MustParseAddr(tt.dst))
		got := ""
		if r != nil {
			got = r.Target.String()
			if !r.Dst.Contains(netip.MustParseAddr(tt.dst)) {
				t.Errorf("%s → %s: route %v does not contain the destination", tt.src, tt.dst, r.Dst)
			}
		}
		if got != tt.want {
			t.Errorf("Route(%s → %s) = %q, want %q", tt.src, tt.dst, got, tt.want)
		}
	}
}

func TestRouteInAndPeers(t *testing.T) {
	tb := newTestTables(t)
	s := tb.Load()
	v, _ := s.VPC(7)
	if r := v.RouteIn(2, netip.MustParseAddr("10.9.0.1")); r == nil || r.Target != (Target{TargetPeering, 0x79}) {
		t.Errorf("RouteIn(rtb 2) = %v", r)
	}
	if r := v.RouteIn(3, netip.MustParseAddr("10.9.0.1")); r != nil {
		t.Errorf("RouteIn of a missing table found a route")
	}
	if vni, ok := v.PeerVNI(0x79); !ok || vni != 9 {
		t.Errorf("PeerVNI(pcx 79) = %d, %v; want 9", vni, ok)
	}
	if _, ok := v.PeerVNI(0x80); ok {
		t.Errorf("PeerVNI of an unknown peering found one")
	}
	if !s.Peered(7, 9) || s.Peered(7, 8) || s.Peered(7, 7) || s.Peered(9, 7) {
		t.Errorf("Peered: 7-9 %v, 7-8 %v, 7-7 %v, 9-7 (9 not in cache) %v",
			s.Peered(7, 9), s.Peered(7, 8), s.Peered(7, 7), s.Peered(9, 7))
	}
	if sn, ok := v.Subnet(netip.MustParseAddr("10.7.2.200")); !ok || sn.ID != 3 {
		t.Errorf("Subnet(10.7.2.200) = %+v, want subnet 3", sn)
	}
}

// TestVPCIsCopied checks that the cache keeps no alias into the caller's VPC.
func TestVPCIsCopied(t *testing.T) {
	tb := New(self)
	in := testVPC()
	tx := tb.Begin(1)
	mustOK(t, tx.UpsertVPC(in))
	tx.Commit()
	in.RouteTables[0].Routes[1].Target = Target{Kind: TargetBlackhole}
	in.Subnets[0].RouteTable = 2
	in.Peerings[0].PeerVNI = 10
	v, _ := tb.Load().VPC(7)
	r := v.Route(netip.MustParseAddr("10.7.0.1"), netip.MustParseAddr("10.7.0.2"))
	if r == nil || r.Target.Kind != TargetLocal || v.RouteTables[0].Routes[1].Target.Kind != TargetLocal ||
		v.Subnets[0].RouteTable != 0 || !tb.Load().Peered(7, 9) {
		t.Errorf("changing the caller's VPC changed the cache")
	}
}
