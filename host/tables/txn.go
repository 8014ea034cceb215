package tables

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Txn builds the next snapshot from the current one. Objects it copies or creates
// are stamped with its generation and mutated in place until Commit; objects of
// earlier generations belong to published snapshots and are copied before any
// change. So a batch of deltas copies each touched shard once, and a full
// snapshot is built with no copying at all.
//
// Updates take effect in the order they are made. An update that returns an
// error is not applied; the caller decides whether to Commit the rest or Abort.
// A Txn must not be used after Commit or Abort.
type Txn struct {
	t    *Tables
	gen  uint64
	next Snapshot // the snapshot being built, sharing unchanged parts with the current one

	hostsOwned bool                 // next.hostTable has been copied for this Txn
	vpcs       map[uint32]*vpcEntry // the VPCs of next, once the first VPC or mapping changes
	done       bool
}

// Begin starts the transaction that publishes the snapshot of etcd revision rev.
// It waits for any other open Txn: there is one writer at a time. Commit or
// Abort it; `defer tx.Abort()` is safe after Commit.
func (t *Tables) Begin(rev int64) *Txn {
	t.mu.Lock()
	t.gen++
	tx := &Txn{t: t, gen: t.gen, next: *t.cur.Load()}
	tx.next.rev = rev
	return tx
}

// Commit publishes the new snapshot and returns it.
func (tx *Txn) Commit() *Snapshot {
	tx.check()
	s := new(Snapshot)
	*s = tx.next
	if tx.hostsOwned {
		s.indexHosts()
	}
	if tx.vpcs != nil {
		for _, e := range tx.vpcs {
			e.flush(tx.gen)
		}
		s.indexVPCs(tx.vpcs)
	}
	s.gen = tx.gen
	if tx.t.publish != nil {
		tx.t.publish(s) // before the store: older decisions stop replaying first
	}
	tx.t.cur.Store(s)
	tx.close()
	return s
}

// Abort drops the transaction; the current snapshot stays. It does nothing
// after Commit.
func (tx *Txn) Abort() {
	if !tx.done {
		tx.close()
	}
}

func (tx *Txn) close() {
	tx.done = true
	tx.next = Snapshot{}
	tx.vpcs = nil
	tx.t.mu.Unlock()
}

func (tx *Txn) check() {
	if tx.done {
		panic("tables: Txn used after Commit or Abort")
	}
}

// Reset empties the cache, for a full snapshot (a first subscribe, or a resync
// after etcd compacted past our revision): what follows in the Txn is all there is.
func (tx *Txn) Reset() {
	tx.check()
	tx.next.hostTable = emptyHostTable()
	tx.hostsOwned = true
	tx.vpcs = map[uint32]*vpcEntry{}
}

// UpsertHost registers a host or edge, or updates its address, role or health.
func (tx *Txn) UpsertHost(h Host) error {
	tx.check()
	h.Underlay = h.Underlay.Unmap()
	if err := checkHost(h); err != nil {
		return err
	}
	i := tx.hostSlot(h.ID)
	tx.ownHosts()
	tx.next.hosts[i] = h
	return nil
}

// DeleteHost unregisters a host. Mappings that still name it stay, and resolve
// to no underlay address until it is registered again.
func (tx *Txn) DeleteHost(id uint64) {
	tx.check()
	if i, ok := tx.next.slotByID[id]; ok {
		tx.ownHosts()
		tx.next.hosts[i] = Host{ID: id}
	}
}

// hostSlot returns the slot of host id, reserving one if the id is new. Slots
// are never reused before a Reset, so a mapping's slot index stays valid while
// the host comes and goes.
func (tx *Txn) hostSlot(id uint64) uint32 {
	if i, ok := tx.next.slotByID[id]; ok {
		return i
	}
	tx.ownHosts()
	i := uint32(len(tx.next.hosts))
	tx.next.hosts = append(tx.next.hosts, Host{ID: id})
	tx.next.slotByID[id] = i
	return i
}

func (tx *Txn) ownHosts() {
	if !tx.hostsOwned {
		tx.next.hosts = slices.Clone(tx.next.hosts)
		tx.next.slotByID = maps.Clone(tx.next.slotByID)
		tx.hostsOwned = true
	}
}

