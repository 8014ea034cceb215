package datapath

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/openvpc/openvpc/packet"
)

// Direction says which story a flow record belongs to.
type Direction uint8

const (
	Egress  Direction = iota // sent by a local instance (or, at an edge, from a host to the internet)
	Ingress                  // received from the wire (or, at an edge, from the internet)
)

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// FlowKey names a flow: its VPC and its 5-tuple, as the instance sees it.
type FlowKey struct {
	VNI              uint32
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // ICMP echo: the identifier as SrcPort
}

// Flow is one flow record: what the data plane did with a flow's packets
// in one direction, and how many there were.
type Flow struct {
	FlowKey
	Direction   Direction
	Verdict     Verdict // of the flow's latest packet
	Packets     uint64
	Bytes       uint64
	First, Last time.Time
}

// FlowTTL is how long a flow with no packets stays listed.
const FlowTTL = 5 * time.Minute

// flowWays is the associativity of a flow table: a new flow replaces the
// stalest of the records its hash points at.
const flowWays = 4

// FlowTable is one worker's flow records: a fixed array, so recording a
// packet allocates nothing and memory does not grow with the number of
// flows. The worker holds it from Begin to End around each batch; List
// takes it briefly.
type FlowTable struct {
	mu      sync.Mutex
	dir     Direction
	now     int64 // the batch's time, set under mu
	entries []flowEntry
}

// FlowID is a flow's key packed for the table: vni(3) proto(1) src(4)
// dst(4) sport(2) dport(2).
type FlowID [16]byte

type flowEntry struct {
	key            FlowID
	verdict        Verdict
	packets, bytes uint64
	first, last    int64 // unix nanoseconds
}

func newFlowTable(dir Direction, size int) *FlowTable {
	return &FlowTable{dir: dir, entries: make([]flowEntry, size)}
}

// NewFlowID packs the flow of pkt in VPC vni. It needs a valid packet.
func NewFlowID(vni uint32, pkt packet.IPv4) (k FlowID) {
	binary.BigEndian.PutUint32(k[0:], vni<<8|uint32(pkt.Protocol()))
	copy(k[4:12], pkt[12:20]) // source and destination addresses
	if pkt.FragmentOffset() != 0 {
		return k
	}
	p := pkt.Payload()
	switch pkt.Protocol() {
	case packet.ProtoTCP, packet.ProtoUDP:
		if len(p) >= 4 {
			copy(k[12:16], p[:4])
		}
	case packet.ProtoICMP:
		if len(p) >= 6 {
			copy(k[12:14], p[4:6]) // the echo identifier
		}
	}
	return k
}

// record counts one packet of n bytes with verdict v. Called with t.mu held.
func (t *FlowTable) Record(vni uint32, pkt packet.IPv4, n int, v Verdict) {
	if len(pkt) < packet.IPv4MinSize {
		return
	}
	t.RecordID(NewFlowID(vni, pkt), n, v)
}

// RecordID is Record for a flow named before its packet was rewritten.
func (t *FlowTable) RecordID(k FlowID, n int, v Verdict) { t.RecordCount(k, 1, uint64(n), v) }

// RecordCount is RecordID for packets counted elsewhere (a kernel fast
// path replaying the flow): packets and bytes are added at once. Call it
// between Begin and End like Record.
func (t *FlowTable) RecordCount(k FlowID, packets, bytes uint64, v Verdict) {
	h := uint64(binary.BigEndian.Uint64(k[0:]))*0x9E3779B97F4A7C15 ^ uint64(binary.BigEndian.Uint64(k[8:]))*0xC2B2AE3D27D4EB4F
	set := t.entries[int(h>>32)%(len(t.entries)/flowWays)*flowWays:][:flowWays]
	victim := 0
	for i := range set {
		e := &set[i]
		if e.key == k {
			e.verdict, e.last = v, t.now
			e.packets += packets
			e.bytes += bytes
			return
		}
		if e.last < set[victim].last {
			victim = i
		}
	}
	set[victim] = flowEntry{key: k, verdict: v, packets: packets, bytes: bytes, first: t.now, last: t.now}
}

// begin starts a batch: the table is the caller's until end.
func (t *FlowTable) Begin() {
	t.mu.Lock()
	t.now = time.Now().UnixNano()
}

// End ends a batch.
func (t *FlowTable) End() { t.mu.Unlock() }

// flows appends the table's live records to out.
func (t *FlowTable) flows(out []Flow, since int64) []Flow {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.entries {
		e := &t.entries[i]
		if e.packets == 0 || e.last < since {
			continue
		}
		vp := binary.BigEndian.Uint32(e.key[0:])
		out = append(out, Flow{
			FlowKey: FlowKey{
				VNI: vp >> 8, Proto: uint8(vp),
				Src: netip.AddrFrom4([4]byte(e.key[4:8])), Dst: netip.AddrFrom4([4]byte(e.key[8:12])),
				SrcPort: binary.BigEndian.Uint16(e.key[12:]), DstPort: binary.BigEndian.Uint16(e.key[14:]),
			},
			Direction: t.dir, Verdict: e.verdict, Packets: e.packets, Bytes: e.bytes,
			First: time.Unix(0, e.first), Last: time.Unix(0, e.last),
		})
	}
	return out
}

// Flows keeps the flow tables of a data plane's workers and reads them.
type Flows struct {
	mu     sync.Mutex
	tables []*FlowTable
}

// Table returns a new worker's table, listed until Release.
func (f *Flows) Table(dir Direction) *FlowTable {
	t := newFlowTable(dir, flowTableSize)
	f.mu.Lock()
	f.tables = append(f.tables, t)
	f.mu.Unlock()
	return t
}

// Release forgets a worker's table (its port closed).
func (f *Flows) Release(t *FlowTable) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tables = slices.DeleteFunc(f.tables, func(x *FlowTable) bool { return x == t })
}

// flowTableSize is the number of records per worker: 4096 × 56 bytes.
const flowTableSize = 4096

// List returns the flows seen within FlowTTL, merged across workers
// (a flow's records from two workers add up), newest first.
func (f *Flows) List() []Flow {
	f.mu.Lock()
	tables := slices.Clone(f.tables)
	f.mu.Unlock()
	since := time.Now().Add(-FlowTTL).UnixNano()
	var all []Flow
	for _, t := range tables {
		all = t.flows(all, since)
	}
	type id struct {
		FlowKey
		Direction
	}
	merged := map[id]int{}
	out := all[:0]
	for _, fl := range all {
		k := id{fl.FlowKey, fl.Direction}
		if i, ok := merged[k]; ok {
			m := &out[i]
			m.Packets += fl.Packets
			m.Bytes += fl.Bytes
			if fl.First.Before(m.First) {
				m.First = fl.First
			}
			if fl.Last.After(m.Last) {
				m.Last, m.Verdict = fl.Last, fl.Verdict
			}
			continue
		}
		merged[k] = len(out)
		out = append(out, fl)
	}
	slices.SortFunc(out, func(a, b Flow) int { return b.Last.Compare(a.Last) })
	return out
}
