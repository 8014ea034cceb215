package tables

import "slices"

// A shard is an open-addressing table (linear probing) in one flat slice,
// immutable once published: a delta copies the one shard it changes.

const minSlots = 8

// Load factors: a shard is sized for 0.7 and resized outside [0.3, 0.8], dense
// enough for ~35 bytes a mapping, sparse enough that a miss (a dropped packet)
// probes a few slots only.
func fits(n, size int) bool   { return n*10 <= size*8 && n < size }       // ≤ 0.8
func sizeFor(n int) int       { return max(minSlots, n*10/7+1) }          // 0.7
func sparse(n, size int) bool { return size > minSlots && n*10 < size*3 } // < 0.3

// slot is one mapping. Key and value share 24 bytes, so a hit reads one cache
// line (two when the slot straddles a boundary), not a key line and a value line.
type slot struct {
	ip   uint32 // private IPv4 address
	host uint32 // index into the snapshot's host slots; 0 marks an empty slot
	eni  uint64
	mac  [6]byte
	// groups indexes the VPC's group sets (vpcEntry.groupSets); 0 is none.
	// It sits in what was padding: a slot stays 24 bytes.
	groups uint16
}

type shard struct {
	owner uint64 // generation of the Txn that may still mutate it (see Txn)
	n     int
	slots []slot // never full: a probe always ends at an empty slot
}

// hashIP spreads IPs, which IPAM hands out densely, over shards and slots.
// Fibonacci hashing: the top maxShardBits bits choose the shard, the 32 below
// them the slot, so that the two choices are independent.
func hashIP(ip uint32) uint64 { return uint64(ip) * 0x9E3779B97F4A7C15 }

// home maps h onto the slots with a multiply instead of a modulo, so that the
// shard size need not be a power of two and can track its load closely.
func (sh *shard) home(h uint64) int {
	return int((h >> (64 - maxShardBits - 32) & 0xFFFFFFFF) * uint64(len(sh.slots)) >> 32)
}

// find returns the slot index of ip, or -1.
func (sh *shard) find(ip uint32, h uint64) int {
	for i := sh.home(h); ; {
		s := &sh.slots[i]
		if s.host == 0 {
			return -1
		}
		if s.ip == ip {
			return i
		}
		if i++; i == len(sh.slots) {
			i = 0
		}
	}
}

// writable returns a shard holding sh's entries that the Txn of generation gen
// may mutate, with room for extra more entries: sh itself if that Txn made it,
// else a copy. sh may be nil (an empty shard).
func (sh *shard) writable(gen uint64, extra int) *shard {
	var n, size int
	if sh != nil {
		n, size = sh.n, len(sh.slots)
	}
	switch {
	case !fits(n+extra, size):
		return sh.resized(gen, sizeFor(n+extra))
	case sh.owner == gen:
		return sh
	default:
		return &shard{owner: gen, n: sh.n, slots: slices.Clone(sh.slots)}
	}
}

// resized rehashes sh's entries into a new shard with at least size slots.
func (sh *shard) resized(gen uint64, size int) *shard {
	// Grow to the allocator's size class: the rounding is memory paid for anyway.
	slots := slices.Grow([]slot(nil), size)
	out := &shard{owner: gen, slots: slots[:cap(slots)]}
	if sh != nil {
		for _, s := range sh.slots {
			if s.host != 0 {
				out.put(s, hashIP(s.ip))
			}
		}
	}
	return out
}

// put inserts or replaces s and reports whether it was new. The shard must be
// writable with room for one more entry.
func (sh *shard) put(s slot, h uint64) (added bool) {
	i := sh.home(h)
	for sh.slots[i].host != 0 && sh.slots[i].ip != s.ip {
		if i++; i == len(sh.slots) {
			i = 0
		}
	}
	added = sh.slots[i].host == 0
	sh.slots[i] = s
	if added {
		sh.n++
	}
	return added
}

// remove deletes the entry at slot i of a writable shard. Instead of leaving a
// tombstone it shifts later entries of the probe run back, so lookups stay as
// short as if the entry had never been inserted.
func (sh *shard) remove(i int) {
	sh.n--
	size := len(sh.slots)
	for j := i; ; {
		sh.slots[i] = slot{}
		for {
			if j++; j == size {
				j = 0
			}
			s := sh.slots[j]
			if s.host == 0 {
				return
			}
			// s may fill the hole at i if i lies on its probe path home..j.
			k := sh.home(hashIP(s.ip))
			if (j-k+size)%size >= (j-i+size)%size {
				sh.slots[i] = s
				i = j
				break
			}
		}
	}
}

// compact returns the shard to keep after deletions: nil when empty, a smaller
// copy when mostly empty, else sh.
func (sh *shard) compact(gen uint64) *shard {
	switch {
	case sh.n == 0:
		return nil
	case sparse(sh.n, len(sh.slots)):
		return sh.resized(gen, sizeFor(sh.n))
	}
	return sh
}
