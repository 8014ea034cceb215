package edge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/endpoint"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

var (
	svc   = a("198.51.100.10") // the service's address (its prefix list)
	node1 = a("192.168.0.200") // its service node
	vpceA = tables.Target{Kind: tables.TargetEndpoint, ID: 0xa}
)

// newEndpointEdge is an edge serving endpoints: red has vpce-…a for a
// service at 198.51.100.0/28 behind node1; yellow has none.
func newEndpointEdge(tb testing.TB) (*Edge, *tables.Tables, *[]datapath.Event) {
	t := tables.New(100)
	tx := t.Begin(1)
	for _, h := range []tables.Host{
		{ID: 1, Underlay: host1, Role: tables.RoleHost, Healthy: true},
		{ID: 2, Underlay: host2, Role: tables.RoleHost, Healthy: true},
		{ID: 100, Underlay: self, Role: tables.RoleEdge, Healthy: true},
	} {
		must(tb, tx.UpsertHost(h))
	}
	ep := tables.Endpoint{ID: 0xa, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/28")}, Nodes: []netip.Addr{node1}}
	for _, v := range []tables.VPC{
		{VNI: red, ID: 1, CIDR: netip.MustParsePrefix("10.0.0.0/16"), Endpoints: []tables.Endpoint{ep}},
		{VNI: yellow, ID: 2, CIDR: netip.MustParsePrefix("10.1.0.0/16")},
	} {
		must(tb, tx.UpsertVPC(v))
	}
	for _, m := range []tables.Mapping{
		{VNI: red, IP: a("10.0.1.4"), HostID: 1, ENI: 1},
		{VNI: yellow, IP: a("10.1.1.4"), HostID: 1, ENI: 3},
	} {
		must(tb, tx.UpsertMapping(m))
	}
	tx.Commit()
	var events []datapath.Event
	x, err := New(t, Config{Underlay: self, Functions: []Function{endpoint.New()}, Events: func(e datapath.Event) { events = append(events, e) }})
	must(tb, err)
	return x, t, &events
}

// fromNode is what a service node sends back: the packet in vni with the
// endpoint id.
func fromNodePacket(buf []byte, n int, vni uint32, id uint64) []byte {
	start, ok := packet.EncapsulateGeneve(buf, n, vni, packet.GeneveOptions{SourceVNI: vni, HasEndpoint: true, EndpointID: id})
	if !ok {
		panic("encapsulate")
	}
	return buf[start : packet.Headroom+n]
}

func TestEndpointRelay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outer    netip.Addr
		src, dst netip.Addr
		vni      uint32
		target   tables.Target // from a host; zero: from a node with endpoint id node
		node     uint64
		want     datapath.Verdict
		attack   bool
		wantDst  netip.Addr
		wantOpts packet.GeneveOptions
	}{
		{"to the service node, source kept", host1, a("10.0.1.4"), svc, red, vpceA, 0, datapath.Forwarded, false,
			node1, packet.GeneveOptions{SourceVNI: red, HasEndpoint: true, EndpointID: 0xa}},
		{"forged: the VPC has no such endpoint", host1, a("10.1.1.4"), svc, yellow, vpceA, 0, datapath.ForgedTarget, true, netip.Addr{}, packet.GeneveOptions{}},
		{"forged: another endpoint id", host1, a("10.0.1.4"), svc, red, tables.Target{Kind: tables.TargetEndpoint, ID: 0xb}, 0, datapath.ForgedTarget, true, netip.Addr{}, packet.GeneveOptions{}},
		{"not the service's address", host1, a("10.0.1.4"), a("203.0.113.1"), red, vpceA, 0, datapath.NoRoute, false, netip.Addr{}, packet.GeneveOptions{}},
		{"source lives elsewhere", host2, a("10.0.1.4"), svc, red, vpceA, 0, datapath.SenderMismatch, true, netip.Addr{}, packet.GeneveOptions{}},
		{"reply to the instance's host", node1, svc, a("10.0.1.4"), red, tables.Target{}, 0xa, datapath.Forwarded, false,
			host1, packet.GeneveOptions{SourceVNI: red, HasTarget: true, Function: uint8(tables.TargetEndpoint), Target: 0xa}},
		{"reply from a stranger", a("192.168.0.66"), svc, a("10.0.1.4"), red, tables.Target{}, 0xa, datapath.UnknownSender, true, netip.Addr{}, packet.GeneveOptions{}},
		{"reply for an endpoint the VPC lacks", node1, svc, a("10.1.1.4"), yellow, tables.Target{}, 0xa, datapath.UnknownSender, true, netip.Addr{}, packet.GeneveOptions{}},
		{"reply from outside the prefix list", node1, a("203.0.113.1"), a("10.0.1.4"), red, tables.Target{}, 0xa, datapath.SenderMismatch, true, netip.Addr{}, packet.GeneveOptions{}},
		{"reply to nobody", node1, svc, a("10.0.9.9"), red, tables.Target{}, 0xa, datapath.NoMapping, false, netip.Addr{}, packet.GeneveOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, tb, events := newEndpointEdge(t)
			buf := make([]byte, 2048)
			n := tcpPacket(buf, tc.src, tc.dst, 10, 64)
			var payload []byte
			if tc.target.Kind != 0 {
				payload = toFunction(buf, n, tc.vni, tc.vni, tc.target)
			} else {
				payload = fromNodePacket(buf, n, tc.vni, tc.node)
			}
			v, dst, vni, opts := x.Relayed(tb.Load(), tc.outer, payload)
			if v != tc.want {
				t.Fatalf("verdict %v, want %v", v, tc.want)
			}
			if v == datapath.Forwarded && (dst != tc.wantDst || vni != tc.vni || opts != tc.wantOpts) {
				t.Fatalf("relayed to %v in %d with %+v, want %v with %+v", dst, vni, opts, tc.wantDst, tc.wantOpts)
			}
			if got := len(*events) == 1 && (*events)[0].Verdict == tc.want; got != tc.attack {
				t.Fatalf("events %+v; attack %v", *events, tc.attack)
			}
		})
	}
}

