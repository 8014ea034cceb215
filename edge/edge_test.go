package edge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/igw"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

const (
	red    = 100 // has an internet gateway
	yellow = 200 // has none
)

var (
	self  = netip.MustParseAddr("192.168.0.100") // the edge
	host1 = netip.MustParseAddr("192.168.0.1")
	host2 = netip.MustParseAddr("192.168.0.2")
	edge2 = netip.MustParseAddr("192.168.0.101")
	eip   = netip.MustParseAddr("198.51.100.7")
	inet  = netip.MustParseAddr("203.0.113.10")
)

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

// newEdge is an edge whose cache holds red (igw-…, with web 10.0.1.4 on
// host1 holding Elastic IP eip, and bare 10.0.1.5 on host2 without one)
// and yellow (no internet gateway).
func newEdge(tb testing.TB) (*Edge, *[]datapath.Event) {
	t := tables.New(100)
	tx := t.Begin(1)
	for _, h := range []tables.Host{
		{ID: 1, Underlay: host1, Role: tables.RoleHost, Healthy: true},
		{ID: 2, Underlay: host2, Role: tables.RoleHost, Healthy: true},
		{ID: 100, Underlay: self, Role: tables.RoleEdge, Healthy: true},
		{ID: 101, Underlay: edge2, Role: tables.RoleEdge, Healthy: true},
	} {
		must(tb, tx.UpsertHost(h))
	}
	for _, v := range []tables.VPC{
		{VNI: red, ID: 1, CIDR: netip.MustParsePrefix("10.0.0.0/16"), InternetGateway: 9},
		{VNI: yellow, ID: 2, CIDR: netip.MustParsePrefix("10.1.0.0/16")},
	} {
		must(tb, tx.UpsertVPC(v))
	}
	for _, m := range []tables.Mapping{
		{VNI: red, IP: a("10.0.1.4"), HostID: 1, ENI: 1, Public: eip},
		{VNI: red, IP: a("10.0.1.5"), HostID: 2, ENI: 2},
		{VNI: yellow, IP: a("10.1.1.4"), HostID: 1, ENI: 3},
	} {
		must(tb, tx.UpsertMapping(m))
	}
	tx.Commit()
	var events []datapath.Event
	x, err := New(t, Config{Underlay: self, Functions: []Function{igw.New(nil)}, Events: func(e datapath.Event) { events = append(events, e) }})
	must(tb, err)
	return x, &events
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// tcpPacket writes a TCP segment at buf[packet.Headroom:] and returns its length.
func tcpPacket(buf []byte, src, dst netip.Addr, payload int, ttl uint8) int {
	b := buf[packet.Headroom:]
	t := packet.TCP(b[packet.IPv4MinSize : packet.IPv4MinSize+packet.TCPMinSize+payload])
	t.Encode(&packet.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: 0x18, Window: 1000})
	t.SetChecksum(t.ComputeChecksum(src, dst))
	n := packet.IPv4MinSize + len(t)
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(n), TTL: ttl, Protocol: packet.ProtoTCP, Src: src, Dst: dst})
	return n
}

// fromHost is what a host sends the edge: the packet in VNI vni, SourceVPC
// src, for red's internet gateway (igw 9).
func fromHost(buf []byte, n int, vni, src uint32) []byte {
	return toFunction(buf, n, vni, src, tables.Target{Kind: tables.TargetInternetGateway, ID: 9})
}

// toFunction is what a host sends the edge for target.
func toFunction(buf []byte, n int, vni, src uint32, target tables.Target) []byte {
	start, ok := packet.EncapsulateGeneve(buf, n, vni, packet.GeneveOptions{SourceVNI: src, HasTarget: true, Function: uint8(target.Kind), Target: target.ID})
	if !ok {
		panic("encapsulate")
	}
	return buf[start : packet.Headroom+n]
}

