package dataplane

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

var (
	edgeA = netip.MustParseAddr("127.0.1.101")
	edgeB = netip.MustParseAddr("127.0.1.102")
)

// withInternet gives red an internet gateway (igw 9) with a default route
// to it, and registers the given edges (healthy or not).
func withInternet(tb testing.TB, f *fixture, edges ...tables.Host) {
	addRoute(tb, f, "0.0.0.0/0", tables.Target{Kind: tables.TargetInternetGateway, ID: 9}, func(v *tables.VPC) { v.InternetGateway = 9 }, edges...)
}

func TestEgressToEdge(t *testing.T) {
	inet := "203.0.113.10"
	t.Run("no edge", func(t *testing.T) {
		f := newFixture(t)
		withInternet(t, f)
		buf := make([]byte, 2048)
		var r Result
		f.p.Egress(f.t.Load(), f.enis[1], buf, udpPacket(buf, "10.0.1.4", inet, 10, 64, false), make([]byte, ScratchSize), &r)
		if r.Verdict != datapath.NoEdge {
			t.Fatalf("verdict %v, want no-edge", r.Verdict)
		}
	})
	t.Run("unhealthy edges are not chosen", func(t *testing.T) {
		f := newFixture(t)
		withInternet(t, f, internetEdge(50, edgeA, false),
			internetEdge(51, edgeB, true))
		seen := map[netip.Addr]int{}
		buf := make([]byte, 2048)
		var r Result
		for port := range 64 {
			n := udpPacket(buf, "10.0.1.4", inet, 10, 64, false)
			packet.UDP(buf[packet.Headroom+packet.IPv4MinSize:]).SetSrcPort(uint16(30000 + port))
			f.p.Egress(f.t.Load(), f.enis[1], buf, n, make([]byte, ScratchSize), &r)
			if r.Verdict != datapath.Forwarded {
				t.Fatalf("verdict %v, want forwarded", r.Verdict)
			}
			seen[r.Dst]++
			var e packet.Encap
			if !packet.ParseGenevePayload(r.Payload, &e) || e.VNI != red || e.Options.SourceVNI != red {
				t.Fatalf("to an edge the packet stays in its VPC: VNI %d SourceVPC %d", e.VNI, e.Options.SourceVNI)
			}
		}
		if len(seen) != 1 || seen[edgeB] != 64 {
			t.Fatalf("flows went to %v; want all to the healthy edge %v", seen, edgeB)
		}
	})
	t.Run("flows spread over healthy edges, each flow stays on one", func(t *testing.T) {
		f := newFixture(t)
		withInternet(t, f, internetEdge(50, edgeA, true),
			internetEdge(51, edgeB, true))
		seen := map[netip.Addr]int{}
		buf := make([]byte, 2048)
		var r Result
		for port := range 64 {
			var first netip.Addr
			for range 3 {
				n := udpPacket(buf, "10.0.1.4", inet, 10, 64, false)
				packet.UDP(buf[packet.Headroom+packet.IPv4MinSize:]).SetSrcPort(uint16(30000 + port))
				f.p.Egress(f.t.Load(), f.enis[1], buf, n, make([]byte, ScratchSize), &r)
				if first.IsValid() && r.Dst != first {
					t.Fatalf("one flow went to %v and %v", first, r.Dst)
				}
				first = r.Dst
			}
			seen[first]++
		}
		if seen[edgeA] == 0 || seen[edgeB] == 0 {
			t.Fatalf("64 flows all took one edge: %v", seen)
		}
	})
}

func TestIngressFromEdge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		igw      bool
		src      string
		vni, sv  uint32
		want     datapath.Verdict
		isAttack bool
	}{
		{"translated internet traffic", true, "203.0.113.10", red, red, datapath.Delivered, false},
		{"an edge claiming a VPC address", true, "10.0.1.5", red, red, datapath.SenderMismatch, true},
		{"VPC without an internet gateway", false, "203.0.113.10", red, red, datapath.SenderMismatch, true},
		{"SourceVPC differs (a peer of red)", true, "203.0.113.10", red, yellow, datapath.SenderMismatch, true},
		{"SourceVPC not peered", true, "203.0.113.10", red, green, datapath.NotPeered, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			e := internetEdge(50, edgeA, true)
			if tc.igw {
				withInternet(t, f, e)
			} else {
				tx := f.t.Begin(2)
				must(t, tx.UpsertHost(e))
				tx.Commit()
			}
			buf := make([]byte, 2048)
			n := udpPacket(buf, tc.src, "10.0.1.4", 10, 64, false)
			var r Result
			f.p.Ingress(f.t.Load(), edgeA, wire(buf, n, tc.vni, tc.sv), &r)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", r.Verdict, tc.want)
			}
			if (len(f.events) == 1) != tc.isAttack {
				t.Fatalf("events %+v; want a security event: %v", f.events, tc.isAttack)
			}
		})
	}
}
