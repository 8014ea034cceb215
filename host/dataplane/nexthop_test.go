package dataplane

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// internetEdge serves the internet gateway function for every igw.
func internetEdge(id uint64, addr netip.Addr, healthy bool) tables.Host {
	return tables.Host{ID: id, Underlay: addr, Role: tables.RoleEdge, Healthy: healthy,
		Functions: &[]tables.Function{{Kind: tables.TargetInternetGateway}}}
}

// withRoute adds a route from red's main table to target.
func withRoute(tb testing.TB, f *fixture, dst string, target tables.Target, edges ...tables.Host) {
	addRoute(tb, f, dst, target, nil, edges...)
}

// addRoute adds a route from red's main table to target, changes red's
// facts with change (if not nil) and registers edges, in one transaction.
func addRoute(tb testing.TB, f *fixture, dst string, target tables.Target, change func(*tables.VPC), edges ...tables.Host) {
	snap := f.t.Load()
	red0, _ := snap.VPC(red)
	v := *red0
	if change != nil {
		change(&v)
	}
	v.RouteTables = []tables.RouteTable{{ID: v.RouteTables[0].ID, Routes: append(append([]tables.Route(nil), v.RouteTables[0].Routes...),
		tables.Route{Dst: netip.MustParsePrefix(dst), Target: target})}}
	tx := f.t.Begin(snap.Revision() + 1)
	defer tx.Abort()
	must(tb, tx.UpsertVPC(v))
	for _, e := range edges {
		must(tb, tx.UpsertHost(e))
	}
	tx.Commit()
}

// A route to a Direct Connect VIF (pushed only while its session is up)
// goes to the edge serving that VIF, marked with it.
func TestRouteToDirectConnect(t *testing.T) {
	target := tables.Target{Kind: tables.TargetDirectConnect, ID: 0x52}
	f := newFixture(t)
	serving := tables.Host{ID: 50, Underlay: netip.MustParseAddr("127.0.1.101"), Role: tables.RoleEdge, Healthy: true,
		Functions: &[]tables.Function{{Kind: target.Kind, Targets: []uint64{target.ID}}}}
	withRoute(t, f, "192.168.0.0/16", target, serving)
	buf := make([]byte, 2048)
	var r Result
	f.p.Egress(f.t.Load(), f.enis[1], buf, udpPacket(buf, "10.0.1.4", "192.168.1.1", 10, 64, false), make([]byte, ScratchSize), &r)
	if r.Verdict != datapath.Forwarded || r.Dst != serving.Underlay {
		t.Fatalf("verdict %v to %v, want forwarded to the edge %v", r.Verdict, r.Dst, serving.Underlay)
	}
	var e packet.Encap
	if !packet.ParseGenevePayload(r.Payload, &e) || !e.Options.HasTarget || tables.TargetKind(e.Options.Function) != target.Kind || e.Options.Target != target.ID {
		t.Fatalf("the packet to the edge does not name the VIF: %+v", e.Options)
	}
}

// A route to an edge target the host knows no facts of — a virtual private
// gateway, an endpoint — is no route, even with an edge serving it:
// nothing is guessed to be a peering, or anything else. An internet
// gateway that is not the VPC's leads nowhere either.
func TestRouteToUnknownEdgeTargets(t *testing.T) {
	for _, target := range []tables.Target{
		{Kind: tables.TargetVPNGateway, ID: 0x51},
		{Kind: tables.TargetEndpoint, ID: 0x53},
		{Kind: tables.TargetInternetGateway, ID: 0x54}, // red has no igw
	} {
		t.Run(target.String(), func(t *testing.T) {
			f := newFixture(t)
			serving := tables.Host{ID: 50, Underlay: netip.MustParseAddr("127.0.1.101"), Role: tables.RoleEdge, Healthy: true,
				Functions: &[]tables.Function{{Kind: target.Kind, Targets: []uint64{target.ID}}}}
			withRoute(t, f, "192.168.0.0/16", target, serving)
			buf := make([]byte, 2048)
			var r Result
			f.p.Egress(f.t.Load(), f.enis[1], buf, udpPacket(buf, "10.0.1.4", "192.168.1.1", 10, 64, false), make([]byte, ScratchSize), &r)
			if r.Verdict != datapath.NoRoute {
				t.Fatalf("verdict %v, want no-route", r.Verdict)
			}
			n := udpPacket(buf, "10.0.1.4", "192.168.1.1", 10, 64, false)
			steps, tr := f.p.TraceEgress(f.enis[1], append([]byte(nil), buf[packet.Headroom:packet.Headroom+n]...))
			last := steps[len(steps)-1]
			if tr.Verdict != datapath.NoRoute || last.Name != "route" || last.Pass {
				t.Fatalf("trace: verdict %v, last step %+v; want no-route at the route step", tr.Verdict, last)
			}
		})
	}
}