// UpsertVPC sets the facts of a VPC (CIDR, subnets, route tables, active
// peerings), adding it to the scope if it is new. Its mappings are kept.
func (tx *Txn) UpsertVPC(v VPC) error {
	tx.check()
	info, err := compileVPC(v)
	if err != nil {
		return err
	}
	if e := tx.writableVPC(v.VNI); e != nil {
		e.info = info
	} else {
		tx.vpcs[v.VNI] = &vpcEntry{owner: tx.gen, info: info, mappingTable: newMappingTable()}
	}
	return nil
}

// RemoveVPC drops a VPC and all its mappings from the scope.
func (tx *Txn) RemoveVPC(vni uint32) {
	tx.check()
	delete(tx.vpcMap(), vni)
}

// UpsertMapping adds or replaces the mapping of (m.VNI, m.IP). The VPC must be
// in the scope. A host id not yet registered is accepted: lookups report no
// underlay address for it until UpsertHost.
func (tx *Txn) UpsertMapping(m Mapping) error {
	tx.check()
	m.IP, m.Public = m.IP.Unmap(), m.Public.Unmap()
	if err := checkMapping(m); err != nil {
		return err
	}
	e := tx.writableVPC(m.VNI)
	if e == nil {
		return fmt.Errorf("%w: mapping %v in VNI %d: the VPC is not in the cache", ErrUnknownVPC, m.IP, m.VNI)
	}
	gs, err := tx.groupSet(e, m.Groups)
	if err != nil {
		return err
	}
	e.upsert(slot{ip: ip4(m.IP), host: tx.hostSlot(m.HostID), eni: m.ENI, mac: m.MAC, groups: gs})
	pub, had := e.public[ip4(m.IP)]
	switch {
	case m.Public.IsValid() && (!had || pub != ip4(m.Public)):
		tx.writablePublic(e)[ip4(m.IP)] = ip4(m.Public)
	case !m.Public.IsValid() && had:
		delete(tx.writablePublic(e), ip4(m.IP))
	}
	if old := e.names[ip4(m.IP)]; old != m.Name {
		tx.setName(e, ip4(m.IP), old, m.Name)
	}
	return nil
}

// setName replaces the name of the instance at ip (old, "" for none) with
// name ("" to clear it), copying e's name maps for this Txn if needed.
func (tx *Txn) setName(e *vpcEntry, ip uint32, old, name string) {
	if e.namesGen != tx.gen {
		e.names, e.byName = maps.Clone(e.names), maps.Clone(e.byName)
		if e.names == nil {
			e.names, e.byName = map[uint32]string{}, map[string]uint32{}
		}
		e.namesGen = tx.gen
	}
	if old != "" && e.byName[strings.ToLower(old)] == ip {
		delete(e.byName, strings.ToLower(old))
	}
	delete(e.names, ip)
	if name != "" {
		e.names[ip], e.byName[strings.ToLower(name)] = name, ip
	}
}

// maxGroupSets bounds the distinct group lists of one VPC's ENIs.
const maxGroupSets = 1<<16 - 1

// groupSet returns the index of the group list gs in e, adding it (copied
// for this Txn if needed) when it is new.
func (tx *Txn) groupSet(e *vpcEntry, gs []uint64) (uint16, error) {
	if len(gs) == 0 {
		return 0, nil
	}
	gs = slices.Clone(gs)
	slices.Sort(gs)
	for i, s := range e.groupSets {
		if i > 0 && slices.Equal(s, gs) {
			return uint16(i), nil
		}
	}
	if len(e.groupSets) >= maxGroupSets {
		return 0, invalidf("VNI %d: more than %d distinct security group lists", e.info.VNI, maxGroupSets-1)
	}
	if e.groupsGen != tx.gen {
		e.groupSets = slices.Clip(e.groupSets) // the next append copies
		e.groupsGen = tx.gen
	}
	if len(e.groupSets) == 0 {
		e.groupSets = append(e.groupSets, nil)
	}
	e.groupSets = append(e.groupSets, gs)
	return uint16(len(e.groupSets) - 1), nil
}

// writablePublic returns e's Elastic IP map, copied for this Txn if needed.
func (tx *Txn) writablePublic(e *vpcEntry) map[uint32]uint32 {
	if e.publicGen != tx.gen {
		e.public = maps.Clone(e.public)
		if e.public == nil {
			e.public = map[uint32]uint32{}
		}
		e.publicGen = tx.gen
	}
	return e.public
}

