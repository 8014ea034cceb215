package tables

import "math/bits"

// mappingTable is one VPC's mappings: a power-of-two array of shards chosen by
// the top bits of the IP's hash. The array grows with the VPC, to about 2·√n
// shards of √n/2 mappings, which balances the two things a delta copies (one
// shard and the array) and keeps a small VPC small.
type mappingTable struct {
	n       int
	shift   uint     // 64 − log2(len(shards)): hash h lives in shards[h>>shift]
	shards  []*shard // nil entries: no mapping hashes there
	pending []slot   // upserts of the owning Txn, placed by flush; nil once published
}

// maxShardBits caps the array at 4096 shards (32 KiB): past 4M mappings in one
// VPC the shards grow instead.
const maxShardBits = 12

func shardBitsFor(n int) uint { return min(maxShardBits, uint(bits.Len(uint(n))+1)/2) }

func newMappingTable() mappingTable {
	return mappingTable{shift: 64, shards: make([]*shard, 1)}
}

func (t *mappingTable) shardBits() uint { return 64 - t.shift }

// find returns the slot of ip, or nil.
func (t *mappingTable) find(ip uint32) *slot {
	h := hashIP(ip)
	sh := t.shards[h>>t.shift]
	if sh == nil {
		return nil
	}
	if i := sh.find(ip, h); i >= 0 {
		return &sh.slots[i]
	}
	return nil
}

// upsert queues s; flush places it. The table must belong to the Txn.
func (t *mappingTable) upsert(s slot) { t.pending = append(t.pending, s) }

// delete removes ip and reports whether it was there. The table must belong to
// the Txn of generation gen.
func (t *mappingTable) delete(gen uint64, ip uint32) bool {
	t.flush(gen)
	h := hashIP(ip)
	i := h >> t.shift
	if t.shards[i] == nil || t.shards[i].find(ip, h) < 0 {
		return false
	}
	sh := t.shards[i].writable(gen, 0)
	sh.remove(sh.find(ip, h))
	t.shards[i] = sh.compact(gen)
	t.n--
	if want := shardBitsFor(t.n); want+1 < t.shardBits() {
		t.reshard(gen, want)
	}
	return true
}

// flush places the pending upserts. Grouped by shard, each shard is resized at
// most once and filled while it sits in cache: a full snapshot of a million
// mappings builds several times faster than by one-by-one inserts. The grouping
// is stable, so the last upsert of an IP wins.
func (t *mappingTable) flush(gen uint64) {
	if len(t.pending) == 0 {
		return
	}
	if want := shardBitsFor(t.n + len(t.pending)); want > t.shardBits() {
		t.reshard(gen, want) // which flushes
		return
	}
	pending := t.pending
	t.pending = nil
	if len(pending) < len(t.shards)/4 {
		// A few deltas: grouping would cost more than it saves.
		for i := range pending {
			t.place(int(hashIP(pending[i].ip)>>t.shift), pending[i:i+1], gen)
		}
		return
	}
	for i, batch := range t.groupByShard(pending) {
		if len(batch) > 0 {
			t.place(i, batch, gen)
		}
	}
}

// groupByShard splits slots by shard, keeping their order (a counting sort).
func (t *mappingTable) groupByShard(slots []slot) [][]slot {
	counts := make([]int, len(t.shards))
	for _, s := range slots {
		counts[hashIP(s.ip)>>t.shift]++
	}
	sorted := make([]slot, len(slots))
	groups := make([][]slot, len(t.shards))
	at := 0
	for i, c := range counts {
		groups[i] = sorted[at : at : at+c]
		at += c
	}
	for _, s := range slots {
		i := hashIP(s.ip) >> t.shift
		groups[i] = append(groups[i], s)
	}
	return groups
}

// place puts batch into shard i.
func (t *mappingTable) place(i int, batch []slot, gen uint64) {
	sh := t.shards[i]
	added := len(batch)
	if sh != nil {
		// Replacements need no room: count them so that a resync of existing
		// mappings does not inflate the shard.
		for _, s := range batch {
			if sh.find(s.ip, hashIP(s.ip)) >= 0 {
				added--
			}
		}
	}
	sh = sh.writable(gen, added)
	for _, s := range batch {
		if sh.put(s, hashIP(s.ip)) {
			t.n++
		}
	}
	t.shards[i] = sh
}

// reshard empties the table into a new array of 2^b shards, the old entries
// queued ahead of the pending ones for flush to place. It costs a copy of the
// VPC, once each time the VPC grows fourfold or shrinks sixteenfold.
func (t *mappingTable) reshard(gen uint64, b uint) {
	all := make([]slot, 0, t.n+len(t.pending))
	for _, sh := range t.shards {
		if sh != nil {
			for _, s := range sh.slots {
				if s.host != 0 {
					all = append(all, s)
				}
			}
		}
	}
	*t = mappingTable{shift: 64 - b, shards: make([]*shard, 1<<b), pending: append(all, t.pending...)}
	t.flush(gen)
}

// all calls f for every mapping until f returns false.
func (t *mappingTable) all(f func(*slot) bool) bool {
	for _, sh := range t.shards {
		if sh == nil {
			continue
		}
		for i := range sh.slots {
			if sh.slots[i].host != 0 && !f(&sh.slots[i]) {
				return false
			}
		}
	}
	return true
}
