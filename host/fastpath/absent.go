package fastpath

import "sync/atomic"

// absent remembers flow keys the Go story removed from a map and has not
// installed since: keys that have no entry. Forgetting one of those again
// — every packet of a flow the cache may not replay, a flow to an edge
// say — then costs a hash and a load instead of a bpf(2) system call that
// finds nothing (measured: 46 % of an agent's CPU on a Direct Connect
// stream).
//
// It only ever skips deletions of keys that are absent, so it changes no
// decision: an entry exists only if Egress or Ingress installed it, and
// installing clears its key here. A lost race (a Forget reading the slot
// between an install's map update and its clearing the slot) or a hash
// collision skips deleting an entry that exists; that entry is
// still never replayed past its generation or its expiry, and Revalidate
// or the LRU removes it.
type absent struct {
	slots [absentSlots]atomic.Uint64 // hash|1 of a key known to have no entry; 0: nothing known
}

// absentSlots bounds the table: one direct-mapped slot per hash; a newer
// key takes an older's slot.
const absentSlots = 4096

// known reports whether key hash h is known to have no entry.
func (a *absent) known(h uint64) bool { return a.slots[h%absentSlots].Load() == h|1 }

// deleted records that key hash h has no entry now.
func (a *absent) deleted(h uint64) { a.slots[h%absentSlots].Store(h | 1) }

// installed records that key hash h may have an entry now.
func (a *absent) installed(h uint64) { a.slots[h%absentSlots].CompareAndSwap(h|1, 0) }

// mix is a 64-bit finalizer (SplitMix64's): keys that differ in any bit
// land in unrelated slots.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (k *fastpathEgressKey) hash() uint64 {
	h := mix(uint64(k.Ifindex)<<32 | uint64(k.Saddr))
	h = mix(h ^ uint64(k.Daddr)<<32 ^ uint64(k.Sport)<<16 ^ uint64(k.Dport))
	return mix(h ^ uint64(k.Proto))
}

func (k *fastpathIngressKey) hash() uint64 {
	h := mix(uint64(k.OuterSrc)<<32 | uint64(k.Vni))
	h = mix(h ^ uint64(k.Svni)<<32 ^ uint64(k.Saddr))
	h = mix(h ^ uint64(k.Daddr)<<32 ^ uint64(k.Sport)<<16 ^ uint64(k.Dport))
	return mix(h ^ uint64(k.Proto))
}