// DeleteMapping removes the mapping of (vni, ip); a missing one is no error,
// so that a replayed delta is harmless.
func (tx *Txn) DeleteMapping(vni uint32, ip netip.Addr) error {
	tx.check()
	ip = ip.Unmap()
	if !ip.Is4() {
		return invalidf("delete mapping %v in VNI %d: not an IPv4 address", ip, vni)
	}
	e, ok := tx.vpcMap()[vni]
	if !ok {
		return nil
	}
	e.flush(tx.gen) // pending upserts exist only on entries this Txn owns
	if e.find(ip4(ip)) != nil {
		e = tx.writableVPC(vni)
		e.delete(tx.gen, ip4(ip))
		if _, had := e.public[ip4(ip)]; had {
			delete(tx.writablePublic(e), ip4(ip))
		}
		if old, had := e.names[ip4(ip)]; had {
			tx.setName(e, ip4(ip), old, "")
		}
	}
	return nil
}

// vpcMap returns the Txn's mutable VNI → VPC map, made from the current
// snapshot on first use.
func (tx *Txn) vpcMap() map[uint32]*vpcEntry {
	if tx.vpcs == nil {
		tx.vpcs = make(map[uint32]*vpcEntry, len(tx.next.vpcs))
		for _, e := range tx.next.vpcs {
			tx.vpcs[e.info.VNI] = e
		}
	}
	return tx.vpcs
}

// writableVPC returns VPC vni, copied for this Txn if needed, or nil.
func (tx *Txn) writableVPC(vni uint32) *vpcEntry {
	vpcs := tx.vpcMap()
	e, ok := vpcs[vni]
	if !ok {
		return nil
	}
	if e.owner != tx.gen {
		c := *e
		c.owner = tx.gen
		c.shards = slices.Clone(e.shards)
		e = &c
		vpcs[vni] = e
	}
	return e
}

// indexHosts rebuilds the host lookups after the host slots changed.
func (s *Snapshot) indexHosts() {
	n := 0
	for _, h := range s.hosts {
		if h.Underlay.IsValid() {
			n++
		}
	}
	s.byUnderlay = newIndex[uint32](n)
	s.edges = nil
	for i, h := range s.hosts {
		if !h.Underlay.IsValid() {
			continue
		}
		s.byUnderlay.set(ip4(h.Underlay), uint32(i))
		if h.Role == RoleEdge && h.Healthy {
			s.edges = append(s.edges, h)
		}
	}
	slices.SortFunc(s.edges, func(a, b Host) int { return cmp.Compare(a.ID, b.ID) })
	s.indexServed()
}

// indexServed lists, for every target some healthy edge names (and every
// kind some edge serves for all its targets), the edges that serve it:
// those naming it and those serving its whole kind.
func (s *Snapshot) indexServed() {
	s.served = nil
	var targets []Target
	for _, h := range s.edges {
		for _, f := range h.FunctionList() {
			if len(f.Targets) == 0 && len(f.Standby) == 0 {
				targets = append(targets, Target{Kind: f.Kind})
			}
			for _, id := range f.Targets {
				targets = append(targets, Target{Kind: f.Kind, ID: id})
			}
		}
	}
	slices.SortFunc(targets, func(a, b Target) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	for _, t := range slices.Compact(targets) {
		set := edgeSet{target: t}
		for _, h := range s.edges {
			if h.Serves(t) {
				set.edges = append(set.edges, h)
			}
		}
		s.served = append(s.served, set)
	}
}

// indexVPCs rebuilds the VPC lookups after VPCs or their mappings changed.
func (s *Snapshot) indexVPCs(vpcs map[uint32]*vpcEntry) {
	s.vpcs = slices.SortedFunc(maps.Values(vpcs), func(a, b *vpcEntry) int {
		return cmp.Compare(a.info.VNI, b.info.VNI)
	})
	s.byVNI = newIndex[*vpcEntry](len(s.vpcs))
	s.n = 0
	public := 0
	for _, e := range s.vpcs {
		s.byVNI.set(e.info.VNI, e)
		s.n += e.n
		public += len(e.public)
	}
	s.byPublic = newIndex[publicEntry](public)
	for _, e := range s.vpcs {
		for priv, pub := range e.public {
			s.byPublic.set(pub, publicEntry{vni: e.info.VNI, ip: priv})
		}
	}
}
