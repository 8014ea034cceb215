package tables

import (
	"net/netip"
	"testing"
)

// scalingSizes are the cache sizes the scaling benchmarks step through:
// how the cache's costs grow from a small host's cache to the P5 goal size.
var scalingSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}}

// spread maps the i-th access to a mapping index in [0, n) with no
// locality, as the packets of many flows would: a multiplicative hash
// scaled into range by a multiply and a shift (no division, so the cost
// does not depend on n).
func spread(i, n int) int {
	return int(uint64(uint32(i)*0x9E3779B1) * uint64(n) >> 32)
}

// buildN is build1M for n mappings (n ≤ bigN).
func buildN(tb testing.TB, n int) *Tables {
	t := New(1)
	tx := t.Begin(1)
	tx.Reset()
	for id := uint64(1); id <= bigHosts; id++ {
		mustOK(tb, tx.UpsertHost(Host{ID: id, Underlay: addr4(0x7f000000 + uint32(id)), Role: RoleHost, Healthy: true}))
	}
	v := testVPC()
	v.VNI, v.CIDR = bigVNI, netip.MustParsePrefix("10.0.0.0/12")
	mustOK(tb, tx.UpsertVPC(v))
	for i := range n {
		if err := tx.UpsertMapping(bigMapping(i, uint64(i+1))); err != nil {
			tb.Fatal(err)
		}
	}
	tx.Commit()
	return t
}

// BenchmarkCacheScaling measures how a lookup of a random mapping and one
// delta (a one-mapping transaction, as a propagated `instance run` arrives
// at a host) grow with the number of mappings in the cache.
func BenchmarkCacheScaling(b *testing.B) {
	for _, size := range scalingSizes {
		b.Run("mappings="+size.name, func(b *testing.B) {
			t := buildN(b, size.n)
			if got := t.Load().Len(); got != size.n {
				b.Fatalf("cache holds %d mappings, want %d", got, size.n)
			}
			b.Run("lookup", func(b *testing.B) {
				s := t.Load()
				var m Mapping
				i := 0
				for b.Loop() {
					if !s.Lookup(bigVNI, addr4(bigBase+uint32(spread(i, size.n))), &m) {
						b.Fatal("miss")
					}
					i++
				}
			})
			b.Run("delta", func(b *testing.B) {
				rev := t.Load().Revision()
				i := 0
				for b.Loop() {
					rev++
					tx := t.Begin(rev)
					if err := tx.UpsertMapping(bigMapping(spread(i, size.n), uint64(i+1))); err != nil {
						b.Fatal(err)
					}
					tx.Commit()
					i++
				}
			})
		})
	}
}