func TestOutbound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outer    netip.Addr
		src, dst netip.Addr
		vni, sv  uint32
		want     datapath.Verdict
		attack   bool
	}{
		{"translated", host1, a("10.0.1.4"), inet, red, red, datapath.Forwarded, false},
		{"no Elastic IP", host2, a("10.0.1.5"), inet, red, red, datapath.NoPublicIP, false},
		{"unknown sender", netip.MustParseAddr("192.168.0.66"), a("10.0.1.4"), inet, red, red, datapath.UnknownSender, true},
		{"an edge is no sender of outbound traffic", edge2, a("10.0.1.4"), inet, red, red, datapath.UnknownSender, true},
		{"source lives on another host", host2, a("10.0.1.4"), inet, red, red, datapath.SenderMismatch, true},
		{"SourceVPC differs from the VNI", host1, a("10.0.1.4"), inet, red, yellow, datapath.SenderMismatch, true},
		{"VPC without an internet gateway", host1, a("10.1.1.4"), inet, yellow, yellow, datapath.NoRoute, false},
		{"destination inside the VPC", host1, a("10.0.1.4"), a("10.0.1.5"), red, red, datapath.NoRoute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, events := newEdge(t)
			buf := make([]byte, 2048)
			n := tcpPacket(buf, tc.src, tc.dst, 10, 64)
			var out packet.IPv4
			v := x.Outbound(x.tables.Load(), tc.outer, fromHost(buf, n, tc.vni, tc.sv), &out)
			if v != tc.want {
				t.Fatalf("verdict %v, want %v", v, tc.want)
			}
			if got := len(*events) == 1 && (*events)[0].Verdict == v; got != tc.attack {
				t.Fatalf("events %+v; want one security event: %v", *events, tc.attack)
			}
			if v != datapath.Forwarded {
				return
			}
			if out.Src() != eip || out.Dst() != inet || !out.ChecksumValid() {
				t.Fatalf("sent %v → %v (checksum valid %v); want %v → %v", out.Src(), out.Dst(), out.ChecksumValid(), eip, inet)
			}
			if tcp := packet.TCP(out.Payload()); tcp.Checksum() != tcp.ComputeChecksum(out.Src(), out.Dst()) {
				t.Fatal("TCP checksum wrong after translation")
			}
		})
	}
}

func TestInbound(t *testing.T) {
	for _, tc := range []struct {
		name string
		dst  netip.Addr
		ttl  uint8
		want datapath.Verdict
	}{
		{"translated", eip, 64, datapath.Forwarded},
		{"unknown Elastic IP", a("198.51.100.8"), 64, datapath.NoMapping},
		{"a private address from outside", a("10.0.1.4"), 64, datapath.NoMapping},
		{"TTL runs out", eip, 1, datapath.TTLExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, _ := newEdge(t)
			buf := make([]byte, 2048)
			n := tcpPacket(buf, inet, tc.dst, 10, tc.ttl)
			var r InboundResult
			v := x.Inbound(x.tables.Load(), x.fns[tables.TargetInternetGateway], buf, n, &r)
			if v != tc.want {
				t.Fatalf("verdict %v, want %v", v, tc.want)
			}
			if v != datapath.Forwarded {
				return
			}
			if r.Dst != host1 {
				t.Fatalf("sent to %v, want web's host %v", r.Dst, host1)
			}
			var e packet.Encap
			if !packet.ParseGenevePayload(r.Payload, &e) {
				t.Fatal("not Geneve")
			}
			in := e.Inner
			if e.VNI != red || e.Options.SourceVNI != red || in.Src() != inet || in.Dst() != a("10.0.1.4") || in.TTL() != 63 || !in.ChecksumValid() {
				t.Fatalf("VNI %d SourceVPC %d, %v → %v TTL %d checksum %v", e.VNI, e.Options.SourceVNI, in.Src(), in.Dst(), in.TTL(), in.ChecksumValid())
			}
		})
	}
}

func TestNoAllocs(t *testing.T) {
	x, _ := newEdge(t)
	snap := x.tables.Load()
	buf := make([]byte, 2048)
	n := tcpPacket(buf, host1, eip, 100, 64)
	_ = n
	out := func() {
		n := tcpPacket(buf, a("10.0.1.4"), inet, 100, 64)
		var pkt packet.IPv4
		x.Outbound(snap, host1, fromHost(buf, n, red, red), &pkt)
	}
	in := func() {
		n := tcpPacket(buf, inet, eip, 100, 64)
		var r InboundResult
		x.Inbound(snap, x.fns[tables.TargetInternetGateway], buf, n, &r)
	}
	for name, f := range map[string]func(){"outbound": out, "inbound": in} {
		if allocs := testing.AllocsPerRun(100, f); allocs != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, allocs)
		}
	}
}

// BenchmarkEdge is P6: the edge's verify + NAT + (re-)encapsulation per
// packet, each way, next to copying the packet (the floor any data path
// pays).
func BenchmarkEdge(b *testing.B) {
	for _, size := range []int{64, 1400} {
		x, _ := newEdge(b)
		snap := x.tables.Load()
		buf := make([]byte, 2048)
		payload := size - packet.IPv4MinSize - packet.TCPMinSize
		b.Run("outbound/"+sizeName(size), func(b *testing.B) {
			n := tcpPacket(buf, a("10.0.1.4"), inet, payload, 64)
			wire := append([]byte(nil), fromHost(buf, n, red, red)...)
			var pkt packet.IPv4
			private := a("10.0.1.4")
			b.SetBytes(int64(size))
			for b.Loop() {
				// Translating back keeps the packet as the host sent it.
				if x.Outbound(snap, host1, wire, &pkt) != datapath.Forwarded {
					b.Fatal("not forwarded")
				}
				pkt.RewriteSrc(private)
			}
		})
		b.Run("inbound/"+sizeName(size), func(b *testing.B) {
			n := tcpPacket(buf, inet, eip, payload, 64)
			orig := append([]byte(nil), buf[packet.Headroom:packet.Headroom+packet.IPv4MinSize]...)
			var r InboundResult
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(buf[packet.Headroom:], orig) // restore the header: TTL and address
				if x.Inbound(snap, x.fns[tables.TargetInternetGateway], buf, n, &r) != datapath.Forwarded {
					b.Fatal("not forwarded")
				}
			}
		})
		b.Run("copy-baseline/"+sizeName(size), func(b *testing.B) {
			src, dst := make([]byte, size), make([]byte, size+packet.Headroom)
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(dst[packet.Headroom:], src)
			}
		})
	}
}

