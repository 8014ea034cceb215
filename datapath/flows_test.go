package datapath

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/packet/packettest"
)

const red = 100

func TestFlowRecords(t *testing.T) {
	var f Flows
	out, in := f.Table(Egress), f.Table(Ingress)
	buf := make([]byte, 2048)
	pkt := func(src, dst string, sport uint16) packet.IPv4 {
		n := packettest.UDP(buf, src, dst, 10, 64, false)
		b := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
		packet.UDP(b.Payload()).SetSrcPort(sport)
		return b
	}
	out.Begin()
	out.Record(red, pkt("10.0.1.4", "10.0.1.5", 1000), 100, Forwarded)
	out.Record(red, pkt("10.0.1.4", "10.0.1.5", 1000), 200, Forwarded)
	out.Record(red, pkt("10.0.1.4", "10.0.1.5", 1001), 50, NoMapping)
	out.End()
	in.Begin()
	in.Record(red, pkt("10.0.1.5", "10.0.1.4", 53), 70, SenderMismatch)
	in.End()
	// A second worker's records of the same flow add up.
	other := f.Table(Egress)
	other.Begin()
	other.Record(red, pkt("10.0.1.4", "10.0.1.5", 1000), 1, Forwarded)
	other.End()

	flows := f.List()
	if len(flows) != 3 {
		t.Fatalf("%d flows, want 3: %+v", len(flows), flows)
	}
	byPort := map[uint16]Flow{}
	for _, fl := range flows {
		byPort[fl.SrcPort] = fl
	}
	if fl := byPort[1000]; fl.Packets != 3 || fl.Bytes != 301 || fl.Verdict != Forwarded || fl.Direction != Egress ||
		fl.VNI != red || fl.Proto != packet.ProtoUDP || fl.Src != netip.MustParseAddr("10.0.1.4") || fl.DstPort != 53 {
		t.Fatalf("flow 1000 = %+v", fl)
	}
	if fl := byPort[1001]; fl.Verdict != NoMapping || fl.Packets != 1 {
		t.Fatalf("flow 1001 = %+v", fl)
	}
	if fl := byPort[53]; fl.Verdict != SenderMismatch || fl.Direction != Ingress {
		t.Fatalf("ingress flow = %+v", fl)
	}
	f.Release(other)
	if n := len(f.List()); n != 3 {
		t.Fatalf("after a worker left, %d flows are listed; the others keep theirs (want 3)", n)
	}
}

// TestFlowTableBounded: more flows than records replace the stalest; the
// table never grows.
func TestFlowTableBounded(t *testing.T) {
	var f Flows
	tb := f.Table(Egress)
	buf := make([]byte, 2048)
	n := packettest.UDP(buf, "10.0.1.4", "10.0.1.5", 10, 64, false)
	p := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
	for i := range 3 * flowTableSize {
		tb.Begin()
		tb.now += int64(i) // later flows are fresher
		packet.UDP(p.Payload()).SetSrcPort(uint16(i))
		tb.Record(red, p, n, Forwarded)
		tb.End()
	}
	if got := len(f.List()); got > flowTableSize || got < flowTableSize/2 {
		t.Fatalf("%d flows listed from a table of %d records", got, flowTableSize)
	}
	if len(tb.entries) != flowTableSize {
		t.Fatal("the table grew")
	}
}

func TestFlowRecordNoAllocs(t *testing.T) {
	var f Flows
	tb := f.Table(Egress)
	buf := make([]byte, 2048)
	n := packettest.UDP(buf, "10.0.1.4", "10.0.1.5", 10, 64, false)
	p := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
	tb.Begin()
	defer tb.End()
	if a := testing.AllocsPerRun(1000, func() { tb.Record(red, p, n, Forwarded) }); a != 0 {
		t.Fatalf("%v allocations per recorded packet", a)
	}
}
