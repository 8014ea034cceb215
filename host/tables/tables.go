// Package tables is the host's cache of the Mapping Service: immutable lookup
// snapshots that the packet path reads without locks, swapped atomically by the control plane.
//
// The cache is authoritative for the host's scope: a miss is a drop, never a query.
// Readers call [Tables.Load] once per batch and then look up freely; a Snapshot
// never changes, allocates nothing on lookup and stays valid as long as it is held.
//
// The single writer (the subscriber) turns the stream into transactions:
//
//	snapshot at R        Begin(R), Reset, UpsertHost…, UpsertVPC…, UpsertMapping…, Commit
//	delta at R           Begin(R), UpsertHost/DeleteHost/UpsertVPC/RemoveVPC/
//	                     UpsertMapping/DeleteMapping…, Commit
//	scope-add of a VPC   UpsertVPC then its UpsertMapping…   (UpsertVPC keeps mappings)
//	scope-remove         RemoveVPC                            (drops the VPC's mappings)
//
// A transaction copies on write only what it touches: one delta to a VPC of a
// million mappings copies a shard of about 500 mappings and a 2048-entry shard
// array, about 33 KiB.
package tables

import (
	"iter"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// Tables holds the current Snapshot. Load may be called from any goroutine;
// writes go through Begin, which admits one Txn at a time. Make one with New.
type Tables struct {
	self uint64
	cur  atomic.Pointer[Snapshot]

	mu  sync.Mutex // held from Begin until Commit or Abort
	gen uint64     // generation of the latest Txn, under mu
	// publish, when set, is handed each new snapshot before it is
	// published (under mu): what a kernel flow cache needs so that no
	// entry decided on an older snapshot outlives it.
	publish func(*Snapshot)
}

// OnPublish has f handed each new snapshot before it is published, and at
// once the current one. f runs with the writer's lock held: it must not
// Begin, and the snapshot it gets is not yet what Load returns.
func (t *Tables) OnPublish(f func(*Snapshot)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publish = f
	if f != nil {
		f(t.cur.Load())
	}
}

// New returns tables for host self holding an empty snapshot at revision 0.
func New(self uint64) *Tables {
	t := &Tables{self: self}
	t.cur.Store(&Snapshot{self: self, hostTable: emptyHostTable()})
	return t
}

// Load returns the current snapshot: one atomic load.
func (t *Tables) Load() *Snapshot { return t.cur.Load() }

// Snapshot is an immutable view of the cache at one revision.
type Snapshot struct {
	rev  int64
	gen  uint64 // the Txn that published it; every snapshot has its own
	self uint64
	hostTable
	vpcTable
}

type hostTable struct {
	hosts      []Host            // by slot; slot 0 is unused so that 0 can mark an empty mapping slot
	slotByID   map[uint64]uint32 // read by the writer and HostByID
	byUnderlay index[uint32]     // registered hosts only
	edges      []Host            // healthy edges by id
	// served lists, per edge target named by some edge's functions (ID 0:
	// every target of the kind), the healthy edges that serve it.
	served []edgeSet
}

// edgeSet is the healthy edges serving one target, ordered by id.
type edgeSet struct {
	target Target
	edges  []Host
}

type vpcTable struct {
	byVNI index[*vpcEntry]
	vpcs  []*vpcEntry // by VNI, for enumeration
	n     int         // mappings in all VPCs
	// byPublic finds the private side of an Elastic IP: what an edge does
	// with every packet from the internet.
	byPublic index[publicEntry]
}

// publicEntry is the private side of an Elastic IP.
type publicEntry struct {
	vni uint32
	ip  uint32
}

// vpcEntry is one VPC in a snapshot: its facts and its mappings.
type vpcEntry struct {
	owner uint64 // generation of the Txn that may still mutate it (see Txn)
	info  *VPC
	mappingTable
	// public holds the VPC's Elastic IPs, private → public. Few ENIs have
	// one, so it lives beside the slots rather than in each of them.
	public    map[uint32]uint32
	publicGen uint64 // the Txn generation that owns public (copy on write)
	// names are the instances' names, private → name, and byName the
	// other way (lower case): the resolver's, beside the slots as public.
	names    map[uint32]string
	byName   map[string]uint32
	namesGen uint64
	// groupSets are the distinct security group lists of the VPC's ENIs,
	// sorted; slots index them (0: none). Append-only, copy on write.
	groupSets [][]uint64
	groupsGen uint64
}

func emptyHostTable() hostTable {
	return hostTable{hosts: make([]Host, 1), slotByID: map[uint64]uint32{}}
}

// Revision returns the etcd revision the snapshot reflects.
func (s *Snapshot) Revision() int64 { return s.rev }

// Generation tells snapshots apart: each published one has a larger
// generation than the one before (revisions may repeat; generations never).
func (s *Snapshot) Generation() uint64 { return s.gen }

// Self returns the id of the host the tables belong to.
func (s *Snapshot) Self() uint64 { return s.self }

// Len returns the number of mappings.
func (s *Snapshot) Len() int { return s.n }

// Lookup finds the ENI with private IPv4 address ip in VPC vni and fills *m,
// which the caller owns and may reuse; on a miss *m is left as it was.
// Filling the caller's struct, rather than returning one, matters: copying an
// 88-byte result through the stack costs more than the lookup itself.
func (s *Snapshot) Lookup(vni uint32, ip netip.Addr, m *Mapping) bool {
	e, ok := s.byVNI.get(vni)
	if !ok || !ip.Is4() {
		return false
	}
	sl := e.find(ip4(ip))
	if sl == nil {
		return false
	}
	s.fill(m, e, vni, ip, sl)
	return true
}

func (s *Snapshot) fill(m *Mapping, e *vpcEntry, vni uint32, ip netip.Addr, sl *slot) {
	h := &s.hosts[sl.host]
	m.VNI = vni
	m.IP = ip
	m.HostID = h.ID
	m.ENI = sl.eni
	m.MAC = sl.mac
	m.Groups = nil
	if sl.groups != 0 {
		m.Groups = e.groupSets[sl.groups]
	}
	m.Underlay = h.Underlay
	m.Local = h.ID == s.self
}

// PublicIP returns the Elastic IP of the ENI with address ip in VPC vni.
func (s *Snapshot) PublicIP(vni uint32, ip netip.Addr) (netip.Addr, bool) {
	e, ok := s.byVNI.get(vni)
	if !ok || !ip.Is4() || len(e.public) == 0 {
		return netip.Addr{}, false
	}
	pub, ok := e.public[ip4(ip)]
	if !ok {
		return netip.Addr{}, false
	}
	return addr4(pub), true
}

// ByName returns the address of the instance named name (any case) in
// VPC vni.
func (s *Snapshot) ByName(vni uint32, name string) (netip.Addr, bool) {
	e, ok := s.byVNI.get(vni)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := e.byName[strings.ToLower(name)]
	return addr4(ip), ok
}

// Name returns the name of the instance with address ip in VPC vni.
func (s *Snapshot) Name(vni uint32, ip netip.Addr) (string, bool) {
	e, ok := s.byVNI.get(vni)
	if !ok || !ip.Is4() {
		return "", false
	}
	n, ok := e.names[ip4(ip)]
	return n, ok
}

// ByPublicIP returns the VPC and private address an Elastic IP stands for.
func (s *Snapshot) ByPublicIP(pub netip.Addr) (vni uint32, ip netip.Addr, ok bool) {
	if !pub.Is4() {
		return 0, netip.Addr{}, false
	}
	p, ok := s.byPublic.get(ip4(pub))
	if !ok {
		return 0, netip.Addr{}, false
	}
	return p.vni, addr4(p.ip), true
}

// VPC returns the facts of VPC vni.
func (s *Snapshot) VPC(vni uint32) (*VPC, bool) {
	if e, ok := s.byVNI.get(vni); ok {
		return e.info, true
	}
	return nil, false
}

// Peered reports whether VPC a has an active peering with VPC b, by a's facts.
// The ingress check asks Peered(destination VNI, SourceVPC): the destination
// VPC is always in this host's scope. A VPC is not peered with itself.
func (s *Snapshot) Peered(a, b uint32) bool {
	e, ok := s.byVNI.get(a)
	return ok && e.info.PeeredWith(b)
}

// Host returns the registered host or edge with underlay address addr: the
// ingress check that an outer source is one of ours.
func (s *Snapshot) Host(underlay netip.Addr) (Host, bool) {
	if !underlay.Is4() {
		return Host{}, false
	}
	if i, ok := s.byUnderlay.get(ip4(underlay)); ok {
		return s.hosts[i], true
	}
	return Host{}, false
}

// Sender is Host for the packet path: a pointer into the snapshot instead
// of a copy (do not modify what it points to).
func (s *Snapshot) Sender(underlay netip.Addr) (*Host, bool) {
	if !underlay.Is4() {
		return nil, false
	}
	if i, ok := s.byUnderlay.get(ip4(underlay)); ok {
		return &s.hosts[i], true
	}
	return nil, false
}

// HostByID returns the registered host or edge with id.
func (s *Snapshot) HostByID(id uint64) (Host, bool) {
	if i, ok := s.slotByID[id]; ok && s.hosts[i].Underlay.IsValid() {
		return s.hosts[i], true
	}
	return Host{}, false
}

// Edges returns the healthy edges ordered by id. The slice belongs to the
// snapshot: do not modify it.
func (s *Snapshot) Edges() []Host { return s.edges }

// EdgesFor returns the healthy edges that serve target t, ordered by id, for
// a flow-hash choice among them; none when no healthy edge serves it. The
// slice belongs to the snapshot: do not modify it. A short scan: an edge
// serves a handful of functions.
func (s *Snapshot) EdgesFor(t Target) []Host {
	var any []Host
	for i := range s.served {
		e := &s.served[i]
		if e.target == t {
			return e.edges
		}
		if e.target.Kind == t.Kind && e.target.ID == 0 {
			any = e.edges
		}
	}
	return any
}

// Mappings yields every mapping, VPC by VPC in VNI order.
func (s *Snapshot) Mappings() iter.Seq[Mapping] {
	return func(yield func(Mapping) bool) {
		for _, e := range s.vpcs {
			more := e.all(func(sl *slot) bool {
				var m Mapping
				s.fill(&m, e, e.info.VNI, addr4(sl.ip), sl)
				if pub, ok := e.public[sl.ip]; ok {
					m.Public = addr4(pub)
				}
				m.Name = e.names[sl.ip]
				return yield(m)
			})
			if !more {
				return
			}
		}
	}
}

// VPCs yields every VPC in VNI order.
func (s *Snapshot) VPCs() iter.Seq[*VPC] {
	return func(yield func(*VPC) bool) {
		for _, e := range s.vpcs {
			if !yield(e.info) {
				return
			}
		}
	}
}

// Hosts yields every registered host and edge, in no particular order.
func (s *Snapshot) Hosts() iter.Seq[Host] {
	return func(yield func(Host) bool) {
		for _, h := range s.hosts {
			if h.Underlay.IsValid() && !yield(h) {
				return
			}
		}
	}
}
