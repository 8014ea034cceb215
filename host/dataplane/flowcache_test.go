package dataplane

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// recordingCache is a FlowCache that records what it was told.
type recordingCache struct {
	egress, ingress, forgotEgress, forgotIngress int
	gen                                          uint64
	last                                         Result
}

func (c *recordingCache) Egress(s *tables.Snapshot, _ *Attachment, r *Result) {
	c.egress++
	c.gen, c.last = s.Generation(), *r
}
func (c *recordingCache) Ingress(s *tables.Snapshot, _ netip.Addr, _ []byte, r *Result) {
	c.ingress++
	c.gen, c.last = s.Generation(), *r
}
func (c *recordingCache) ForgetEgress(*Attachment, *Result)         { c.forgotEgress++ }
func (c *recordingCache) ForgetIngress(netip.Addr, []byte, *Result) { c.forgotIngress++ }

// tcpSegment builds an IPv4/TCP segment with the given flags at buf[Headroom:].
func tcpSegment(buf []byte, src, dst string, flags uint8, ttl uint8) int {
	total := packet.IPv4MinSize + 20
	b := buf[packet.Headroom : packet.Headroom+total]
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(total), TTL: ttl, Protocol: packet.ProtoTCP, Src: a(src), Dst: a(dst)})
	t := b[packet.IPv4MinSize:]
	clear(t)
	t[0], t[1], t[2], t[3] = 0x9c, 0x40, 0x1f, 0x90 // 40000 → 8080
	t[12], t[13] = 5<<4, flags
	return total
}

// TestCacheableDecisions: only decisions a flow cache may replay for the
// rest of a flow are Cacheable — forwarded or delivered, not traced, no
// ICMP error, a plain UDP packet or a TCP segment that changes no
// connection state — and RouterHop says when the TTL went down.
func TestCacheableDecisions(t *testing.T) {
	f := newFixture(t)
	snap := f.t.Load()
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	const ack, syn, fin, rst = 0x10, 0x02, 0x01, 0x04
	for _, tc := range []struct {
		name           string
		build          func() int
		verdict        datapath.Verdict
		cacheable, hop bool
	}{
		{"UDP to another host", func() int { return udpPacket(buf, "10.0.1.4", "10.0.1.5", 64, 64, false) }, datapath.Forwarded, true, false},
		{"TCP ACK to another host", func() int { return tcpSegment(buf, "10.0.1.4", "10.0.1.5", ack, 64) }, datapath.Forwarded, true, false},
		{"TCP SYN", func() int { return tcpSegment(buf, "10.0.1.4", "10.0.1.5", syn, 64) }, datapath.Forwarded, false, false},
		{"TCP FIN", func() int { return tcpSegment(buf, "10.0.1.4", "10.0.1.5", fin|ack, 64) }, datapath.Forwarded, false, false},
		{"TCP RST", func() int { return tcpSegment(buf, "10.0.1.4", "10.0.1.5", rst, 64) }, datapath.Forwarded, false, false},
		{"across the peering", func() int { return udpPacket(buf, "10.0.1.4", "10.1.1.4", 64, 64, false) }, datapath.Forwarded, true, true},
		{"this host, other subnet", func() int { return udpPacket(buf, "10.0.1.4", "10.0.2.4", 64, 64, false) }, datapath.Delivered, true, true},
		{"no mapping", func() int { return udpPacket(buf, "10.0.1.4", "10.0.1.99", 64, 64, false) }, datapath.NoMapping, false, false},
		{"spoofed source", func() int { return udpPacket(buf, "10.0.1.77", "10.0.1.5", 64, 64, false) }, datapath.SpoofedSource, false, false},
		{"TTL runs out at the router", func() int { return udpPacket(buf, "10.0.1.4", "10.1.1.4", 64, 1, false) }, datapath.TTLExceeded, false, false},
		{"too big", func() int { return udpPacket(buf, "10.0.1.4", "10.0.1.5", 1500, 64, true) }, datapath.TooBig, false, false},
	} {
		var r Result
		n := tc.build()
		f.p.Egress(snap, f.enis[1], buf, n, scratch, &r)
		if r.Verdict != tc.verdict || r.Cacheable != tc.cacheable || r.Cacheable && r.RouterHop != tc.hop {
			t.Errorf("%s: verdict %v cacheable %v router hop %v; want %v %v %v", tc.name, r.Verdict, r.Cacheable, r.RouterHop, tc.verdict, tc.cacheable, tc.hop)
		}
	}
	// A traced packet takes the story every time.
	n := udpPacket(buf, "10.0.1.4", "10.0.1.5", 64, 64, false)
	if _, r := f.p.TraceEgress(f.enis[1], buf[packet.Headroom:packet.Headroom+n]); r.Verdict != datapath.Forwarded || r.Cacheable {
		t.Errorf("traced: verdict %v cacheable %v; want forwarded, not cacheable", r.Verdict, r.Cacheable)
	}
	// Ingress: a delivery is cacheable, a sender mismatch is not.
	n = udpPacket(buf, "10.0.1.5", "10.0.1.4", 64, 64, false)
	payload := append([]byte(nil), wire(buf, n, red, red)...)
	var r Result
	if f.p.Ingress(snap, host2, payload, &r); r.Verdict != datapath.Delivered || !r.Cacheable {
		t.Errorf("ingress from the right host: %v cacheable %v", r.Verdict, r.Cacheable)
	}
	if f.p.Ingress(snap, host3, payload, &r); r.Verdict != datapath.SenderMismatch || r.Cacheable {
		t.Errorf("ingress from the wrong host: %v cacheable %v", r.Verdict, r.Cacheable)
	}
}

// TestFlowCacheTold: the serving loop tells the cache each cacheable
// decision with the snapshot's generation, and a replayable packet decided
// otherwise is forgotten; nothing allocates on the way.
func TestFlowCacheTold(t *testing.T) {
	f := newFixture(t)
	f.p.cfg.Events = func(datapath.Event) {}
	c := &recordingCache{}
	f.p.SetFlowCache(c)
	snap := f.t.Load()
	w := newEgressWork(1)
	buf := make([]byte, packet.Headroom+maxPacket)
	f.p.egressOne(snap, f.enis[1], buf, udpPacket(buf, "10.0.1.4", "10.0.1.5", 64, 64, false), w)
	w.out = w.out[:0]
	if c.egress != 1 || c.gen != snap.Generation() || c.last.Dst != host2 {
		t.Errorf("forwarded: told %d times, generation %d (snapshot %d), to %v", c.egress, c.gen, snap.Generation(), c.last.Dst)
	}
	f.p.egressOne(snap, f.enis[1], buf, udpPacket(buf, "10.0.1.77", "10.0.1.5", 64, 64, false), w)
	if c.egress != 1 || c.forgotEgress != 1 {
		t.Errorf("spoofed: installed %d, forgotten %d; want 1 and 1", c.egress, c.forgotEgress)
	}
	f.p.egressOne(snap, f.enis[1], buf, tcpSegment(buf, "10.0.1.4", "10.0.1.5", 0x02, 64), w)
	w.out = w.out[:0]
	if c.egress != 1 || c.forgotEgress != 1 {
		t.Errorf("SYN: installed %d, forgotten %d; want neither", c.egress-1, c.forgotEgress-1)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		f.p.egressOne(snap, f.enis[1], buf, udpPacket(buf, "10.0.1.4", "10.0.1.5", 64, 64, false), w)
		w.out = w.out[:0]
	}); allocs != 0 {
		t.Errorf("egress with a flow cache: %.1f allocations per packet", allocs)
	}
}
