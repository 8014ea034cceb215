package tables

import "math/bits"

// index is an open-addressing table from a 32-bit key (a VNI, an underlay IPv4
// address) to a value. It is built whole at commit and never changed after, so
// it needs no deletion; probing it is cheaper than a Go map's lookup.
type index[V any] struct {
	slots []indexSlot[V] // power-of-two length, at most half full
	shift uint
}

type indexSlot[V any] struct {
	key  uint32
	used bool
	val  V
}

func newIndex[V any](n int) index[V] {
	if n == 0 {
		return index[V]{}
	}
	b := bits.Len(uint(2*n - 1)) // 2^b >= 2n
	return index[V]{slots: make([]indexSlot[V], 1<<b), shift: uint(32 - b)}
}

func (x *index[V]) home(k uint32) int { return int((k * 0x9E3779B1) >> x.shift) }

// set inserts or replaces; only while the index is being built.
func (x *index[V]) set(k uint32, v V) {
	mask := len(x.slots) - 1
	i := x.home(k)
	for x.slots[i].used && x.slots[i].key != k {
		i = (i + 1) & mask
	}
	x.slots[i] = indexSlot[V]{key: k, used: true, val: v}
}

func (x *index[V]) get(k uint32) (v V, ok bool) {
	if len(x.slots) == 0 {
		return v, false
	}
	mask := len(x.slots) - 1
	for i := x.home(k); x.slots[i].used; i = (i + 1) & mask {
		if x.slots[i].key == k {
			return x.slots[i].val, true
		}
	}
	return v, false
}
