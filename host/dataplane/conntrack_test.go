package dataplane

import (
	"sync"
	"testing"

	"github.com/openvpc/openvpc/packet"
)

// Both directions of a flow find one entry; an expired entry is a miss and
// its slot is taken again.
func TestConntrackBothWays(t *testing.T) {
	c := NewConntrack(64)
	buf := make([]byte, 2048)
	out := packet.IPv4(buf[packet.Headroom : packet.Headroom+tcp(buf, "10.0.1.4", "10.0.1.5", 40000, 80, 0x02)])
	fo := flowOf(out)
	if !c.Insert(flowKey(1, out, &fo, true), 100, 30) {
		t.Fatal("insert into an empty table failed")
	}
	in := packet.IPv4(buf[packet.Headroom : packet.Headroom+tcp(buf, "10.0.1.5", "10.0.1.4", 80, 40000, 0x12)])
	fi := flowOf(in)
	if !c.Lookup(flowKey(1, in, &fi, false), 120, 30) {
		t.Fatal("the reply does not find its flow")
	}
	if c.Lookup(flowKey(2, in, &fi, false), 120, 30) {
		t.Fatal("another ENI's reply found the flow")
	}
	if c.Lookup(flowKey(1, in, &fi, false), 200, 30) || c.Len(200) != 0 {
		t.Fatal("an expired flow was found")
	}
	// An ICMP error about the flow belongs to it.
	icmp := make([]byte, 2048)
	orig := make([]byte, 2048)
	tcp(orig, "10.0.1.4", "10.0.1.5", 40000, 80, 0x02)
	q := orig[packet.Headroom : packet.Headroom+28] // the header and ports of the packet it is about
	n := packet.IPv4MinSize + 8 + len(q)
	b := packet.IPv4(icmp[packet.Headroom : packet.Headroom+n])
	b.Encode(&packet.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: packet.ProtoICMP, Src: a("10.0.1.5"), Dst: a("10.0.1.4")})
	m := b.Payload()
	m[0], m[1] = packet.ICMPv4DstUnreachable, 3
	copy(m[8:], q)
	out = packet.IPv4(orig[packet.Headroom : packet.Headroom+40])
	fo = flowOf(out)
	c.Insert(flowKey(1, out, &fo, true), 300, 30)
	fe := flowOf(b)
	if fe.quoted == nil || !c.Lookup(flowKey(1, b, &fe, false), 310, 30) {
		t.Fatal("an ICMP error about a tracked flow is not found as that flow")
	}
}

// FuzzConntrackKey: any packet the stories accept gives a key without
// panicking, and a key inserted is found again.
func FuzzConntrackKey(f *testing.F) {
	buf := make([]byte, 2048)
	f.Add(append([]byte(nil), buf[packet.Headroom:packet.Headroom+tcp(buf, "10.0.1.4", "10.0.1.5", 40000, 80, 0x02)]...), true)
	f.Add(append([]byte(nil), buf[packet.Headroom:packet.Headroom+udpPacket(buf, "10.0.1.4", "10.0.1.5", 10, 64, false)]...), false)
	icmp := []byte{0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 1, 5, 10, 0, 1, 4, 3, 3, 0, 0, 0, 0, 0, 0,
		0x46, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 1, 4, 10, 0, 1, 5, 0, 0, 0, 0, 8, 0, 0, 0}
	f.Add(icmp, false)
	c := NewConntrack(1 << 10)
	f.Fuzz(func(t *testing.T, data []byte, outbound bool) {
		pkt := packet.IPv4(data)
		if !pkt.Valid() {
			return
		}
		pkt = pkt[:pkt.TotalLen()]
		fl := flowOf(pkt)
		k := flowKey(7, pkt, &fl, outbound)
		if c.Insert(k, 1000, 10) && !c.Lookup(k, 1005, 10) {
			t.Fatalf("inserted %+v, not found", k)
		}
	})
}

// BenchmarkConntrack1M is P11's other half: a lookup of a random one of a
// million tracked flows, next to one random 8-byte load from an array as
// large as the table (memory latency, the floor any lookup pays), and the
// table's bytes per flow.
func BenchmarkConntrack1M(b *testing.B) {
	const flows = 1 << 20
	c := NewConntrack(2 * flows) // half full: AWS-like headroom before conntrack-full
	key := func(i int) ctKey {
		return newCtKey(uint64(i%64+1), 0x0a000000|uint32(i), 0x0a010000|uint32(i*7), uint16(i), 443, 6)
	}
	refused := 0
	for i := range flows {
		if !c.Insert(key(i), 1000, 600) {
			refused++
		}
	}
	if refused > flows/10000 {
		b.Fatalf("a half-full table refused %d of %d flows", refused, flows)
	}
	b.Run("lookup-random", func(b *testing.B) {
		i := 0
		for b.Loop() {
			c.Lookup(key(int(uint32(i*0x2545F491)&(flows-1))), 1001, 600)
			i++
		}
		b.ReportMetric(float64(len(c.entries)*32)/flows, "B/flow")
		b.ReportMetric(float64(refused), "refused")
	})
	b.Run("floor", func(b *testing.B) {
		words := make([]uint64, len(c.entries)*4) // as many bytes as the table
		for i := range words {
			words[i] = uint64(i)
		}
		mask := uint32(len(words) - 1)
		var x uint64
		i := 0
		for b.Loop() {
			x += words[uint32(i*0x2545F491)&mask]
			i++
		}
		_ = x
	})
}

// Workers share the table: flows inserted by one are found by the others,
// and no two writers garble a slot (every key found is one inserted).
func TestConntrackConcurrent(t *testing.T) {
	c := NewConntrack(1 << 12)
	const workers, each = 4, 500
	key := func(w, i int) ctKey { return newCtKey(uint64(w+1), 0x0a000000|uint32(i), 0x0a010000, uint16(i), 80, 6) }
	var wg sync.WaitGroup
	refused := make([]map[int]bool, workers)
	for w := range workers {
		refused[w] = map[int]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !c.Insert(key(w, i), 100, 600) {
					refused[w][i] = true
				}
				c.Lookup(key((w+1)%workers, i), 100, 600) // read what another writes
			}
		}()
	}
	wg.Wait()
	for w := range workers {
		for i := range each {
			if !refused[w][i] && !c.Lookup(key(w, i), 101, 600) {
				t.Fatalf("flow %d of worker %d was inserted and is gone", i, w)
			}
		}
	}
	if got := c.Len(101); got+len(refused[0])+len(refused[1])+len(refused[2])+len(refused[3]) != workers*each {
		t.Fatalf("%d flows live, %d inserted", got, workers*each)
	}
}
