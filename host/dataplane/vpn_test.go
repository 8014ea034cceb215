package dataplane

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// vpnTarget is a VPN connection a propagated route targets.
var vpnTarget = tables.Target{Kind: tables.TargetVPNConnection, ID: 0xa1}

// vpnScene: red routes 192.168.0.0/16 to vpnTarget; edge 60 holds its
// preferred up tunnel, edge 61 its other up tunnel (standby), edge 62
// serves VPN for another connection only.
func vpnScene(t testing.TB) (*fixture, tables.Host, tables.Host, tables.Host) {
	f := newFixture(t)
	serving := tables.Host{ID: 60, Underlay: netip.MustParseAddr("127.0.1.110"), Role: tables.RoleEdge, Healthy: true,
		Functions: &[]tables.Function{{Kind: tables.TargetVPNConnection, Targets: []uint64{vpnTarget.ID}}}}
	standby := tables.Host{ID: 61, Underlay: netip.MustParseAddr("127.0.1.111"), Role: tables.RoleEdge, Healthy: true,
		Functions: &[]tables.Function{{Kind: tables.TargetVPNConnection, Standby: []uint64{vpnTarget.ID}}}}
	other := tables.Host{ID: 62, Underlay: netip.MustParseAddr("127.0.1.112"), Role: tables.RoleEdge, Healthy: true,
		Functions: &[]tables.Function{{Kind: tables.TargetVPNConnection, Targets: []uint64{0xb2}}}}
	withRoute(t, f, "192.168.0.0/16", vpnTarget, serving, standby, other)
	return f, serving, standby, other
}

// fromSite encapsulates a packet from src (on the site) to dst as an edge
// sends it: marked with the VPN function and target.
func fromSite(buf []byte, src, dst string, target tables.Target) []byte {
	n := udpPacket(buf, src, dst, 10, 64, false)
	start, ok := packet.EncapsulateGeneve(buf, n, red, packet.GeneveOptions{SourceVNI: red, HasTarget: true, Function: uint8(target.Kind), Target: target.ID})
	if !ok {
		panic("encapsulate")
	}
	return append([]byte(nil), buf[start:packet.Headroom+n]...)
}

// TestVPNNextHop: traffic for a propagated VPN route goes to the edge of
// the preferred tunnel only, every flow, named with the connection; a
// standby edge never gets any.
func TestVPNNextHop(t *testing.T) {
	f, serving, _, _ := vpnScene(t)
	buf := make([]byte, 2048)
	var r Result
	for port := range 64 {
		n := udpPacket(buf, "10.0.1.4", "192.168.1.1", 10, 64, false)
		packet.UDP(buf[packet.Headroom+packet.IPv4MinSize:]).SetSrcPort(uint16(30000 + port))
		f.p.Egress(f.t.Load(), f.enis[1], buf, n, make([]byte, ScratchSize), &r)
		if r.Verdict != datapath.Forwarded || r.Dst != serving.Underlay {
			t.Fatalf("verdict %v to %v; want forwarded to the serving edge %v", r.Verdict, r.Dst, serving.Underlay)
		}
		var e packet.Encap
		if !packet.ParseGenevePayload(r.Payload, &e) || !e.Options.HasTarget ||
			e.Options.Function != uint8(tables.TargetVPNConnection) || e.Options.Target != vpnTarget.ID {
			t.Fatalf("options %+v: want the VPN connection named", e.Options)
		}
	}
}

// TestFromVPNEdge: a host accepts a site's packet from the serving or the
// standby edge, marked with the connection, from a source the VPC routes
// to that connection; anything else from an edge is a sender mismatch.
func TestFromVPNEdge(t *testing.T) {
	f, serving, standby, other := vpnScene(t)
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		name   string
		sender netip.Addr
		src    string
		target tables.Target
		want   datapath.Verdict
	}{
		{"serving edge", serving.Underlay, "192.168.1.1", vpnTarget, datapath.Delivered},
		{"standby edge", standby.Underlay, "192.168.7.7", vpnTarget, datapath.Delivered},
		{"edge of another connection", other.Underlay, "192.168.1.1", vpnTarget, datapath.SenderMismatch},
		{"claims another connection", serving.Underlay, "192.168.1.1", tables.Target{Kind: tables.TargetVPNConnection, ID: 0xb2}, datapath.SenderMismatch},
		{"source not routed to the connection", serving.Underlay, "198.51.100.9", vpnTarget, datapath.SenderMismatch},
		{"source inside the VPC", serving.Underlay, "10.0.1.5", vpnTarget, datapath.SenderMismatch},
		{"unmarked (taken for the internet)", serving.Underlay, "192.168.1.1", tables.Target{}, datapath.SenderMismatch},
		{"marked igw by a VPN edge", serving.Underlay, "192.168.1.1", tables.Target{Kind: tables.TargetInternetGateway, ID: 9}, datapath.SenderMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in []byte
			if tc.target.Kind == 0 {
				n := udpPacket(buf, tc.src, "10.0.1.4", 10, 64, false)
				in = append([]byte(nil), wire(buf, n, red, red)...)
			} else {
				in = fromSite(buf, tc.src, "10.0.1.4", tc.target)
			}
			var r Result
			if f.p.Ingress(f.t.Load(), tc.sender, in, &r); r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", r.Verdict, tc.want)
			}
		})
	}
}

// TestFromVPNEdgeNoAllocations: the generalised edge check stays off the heap.
func TestFromVPNEdgeNoAllocations(t *testing.T) {
	f, serving, _, _ := vpnScene(t)
	f.p.cfg.Events = func(datapath.Event) {}
	snap := f.t.Load()
	buf := make([]byte, 2048)
	in := fromSite(buf, "192.168.1.1", "10.0.1.4", vpnTarget)
	var r Result
	if allocs := testing.AllocsPerRun(100, func() { f.p.Ingress(snap, serving.Underlay, in, &r) }); allocs != 0 || r.Verdict != datapath.Delivered {
		t.Errorf("ingress from a VPN edge: %v, %.1f allocations per packet", r.Verdict, allocs)
	}
}