func sizeName(n int) string {
	if n == 64 {
		return "64B"
	}
	return "1400B"
}

// The edge dispatches on the function a packet names: one it does not
// serve (a VPN gateway, here) or no function at all goes nowhere, and what
// each kind received is counted, served or not — over a real read loop.
func TestDispatch(t *testing.T) {
	net := underlay.NewMemNet()
	wire, err := net.Listen(self)
	must(t, err)
	hostConn, err := net.Listen(host1)
	must(t, err)
	defer hostConn.Close()
	x, events := newEdge(t)
	outside := &recordPort{got: make(chan []byte, 8)}
	x.cfg.Wire = wire
	x.cfg.Functions = []Function{igw.New(outside)}
	x.fns[tables.TargetInternetGateway] = x.cfg.Functions[0]
	done := make(chan error, 1)
	go func() { done <- x.ServeWire() }()

	var ds []underlay.Datagram
	for _, p := range []struct {
		target tables.Target
		named  bool
	}{{tables.Target{Kind: tables.TargetVPNGateway, ID: 9}, true}, {tables.Target{}, false}, {tables.Target{Kind: tables.TargetInternetGateway, ID: 9}, true}} {
		buf := make([]byte, 2048)
		n := tcpPacket(buf, a("10.0.1.4"), inet, 10, 64)
		payload := toFunction(buf, n, red, red, p.target)
		if !p.named {
			payload = fromHostBare(buf, n)
		}
		ds = append(ds, underlay.Datagram{Buf: payload, Len: len(payload), Peer: netip.AddrPortFrom(self, underlay.Port)})
	}
	if _, err := hostConn.WriteBatch(ds); err != nil {
		t.Fatal(err)
	}
	select {
	case pkt := <-outside.got:
		if packet.IPv4(pkt).Src() != eip {
			t.Fatalf("out to the internet from %v, want the Elastic IP %v", packet.IPv4(pkt).Src(), eip)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the internet packet never went out")
	}
	wire.Close()
	if err := <-done; err != nil {
		t.Fatalf("ServeWire after close: %v", err)
	}
	if x.Received[tables.TargetInternetGateway].Load() != 1 || x.Received[tables.TargetVPNGateway].Load() != 1 {
		t.Fatalf("received: igw %d, vgw %d; want 1 each", x.Received[tables.TargetInternetGateway].Load(), x.Received[tables.TargetVPNGateway].Load())
	}
	if x.Out.Get(datapath.NoRoute) != 2 || x.Out.Get(datapath.Forwarded) != 1 {
		t.Fatalf("no-route %d forwarded %d, want 2 and 1", x.Out.Get(datapath.NoRoute), x.Out.Get(datapath.Forwarded))
	}
	if len(*events) != 0 {
		t.Fatalf("an unserved function raised events: %v", *events)
	}
	buf := make([]byte, 2048)
	steps, v := x.TraceOutbound(host1, toFunction(buf, tcpPacket(buf, a("10.0.1.4"), inet, 10, 64), red, red, tables.Target{Kind: tables.TargetVPNGateway, ID: 9}))
	if last := steps[len(steps)-1]; v != datapath.NoRoute || last.Name != "function" || last.Pass {
		t.Fatalf("trace: %v, last step %+v; want no-route at the function step", v, last)
	}
	if _, err := New(tables.New(1), Config{Functions: []Function{igw.New(nil), igw.New(nil)}}); err == nil {
		t.Fatal("two internet gateway functions on one edge accepted")
	}
}

// recordPort is an outside port that hands over what is written to it.
type recordPort struct{ got chan []byte }

func (p *recordPort) Read([][]byte, []int) (int, error) { select {} }
func (p *recordPort) Write(pkts [][]byte) error {
	for _, b := range pkts {
		p.got <- append([]byte(nil), b...)
	}
	return nil
}
func (p *recordPort) BatchSize() int { return 1 }
func (p *recordPort) Close() error   { return nil }

func fromHostBare(buf []byte, n int) []byte {
	start, _ := packet.EncapsulateGeneve(buf, n, red, packet.GeneveOptions{SourceVNI: red})
	return buf[start : packet.Headroom+n]
}
