package tables

import (
	"fmt"
	"math/bits"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

// The published goals: a mapping lookup in ≤ 25 ns with no allocation and
// ≤ 64 bytes a mapping at 1M mappings; a delta that copies a shard, not the VPC.

const (
	bigN     = 1 << 20 // "1M" mappings, all in one VPC: the worst case for a delta
	bigVNI   = 1
	bigHosts = 1000
	bigBase  = 0x0a000000 // 10.0.0.0/12
)

func bigMapping(i int, eni uint64) Mapping {
	return Mapping{VNI: bigVNI, IP: addr4(bigBase + uint32(i)), HostID: uint64(i%bigHosts + 1),
		ENI: eni, MAC: [6]byte{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}}
}

// build1M builds tables with bigHosts hosts and bigN mappings in one transaction,
// as a full snapshot from the Mapping Service arrives.
func build1M(tb testing.TB) *Tables {
	t := New(1)
	tx := t.Begin(1)
	tx.Reset()
	for id := uint64(1); id <= bigHosts; id++ {
		mustOK(tb, tx.UpsertHost(Host{ID: id, Underlay: addr4(0x7f000000 + uint32(id)), Role: RoleHost, Healthy: true}))
	}
	v := testVPC()
	v.VNI, v.CIDR = bigVNI, netip.MustParsePrefix("10.0.0.0/12")
	mustOK(tb, tx.UpsertVPC(v))
	for i := range bigN {
		if err := tx.UpsertMapping(bigMapping(i, uint64(i+1))); err != nil {
			tb.Fatal(err) // not mustOK: its t.Helper would dominate the build time
		}
	}
	tx.Commit()
	return t
}

var shared1M = sync.OnceValue(func() *Tables { return build1M(&testing.B{}) })

// scatter visits 0..bigN-1 in an order with no locality, as packets of many
// flows would; an odd multiplier permutes a power-of-two range.
func scatter(i int) uint32 { return uint32(i*0x2545F491) & (bigN - 1) }

// BenchmarkLookup1M looks up mappings in a VPC of 1M:
//   - random: every lookup a different, random mapping (a table of ~35 MB, so
//     this measures the machine's memory latency more than the code);
//   - hot: 1024 random mappings, the flows of a busy host: the cost when the
//     mappings are in cache (and their pages in the TLB);
//   - miss: absent addresses, the cost of a drop;
//   - floor: one random 8-byte load from an array as big as the table, without
//     any lookup: what random lookups cannot beat on this machine.
var hotMask = 1023

func BenchmarkLookup1M(b *testing.B) {
	s := shared1M().Load()
	var m Mapping // one per batch, as the data path would keep it
	b.Run("random", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if !s.Lookup(bigVNI, addr4(bigBase+scatter(i)), &m) || m.ENI == 0 {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("hot", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if !s.Lookup(bigVNI, addr4(bigBase+scatter(i&hotMask)), &m) || m.ENI == 0 {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("miss", func(b *testing.B) {
		i := 0
		for b.Loop() {
			// Same VPC, addresses just past the mapped ones.
			if s.Lookup(bigVNI, addr4(bigBase+bigN+scatter(i)), &m) {
				b.Fatal("hit")
			}
			i++
		}
	})
	b.Run("floor", func(b *testing.B) {
		e, _ := s.byVNI.get(bigVNI)
		size := 0
		for _, sh := range e.shards {
			size += len(sh.slots) * int(unsafe.Sizeof(slot{}))
		}
		words := make([]uint64, 1<<bits.Len(uint(size/8))) // power of two ≥ the table
		for i := range words {
			words[i] = uint64(i) // touch every page: no shared zero page
		}
		mask := uint32(len(words) - 1)
		var x uint64
		i := 0
		for b.Loop() {
			x += words[uint32(i*0x2545F491)&mask]
			i++
		}
		runtime.KeepAlive(x)
	})
}

func BenchmarkMemory1M(b *testing.B) {
	var perMapping float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := build1M(b)
		runtime.GC()
		runtime.ReadMemStats(&after)
		perMapping = float64(after.HeapAlloc-before.HeapAlloc) / bigN
		runtime.KeepAlive(t)
	}
	b.ReportMetric(perMapping, "B/mapping")
}

func BenchmarkBuild1M(b *testing.B) {
	for b.Loop() {
		build1M(b)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/bigN, "ns/mapping")
}

// BenchmarkDelta1M times one delta — a transaction with one mapping change —
// against a VPC of 1M mappings, including the garbage it leaves to collect.
func BenchmarkDelta1M(b *testing.B) {
	t := shared1M()
	rev := t.Load().Revision()
	b.Run("upsert", func(b *testing.B) {
		i := 0
		for b.Loop() {
			rev++
			tx := t.Begin(rev)
			if err := tx.UpsertMapping(bigMapping(int(scatter(i)), uint64(i+1))); err != nil {
				b.Fatal(err)
			}
			tx.Commit()
			i++
		}
	})
	b.Run("delete+insert", func(b *testing.B) {
		i := 0
		for b.Loop() {
			rev++
			k := int(scatter(i / 2))
			tx := t.Begin(rev)
			var err error
			if i%2 == 0 {
				err = tx.DeleteMapping(bigVNI, addr4(bigBase+uint32(k)))
			} else {
				err = tx.UpsertMapping(bigMapping(k, uint64(k+1)))
			}
			if err != nil {
				b.Fatal(err)
			}
			tx.Commit()
			i++
		}
		if i%2 == 1 { // put the last deleted mapping back
			tx := t.Begin(rev)
			mustOK(b, tx.UpsertMapping(bigMapping(int(scatter(i/2)), 1)))
			tx.Commit()
		}
	})
	if t.Load().Len() != bigN {
		b.Fatalf("Len %d after deltas, want %d", t.Load().Len(), bigN)
	}
}

func BenchmarkRoute(b *testing.B) {
	for _, n := range []int{8, 64} {
		b.Run(fmt.Sprintf("%droutes", n), func(b *testing.B) {
			v := routeHeavyVPC(b, n)
			src, dst := netip.MustParseAddr("10.7.0.10"), netip.MustParseAddr("8.8.8.8")
			for b.Loop() {
				// The default route is the last one tried: the worst case.
				if r := v.Route(src, dst); r == nil || r.Target.Kind != TargetInternetGateway {
					b.Fatal("no default route")
				}
			}
		})
	}
}

// routeHeavyVPC is testVPC with its main table padded to n routes.
func routeHeavyVPC(b *testing.B, n int) *VPC {
	in := testVPC()
	rt := &in.RouteTables[0]
	for i := len(rt.Routes); i < n; i++ {
		dst := netip.PrefixFrom(addr4(0xac100000+uint32(i)<<8), 24) // 172.16.i.0/24
		rt.Routes = append(rt.Routes, Route{Dst: dst, Target: Target{TargetPeering, uint64(i)}})
	}
	v, err := compileVPC(in)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
