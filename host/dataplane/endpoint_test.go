package dataplane

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// The vpce next hop: a route whose destination is the service's prefix
// list goes to an edge serving endpoints, the packet naming the endpoint
// (EdgeTarget, function endpoint) — the host adds no EndpointID itself:
// the edge, which checks the VPC has that endpoint, puts it on toward the
// service node. Replies from the edge are let in only from the service's
// addresses, for an endpoint the VPC has.
func TestEndpointNextHop(t *testing.T) {
	f := newFixture(t)
	vpce := tables.Target{Kind: tables.TargetEndpoint, ID: 0xe1}
	endpointEdge := tables.Host{ID: 50, Underlay: edgeA, Role: tables.RoleEdge, Healthy: true,
		Functions: &[]tables.Function{{Kind: tables.TargetEndpoint}}}
	addRoute(t, f, "198.51.100.0/28", vpce, func(v *tables.VPC) {
		v.Endpoints = []tables.Endpoint{{ID: 0xe1, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/28")}, Nodes: []netip.Addr{netip.MustParseAddr("127.0.1.200")}}}
	}, endpointEdge)
	buf := make([]byte, 2048)
	var r Result
	f.p.Egress(f.t.Load(), f.enis[1], buf, udpPacket(buf, "10.0.1.4", "198.51.100.10", 10, 64, false), make([]byte, ScratchSize), &r)
	if r.Verdict != datapath.Forwarded || r.Dst != edgeA {
		t.Fatalf("verdict %v to %v, want forwarded to the endpoint edge", r.Verdict, r.Dst)
	}
	var e packet.Encap
	if !packet.ParseGenevePayload(r.Payload, &e) || !e.Options.HasTarget || e.Options.Function != uint8(tables.TargetEndpoint) ||
		e.Options.Target != 0xe1 || e.Inner.Src() != netip.MustParseAddr("10.0.1.4") {
		t.Fatalf("options %+v from %v: want vpce e1 named, the private source kept", e.Options, e.Inner.Src())
	}

	reply := func(src string, target uint64) datapath.Verdict {
		n := udpPacket(buf, src, "10.0.1.4", 10, 64, false)
		start, _ := packet.EncapsulateGeneve(buf, n, red, packet.GeneveOptions{SourceVNI: red, HasTarget: true, Function: uint8(tables.TargetEndpoint), Target: target})
		f.p.Ingress(f.t.Load(), edgeA, append([]byte(nil), buf[start:packet.Headroom+n]...), &r)
		return r.Verdict
	}
	if v := reply("198.51.100.10", 0xe1); v != datapath.Delivered {
		t.Fatalf("the service's reply: %v, want delivered", v)
	}
	if v := reply("203.0.113.9", 0xe1); v != datapath.SenderMismatch {
		t.Fatalf("a reply from outside the prefix list: %v, want sender-mismatch", v)
	}
	if v := reply("198.51.100.10", 0xe2); v != datapath.SenderMismatch {
		t.Fatalf("a reply naming an endpoint red lacks: %v, want sender-mismatch", v)
	}
}