// The packet for an edge names its function and target; an edge that
// serves another function only is never chosen for it.
func TestEdgeChosenByFunction(t *testing.T) {
	f := newFixture(t)
	vpnOnly := tables.Host{ID: 52, Underlay: netip.MustParseAddr("127.0.1.103"), Role: tables.RoleEdge, Healthy: true,
		Functions: &[]tables.Function{{Kind: tables.TargetVPNGateway, Targets: []uint64{1}}}}
	withInternet(t, f, internetEdge(50, edgeA, true), vpnOnly)
	buf := make([]byte, 2048)
	var r Result
	for port := range 64 {
		n := udpPacket(buf, "10.0.1.4", "203.0.113.10", 10, 64, false)
		packet.UDP(buf[packet.Headroom+packet.IPv4MinSize:]).SetSrcPort(uint16(30000 + port))
		f.p.Egress(f.t.Load(), f.enis[1], buf, n, make([]byte, ScratchSize), &r)
		if r.Verdict != datapath.Forwarded || r.Dst != edgeA {
			t.Fatalf("verdict %v to %v; want forwarded to the internet edge %v", r.Verdict, r.Dst, edgeA)
		}
		var e packet.Encap
		if !packet.ParseGenevePayload(r.Payload, &e) || !e.Options.HasTarget ||
			e.Options.Function != uint8(tables.TargetInternetGateway) || e.Options.Target != 9 {
			t.Fatalf("options %+v: want the internet gateway igw 9 named", e.Options)
		}
	}
	// An edge that serves the VPC's igw may speak for the internet; one
	// that serves only VPN may not.
	n := udpPacket(buf, "203.0.113.10", "10.0.1.4", 10, 64, false)
	in := append([]byte(nil), wire(buf, n, red, red)...)
	if f.p.Ingress(f.t.Load(), edgeA, in, &r); r.Verdict != datapath.Delivered {
		t.Fatalf("from the internet edge: %v, want delivered", r.Verdict)
	}
	if f.p.Ingress(f.t.Load(), vpnOnly.Underlay, in, &r); r.Verdict != datapath.SenderMismatch {
		t.Fatalf("internet traffic from a VPN-only edge: %v, want sender-mismatch", r.Verdict)
	}
}

// A packet at the full instance MTU does not fit the path to an edge,
// which carries the EdgeTarget option: fragmentation needed names the
// smaller MTU, so path MTU discovery adapts.
func TestEdgePathMTU(t *testing.T) {
	f := newFixture(t)
	withInternet(t, f, internetEdge(50, edgeA, true))
	buf := make([]byte, 4096)
	var r Result
	n := udpPacket(buf, "10.0.1.4", "203.0.113.10", DefaultMTU-packet.IPv4MinSize-packet.UDPMinSize, 64, true)
	f.p.Egress(f.t.Load(), f.enis[1], buf, n, make([]byte, ScratchSize), &r)
	if r.Verdict != datapath.TooBig || r.Reply == nil {
		t.Fatalf("verdict %v, reply %v; want too-big with an ICMP error", r.Verdict, r.Reply != nil)
	}
	if mtu := packet.ICMPv4(packet.IPv4(r.Reply).Payload()).MTU(); int(mtu) != DefaultMTU-edgeMTUCost {
		t.Fatalf("frag-needed says MTU %d, want %d", mtu, DefaultMTU-edgeMTUCost)
	}
	n = udpPacket(buf, "10.0.1.4", "203.0.113.10", DefaultMTU-edgeMTUCost-packet.IPv4MinSize-packet.UDPMinSize, 64, true)
	if f.p.Egress(f.t.Load(), f.enis[1], buf, n, make([]byte, ScratchSize), &r); r.Verdict != datapath.Forwarded ||
		len(r.Payload)+packet.IPv4MinSize+packet.UDPMinSize > DefaultMTU+packet.Overhead {
		t.Fatalf("at the edge path MTU: %v, %d bytes on the wire", r.Verdict, len(r.Payload)+28)
	}
}