// TestEndpointOnTheWire: through ServeWire, the packet reaches the node
// re-headed in place with the EndpointID option and the private source,
// and the node's reply reaches the instance's host naming the endpoint.
func TestEndpointOnTheWire(t *testing.T) {
	x, _, _ := newEndpointEdge(t)
	mn := underlay.NewMemNet()
	wire, err := mn.Listen(self)
	must(t, err)
	x.cfg.Wire = wire
	h, err := mn.Listen(host1)
	must(t, err)
	nd, err := mn.Listen(node1)
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- x.ServeWire() }()
	defer func() { wire.Close(); <-done; h.Close(); nd.Close() }()

	send := func(from underlay.Conn, p []byte) {
		_, err := from.WriteBatch([]underlay.Datagram{{Buf: p, Len: len(p), Peer: netip.AddrPortFrom(self, underlay.Port)}})
		must(t, err)
	}
	recv := func(c underlay.Conn) packet.Encap {
		ds := []underlay.Datagram{{Buf: make([]byte, 4096)}}
		got := make(chan packet.Encap, 1)
		go func() {
			if _, err := c.ReadBatch(ds); err != nil {
				return
			}
			var e packet.Encap
			if !packet.ParseGenevePayload(ds[0].Payload(), &e) {
				t.Error("not Geneve")
			}
			e.Inner = append(packet.IPv4(nil), e.Inner...)
			got <- e
		}()
		select {
		case e := <-got:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("nothing arrived")
		}
		return packet.Encap{}
	}
	buf := make([]byte, 2048)
	n := tcpPacket(buf, a("10.0.1.4"), svc, 100, 64)
	send(h, toFunction(buf, n, red, red, vpceA))
	e := recv(nd)
	if e.VNI != red || !e.Options.HasEndpoint || e.Options.EndpointID != 0xa || e.Options.HasTarget || e.Inner.Src() != a("10.0.1.4") || e.Inner.Dst() != svc || len(e.Inner) != n {
		t.Fatalf("the node got VNI %d %+v %v → %v (%d bytes)", e.VNI, e.Options, e.Inner.Src(), e.Inner.Dst(), len(e.Inner))
	}
	if e.Inner.TTL() != 64 {
		t.Errorf("TTL %d: the edge relays, the VPC router already counted the hop", e.Inner.TTL())
	}

	n = tcpPacket(buf, svc, a("10.0.1.4"), 100, 64)
	send(nd, fromNodePacket(buf, n, red, 0xa))
	e = recv(h)
	if e.VNI != red || !e.Options.HasTarget || e.Options.Function != uint8(tables.TargetEndpoint) || e.Options.Target != 0xa || e.Inner.Src() != svc || !e.Inner.ChecksumValid() {
		t.Fatalf("the host got VNI %d %+v %v → %v", e.VNI, e.Options, e.Inner.Src(), e.Inner.Dst())
	}
}

func TestEndpointNoAllocs(t *testing.T) {
	x, tb, _ := newEndpointEdge(t)
	snap := tb.Load()
	buf := make([]byte, 2048)
	to := func() {
		n := tcpPacket(buf, a("10.0.1.4"), svc, 100, 64)
		x.Relayed(snap, host1, toFunction(buf, n, red, red, vpceA))
	}
	from := func() {
		n := tcpPacket(buf, svc, a("10.0.1.4"), 100, 64)
		x.Relayed(snap, node1, fromNodePacket(buf, n, red, 0xa))
	}
	for name, f := range map[string]func(){"to node": to, "from node": from} {
		if allocs := testing.AllocsPerRun(100, f); allocs != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, allocs)
		}
	}
}
