package edge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// boundedFn is a function whose outside carries at most mtu bytes, as a
// VPN tunnel's does.
type boundedFn struct {
	outside datapath.Port
	mtu     int
}

func (f *boundedFn) Kind() tables.TargetKind { return tables.TargetVPNConnection }
func (f *boundedFn) Targets() []uint64       { return nil }
func (f *boundedFn) Outside() datapath.Port  { return f.outside }
func (f *boundedFn) MTU() int                { return f.mtu }
func (f *boundedFn) FromVPC(*tables.Snapshot, uint32, uint64, packet.IPv4, *datapath.Trace) datapath.Verdict {
	return datapath.Forwarded
}
func (f *boundedFn) FromOutside(*tables.Snapshot, packet.IPv4, *datapath.Trace) (uint32, datapath.Verdict) {
	return 0, datapath.NoRoute
}

// dfPacket writes an n-byte TCP segment with DF set (df) at
// buf[packet.Headroom:] and returns n.
func dfPacket(buf []byte, src, dst netip.Addr, n int, df bool) int {
	b := buf[packet.Headroom:]
	t := packet.TCP(b[packet.IPv4MinSize:n])
	t.Encode(&packet.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: 0x18, Window: 1000})
	t.SetChecksum(t.ComputeChecksum(src, dst))
	f := packet.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: packet.ProtoTCP, Src: src, Dst: dst}
	if df {
		f.Flags = packet.IPv4FlagDF
	}
	packet.IPv4(b).Encode(&f)
	return n
}

// TestTooBig: a packet larger than a bounded function's outside carries,
// with DF set, comes back to the sender's host as ICMP "fragmentation
// needed" (from its destination, marked with the function and target it
// was routed to, quoting it); one without DF, or small enough, goes out.
func TestTooBig(t *testing.T) {
	net := underlay.NewMemNet()
	wire, err := net.Listen(self)
	must(t, err)
	hostConn, err := net.Listen(host1)
	must(t, err)
	defer hostConn.Close()
	x, _ := newEdge(t)
	outside := &recordPort{got: make(chan []byte, 8)}
	fn := &boundedFn{outside: outside, mtu: 1400}
	x.cfg.Wire = wire
	x.cfg.Functions = []Function{fn}
	x.fns[tables.TargetVPNConnection] = fn
	done := make(chan error, 1)
	go func() { done <- x.ServeWire() }()
	defer func() {
		wire.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeWire: %v", err)
		}
	}()

	office := a("192.168.50.10")
	target := tables.Target{Kind: tables.TargetVPNConnection, ID: 7}
	send := func(n int, df bool) {
		buf := make([]byte, packet.Headroom+2048)
		payload := toFunction(buf, dfPacket(buf, a("10.0.1.4"), office, n, df), red, red, target)
		if _, err := hostConn.WriteBatch([]underlay.Datagram{{Buf: payload, Len: len(payload), Peer: netip.AddrPortFrom(self, underlay.Port)}}); err != nil {
			t.Fatal(err)
		}
	}

	send(1500, true)
	ds := make([]underlay.Datagram, 1)
	ds[0].Buf = make([]byte, 4096)
	got := make(chan int, 1)
	go func() {
		n, _ := hostConn.ReadBatch(ds)
		got <- n
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no ICMP error came back to the host")
	}
	var e packet.Encap
	if !packet.ParseGenevePayload(ds[0].Buf[ds[0].Off:ds[0].Off+ds[0].Len], &e) {
		t.Fatal("what came back is no Geneve packet")
	}
	if e.VNI != red || e.Options.SourceVNI != red || !e.Options.HasTarget || e.Options.Function != uint8(target.Kind) || e.Options.Target != target.ID {
		t.Fatalf("came back in VNI %d, SourceVPC %d, target %v %d/%d; want red, red, the VPN connection", e.VNI, e.Options.SourceVNI, e.Options.HasTarget, e.Options.Function, e.Options.Target)
	}
	icmp := packet.ICMPv4(e.Inner.Payload())
	if e.Inner.Src() != office || e.Inner.Dst() != a("10.0.1.4") || e.Inner.Protocol() != packet.ProtoICMP ||
		icmp.Type() != packet.ICMPv4DstUnreachable || icmp.Code() != packet.ICMPv4FragNeeded || icmp.MTU() != 1400 {
		t.Fatalf("came back %v → %v proto %d, ICMP %d/%d MTU %d; want fragmentation needed, MTU 1400, from the office to the instance",
			e.Inner.Src(), e.Inner.Dst(), e.Inner.Protocol(), icmp.Type(), icmp.Code(), icmp.MTU())
	}
	if q := packet.IPv4(icmp.Payload()); len(q) < packet.IPv4MinSize || q.Src() != a("10.0.1.4") || q.Dst() != office || q.TotalLen() != 1500 {
		t.Fatalf("the error does not quote the packet it is about")
	}
	if x.Out.Get(datapath.TooBig) != 1 {
		t.Fatalf("too-big counted %d times, want 1", x.Out.Get(datapath.TooBig))
	}

	send(1500, false) // may be fragmented: the tunnel does that
	send(1400, true)  // fits
	for i := 0; i < 2; i++ {
		select {
		case <-outside.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d that the tunnel carries never went out", i+1)
		}
	}

	buf := make([]byte, packet.Headroom+2048)
	steps, v := x.TraceOutbound(host1, toFunction(buf, dfPacket(buf, a("10.0.1.4"), office, 1500, true), red, red, target))
	if last := steps[len(steps)-1]; v != datapath.TooBig || last.Name != "MTU" || last.Pass {
		t.Fatalf("trace: %v, last step %+v; want too-big at the MTU step", v, last)
	}
}

// TestTooBigNoAllocs: answering with the ICMP error allocates nothing.
func TestTooBigNoAllocs(t *testing.T) {
	x, _ := newEdge(t)
	fn := &boundedFn{mtu: 1400}
	x.cfg.Functions = []Function{fn}
	x.fns[tables.TargetVPNConnection] = fn
	snap := x.tables.Load()
	buf := make([]byte, packet.Headroom+2048)
	target := tables.Target{Kind: tables.TargetVPNConnection, ID: 7}
	var e packet.Encap
	var out packet.IPv4
	var rel relayed
	allocs := testing.AllocsPerRun(100, func() {
		payload := toFunction(buf, dfPacket(buf, a("10.0.1.4"), a("192.168.50.10"), 1500, true), red, red, target)
		if v, _ := x.outbound(snap, host1, payload, &e, &out, &rel, nil, nil); v != datapath.TooBig {
			t.Fatalf("verdict %v, want too-big", v)
		}
	})
	if allocs != 0 {
		t.Fatalf("too-big allocates %.1f times per packet", allocs)
	}
}