// Every step of both stories shows in a trace, in order, from the story
// itself.
func TestTraceFollowsTheStory(t *testing.T) {
	f := newFixture(t)
	buf := make([]byte, 2048)
	n := udpPacket(buf, "10.0.1.4", "10.1.1.4", 10, 64, false)
	steps, r := f.p.TraceEgress(f.enis[1], append([]byte(nil), buf[packet.Headroom:packet.Headroom+n]...))
	want := []string{"parse", "source check", "route", "router hop", "mapping", "MTU", "encapsulate"}
	if r.Verdict != datapath.Forwarded || !sameNames(steps, want) {
		t.Fatalf("egress across the peering: %v, steps %v; want forwarded through %v", r.Verdict, steps, want)
	}
	n = udpPacket(buf, "10.0.1.4", "10.0.2.4", 10, 64, false)
	steps, r = f.p.TraceEgress(f.enis[1], append([]byte(nil), buf[packet.Headroom:packet.Headroom+n]...))
	want = []string{"parse", "source check", "route", "router hop", "mapping", "MTU", "deliver on this host",
		"parse", "known sender", "destination is local", "peered", "sender owns the source", "deliver"}
	if r.Verdict != datapath.Delivered || !sameNames(steps, want) {
		t.Fatalf("egress on this host: %v, steps %v; want delivered through %v", r.Verdict, steps, want)
	}
	if len(f.events) != 0 {
		t.Fatalf("tracing raised %d events", len(f.events))
	}
}

func sameNames(steps []datapath.Step, names []string) bool {
	if len(steps) != len(names) {
		return false
	}
	for i, s := range steps {
		if s.Name != names[i] || !s.Pass {
			return false
		}
	}
	return true
}

// A transient read error does not stop the host from receiving; a closed
// underlay ends the loop.
func TestServeWireSurvivesReadErrors(t *testing.T) {
	f := newFixture(t)
	net := underlay.NewMemNet()
	wire, err := net.Listen(self)
	must(t, err)
	peer, err := net.Listen(host2)
	must(t, err)
	defer peer.Close()
	f.p.cfg.Wire = wire
	port := newChanPort()
	e := f.enis[1]
	f.p.Attach(&Attachment{ENI: e.ENI, VNI: e.VNI, IP: e.IP, Subnet: e.Subnet, Gateway: e.Gateway, Port: port})
	done := make(chan error, 1)
	go func() { done <- f.p.ServeWire() }()

	if !net.FailReads(self, syscall.ENOBUFS, 3) {
		t.Fatal("no conn to fail")
	}
	buf := make([]byte, 2048)
	n := udpPacket(buf, "10.0.1.5", "10.0.1.4", 10, 64, false)
	payload := wire0(buf, n)
	if _, err := peer.WriteBatch([]underlay.Datagram{{Buf: payload, Len: len(payload), Peer: netip.AddrPortFrom(self, underlay.Port)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-port.got:
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing delivered after transient errors (%d counted)", f.p.ReadErrors.Load())
	}
	if got := f.p.ReadErrors.Load(); got != 3 {
		t.Errorf("%d read errors counted, want 3", got)
	}
	wire.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeWire after Close: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeWire still running after its underlay closed")
	}
}

func wire0(buf []byte, n int) []byte { return append([]byte(nil), wire(buf, n, red, red)...) }

// chanPort is a port that signals each packet written to it.
type chanPort struct{ got chan []byte }

func newChanPort() *chanPort { return &chanPort{got: make(chan []byte, 16)} }

func (c *chanPort) Read([][]byte, []int) (int, error) { return 0, errors.New("chanPort: no reads") }
func (c *chanPort) Write(pkts [][]byte) error {
	for _, p := range pkts {
		c.got <- append([]byte(nil), p...)
	}
	return nil
}
func (c *chanPort) BatchSize() int { return 1 }
func (c *chanPort) Close() error   { return nil }

// The edge paths allocate nothing either.
func TestEdgePathNoAllocations(t *testing.T) {
	f := newFixture(t)
	f.p.cfg.Events = func(datapath.Event) {}
	withInternet(t, f, internetEdge(50, edgeA, true))
	snap := f.t.Load()
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	var r Result
	n := udpPacket(buf, "10.0.1.4", "203.0.113.10", 64, 64, false)
	if allocs := testing.AllocsPerRun(100, func() {
		udpPacket(buf, "10.0.1.4", "203.0.113.10", 64, 64, false)
		f.p.Egress(snap, f.enis[1], buf, n, scratch, &r)
	}); allocs != 0 || r.Verdict != datapath.Forwarded {
		t.Errorf("egress to an edge: %v, %.1f allocations per packet", r.Verdict, allocs)
	}
	n = udpPacket(buf, "203.0.113.10", "10.0.1.4", 64, 64, false)
	in := append([]byte(nil), wire(buf, n, red, red)...)
	if allocs := testing.AllocsPerRun(100, func() { f.p.Ingress(snap, edgeA, in, &r) }); allocs != 0 || r.Verdict != datapath.Delivered {
		t.Errorf("ingress from an edge: %v, %.1f allocations per packet", r.Verdict, allocs)
	}
}
