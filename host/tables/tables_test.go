package tables

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

const self = 0x5e1f

type mapKey struct {
	vni uint32
	ip  netip.Addr
}

// model is the reference: plain maps holding what the cache must answer.
type model struct {
	rev   int64
	hosts map[uint64]Host
	vpcs  map[uint32]VPC
	maps  map[mapKey]Mapping // as upserted: HostID, ENI, MAC
}

func newModel() *model {
	return &model{hosts: map[uint64]Host{}, vpcs: map[uint32]VPC{}, maps: map[mapKey]Mapping{}}
}

func (m *model) clone() *model {
	return &model{rev: m.rev, hosts: maps.Clone(m.hosts), vpcs: maps.Clone(m.vpcs), maps: maps.Clone(m.maps)}
}

// want returns the lookup result the model expects for k.
func (m *model) want(k mapKey) (Mapping, bool) {
	r, ok := m.maps[k]
	if !ok {
		return Mapping{}, false
	}
	r.Underlay = m.hosts[r.HostID].Underlay
	r.Local = r.HostID == self
	if len(r.Groups) > 0 {
		r.Groups = slices.Sorted(slices.Values(r.Groups)) // the cache keeps them sorted
	}
	return r, true
}

// sameMapping compares two mappings field by field.
func sameMapping(a, b Mapping) bool {
	return slices.Equal(a.Groups, b.Groups) && a.VNI == b.VNI && a.IP == b.IP && a.HostID == b.HostID && a.ENI == b.ENI &&
		a.MAC == b.MAC && a.Public == b.Public && a.Underlay == b.Underlay && a.Local == b.Local
}

// op is one random update, applied to both the Txn and the model.
type op func(r *rand.Rand, tx *Txn, m *model) error

const (
	testVNIs  = 6
	testHosts = 12
	testIPs   = 3000 // enough per VPC to grow, shrink and shift shards
)

func testIP(i int) netip.Addr { return addr4(0x0a000000 + uint32(i)) }

func randomHost(r *rand.Rand) Host {
	id := 1 + r.Uint64N(testHosts)
	if r.IntN(4) == 0 {
		id = self
	}
	role := RoleHost
	if id%3 == 0 {
		role = RoleEdge
	}
	// The address depends on the id, so no two hosts share one, but a host may move.
	h := Host{ID: id, Underlay: addr4(0x7f000000 | uint32(r.IntN(3))<<16 | uint32(id&0xffff)), Role: role, Healthy: r.IntN(4) != 0}
	if role == RoleEdge {
		// Each edge serves the internet for all, or VPN for some of vgw 1–3.
		var fns []Function
		if r.IntN(2) == 0 {
			fns = append(fns, Function{Kind: TargetInternetGateway})
		}
		if r.IntN(2) == 0 {
			fns = append(fns, Function{Kind: TargetVPNGateway, Targets: []uint64{1 + r.Uint64N(3)}})
		}
		h.Functions = &fns
	}
	return h
}

// edgeTargets are the targets the random edges may serve, and one nobody does.
var edgeTargets = []Target{{Kind: TargetInternetGateway, ID: 9}, {Kind: TargetVPNGateway, ID: 1}, {Kind: TargetVPNGateway, ID: 2},
	{Kind: TargetVPNGateway, ID: 3}, {Kind: TargetEndpoint, ID: 1}}

func randomVPC(r *rand.Rand, vni uint32) VPC {
	v := VPC{VNI: vni, ID: 0x100 + uint64(vni), CIDR: netip.MustParsePrefix("10.0.0.0/16"), MainRouteTable: 1,
		RouteTables: []RouteTable{{ID: 1, Routes: []Route{{Dst: netip.MustParsePrefix("10.0.0.0/16"), Target: Target{Kind: TargetLocal}}}}}}
	for peer := uint32(1); peer <= testVNIs; peer++ {
		if peer != vni && r.IntN(2) == 0 {
			v.Peerings = append(v.Peerings, Peering{ID: uint64(vni)<<8 | uint64(peer), PeerVNI: peer})
		}
	}
	return v
}

var ops = []struct {
	name   string
	weight int
	op     op
}{
	{"upsert host", 3, func(r *rand.Rand, tx *Txn, m *model) error {
		h := randomHost(r)
		m.hosts[h.ID] = h
		return tx.UpsertHost(h)
	}},
	{"delete host", 1, func(r *rand.Rand, tx *Txn, m *model) error {
		id := 1 + r.Uint64N(testHosts)
		delete(m.hosts, id)
		tx.DeleteHost(id)
		return nil
	}},
	{"upsert vpc", 2, func(r *rand.Rand, tx *Txn, m *model) error {
		v := randomVPC(r, 1+r.Uint32N(testVNIs))
		m.vpcs[v.VNI] = v
		return tx.UpsertVPC(v)
	}},
	{"remove vpc", 1, func(r *rand.Rand, tx *Txn, m *model) error {
		vni := 1 + r.Uint32N(testVNIs)
		delete(m.vpcs, vni)
		for k := range m.maps {
			if k.vni == vni {
				delete(m.maps, k)
			}
		}
		tx.RemoveVPC(vni)
		return nil
	}},
	{"upsert mapping", 60, func(r *rand.Rand, tx *Txn, m *model) error {
		mp := Mapping{VNI: 1 + r.Uint32N(testVNIs), IP: testIP(r.IntN(testIPs)),
			HostID: 1 + r.Uint64N(testHosts+2), ENI: 1 + r.Uint64(), MAC: [6]byte{2, byte(r.Uint32())}}
		if r.IntN(10) == 0 {
			mp.HostID = self
		}
		// Security groups: none, or one to three of sg 1–4, in any order.
		for range r.IntN(4) {
			if g := 1 + r.Uint64N(4); !slices.Contains(mp.Groups, g) {
				mp.Groups = append(mp.Groups, g)
			}
		}
		err := tx.UpsertMapping(mp)
		if _, ok := m.vpcs[mp.VNI]; !ok {
			if !errors.Is(err, ErrUnknownVPC) {
				return fmt.Errorf("mapping in unknown VPC: got %v, want ErrUnknownVPC", err)
			}
			return nil
		}
		m.maps[mapKey{mp.VNI, mp.IP}] = mp
		return err
	}},
	{"delete mapping", 40, func(r *rand.Rand, tx *Txn, m *model) error {
		k := mapKey{1 + r.Uint32N(testVNIs), testIP(r.IntN(testIPs))}
		delete(m.maps, k)
		return tx.DeleteMapping(k.vni, k.ip)
	}},
}

func randomOp(r *rand.Rand) op {
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := r.IntN(total)
	for _, o := range ops {
		if n -= o.weight; n < 0 {
			return o.op
		}
	}
	panic("unreachable")
}

// TestRandomAgainstModel applies random transactions and checks every lookup
// and the full enumeration against the model after each one, and at the end
// checks that every snapshot kept along the way still answers as it did.
func TestRandomAgainstModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			tb := New(self)
			m := newModel()
			type kept struct {
				s *Snapshot
				m *model
			}
			var history []kept
			for step := range 400 {
				next := m.clone()
				next.rev = int64(step + 1)
				tx := tb.Begin(next.rev)
				if r.IntN(50) == 0 {
					tx.Reset()
					next = newModel()
					next.rev = int64(step + 1)
				}
				for range r.IntN(200) {
					if err := randomOp(r)(r, tx, next); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
				}
				if r.IntN(10) == 0 {
					tx.Abort()
					checkSnapshot(t, tb.Load(), m, false)
					continue
				}
				s := tx.Commit()
				m = next
				checkSnapshot(t, s, m, step%20 == 0)
				if step%40 == 0 {
					history = append(history, kept{s, m})
				}
			}
			for _, h := range history {
				checkSnapshot(t, h.s, h.m, true)
			}
		})
	}
}

// checkSnapshot compares s with m: enumeration always, point lookups of the
// whole key space when full is set.
func checkSnapshot(t *testing.T, s *Snapshot, m *model, full bool) {
	t.Helper()
	if s.Revision() != m.rev {
		t.Fatalf("revision %d, want %d", s.Revision(), m.rev)
	}
	if s.Len() != len(m.maps) {
		t.Fatalf("rev %d: Len %d, want %d", m.rev, s.Len(), len(m.maps))
	}
	seen := make(map[mapKey]bool, len(m.maps))
	for got := range s.Mappings() {
		k := mapKey{got.VNI, got.IP}
		want, ok := m.want(k)
		if !ok || seen[k] || !sameMapping(got, want) {
			t.Fatalf("rev %d: enumerated %+v; model has %+v (present %v, seen before %v)", m.rev, got, want, ok, seen[k])
		}
		seen[k] = true
	}
	if len(seen) != len(m.maps) {
		t.Fatalf("rev %d: enumerated %d mappings, want %d", m.rev, len(seen), len(m.maps))
	}
	checkHostsAndVPCs(t, s, m)
	if !full {
		return
	}
	for vni := uint32(0); vni <= testVNIs+1; vni++ {
		for i := range testIPs + 10 {
			k := mapKey{vni, testIP(i)}
			got, ok := lookup(s, k.vni, k.ip)
			want, wantOK := m.want(k)
			if ok != wantOK || !sameMapping(got, want) {
				t.Fatalf("rev %d: Mapping(%d, %v) = %+v, %v; want %+v, %v", m.rev, k.vni, k.ip, got, ok, want, wantOK)
			}
		}
	}
}

func checkHostsAndVPCs(t *testing.T, s *Snapshot, m *model) {
	t.Helper()
	hosts := map[uint64]Host{}
	for h := range s.Hosts() {
		hosts[h.ID] = h
		if got, ok := s.Host(h.Underlay); !ok || got != h {
			t.Fatalf("rev %d: Host(%v) = %+v, %v; want %+v", m.rev, h.Underlay, got, ok, h)
		}
	}
	if !maps.Equal(hosts, m.hosts) {
		t.Fatalf("rev %d: hosts %v, want %v", m.rev, hosts, m.hosts)
	}
	for id := uint64(0); id <= testHosts+2; id++ {
		got, ok := s.HostByID(id)
		want, wantOK := m.hosts[id]
		if ok != wantOK || got != want {
			t.Fatalf("rev %d: HostByID(%d) = %+v, %v; want %+v, %v", m.rev, id, got, ok, want, wantOK)
		}
	}
	var edges []uint64
	for _, h := range s.Edges() {
		if h.Role != RoleEdge || !h.Healthy || m.hosts[h.ID] != h {
			t.Fatalf("rev %d: Edges has %+v", m.rev, h)
		}
		edges = append(edges, h.ID)
	}
	for _, h := range m.hosts {
		if h.Role == RoleEdge && h.Healthy && !containsID(edges, h.ID) {
			t.Fatalf("rev %d: Edges misses %+v", m.rev, h)
		}
	}
	// EdgesFor: exactly the healthy edges whose functions name the target
	// (or its whole kind), in id order.
	for _, tg := range edgeTargets {
		var want []uint64
		for _, h := range m.hosts {
			if h.Healthy && h.Serves(tg) {
				want = append(want, h.ID)
			}
		}
		slices.Sort(want)
		var got []uint64
		for _, h := range s.EdgesFor(tg) {
			got = append(got, h.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("rev %d: EdgesFor(%v) = %v, want %v", m.rev, tg, got, want)
		}
	}
	var vnis []uint32
	for v := range s.VPCs() {
		vnis = append(vnis, v.VNI)
	}
	if want := slices.Sorted(maps.Keys(m.vpcs)); !slices.Equal(vnis, want) {
		t.Fatalf("rev %d: VPCs %v, want %v", m.rev, vnis, want)
	}
	for a := uint32(0); a <= testVNIs+1; a++ {
		v, ok := s.VPC(a)
		want, wantOK := m.vpcs[a]
		if ok != wantOK || ok && v.ID != want.ID {
			t.Fatalf("rev %d: VPC(%d) present %v, want %v", m.rev, a, ok, wantOK)
		}
		for b := uint32(0); b <= testVNIs+1; b++ {
			if got := s.Peered(a, b); got != modelPeered(want, b) {
				t.Fatalf("rev %d: Peered(%d, %d) = %v", m.rev, a, b, got)
			}
		}
	}
}

func containsID(ids []uint64, id uint64) bool {
	for i, x := range ids {
		if i > 0 && ids[i-1] >= x {
			return false // Edges must be ordered by id
		}
		if x == id {
			return true
		}
	}
	return false
}

func modelPeered(v VPC, peer uint32) bool {
	for _, p := range v.Peerings {
		if p.PeerVNI == peer {
			return true
		}
	}
	return false
}

// lookup is Lookup returning its result, for tests.
func lookup(s *Snapshot, vni uint32, ip netip.Addr) (m Mapping, ok bool) {
	ok = s.Lookup(vni, ip, &m)
	return m, ok
}

// newTestTables returns tables holding one VPC (VNI 7) with two hosts.
func newTestTables(t testing.TB) *Tables {
	t.Helper()
	tb := New(self)
	tx := tb.Begin(1)
	mustOK(t, tx.UpsertHost(Host{ID: self, Underlay: netip.MustParseAddr("127.0.1.1"), Role: RoleHost, Healthy: true}))
	mustOK(t, tx.UpsertHost(Host{ID: 2, Underlay: netip.MustParseAddr("127.0.1.2"), Role: RoleHost, Healthy: true}))
	mustOK(t, tx.UpsertHost(Host{ID: 3, Underlay: netip.MustParseAddr("127.0.1.3"), Role: RoleEdge, Healthy: true}))
	mustOK(t, tx.UpsertVPC(testVPC()))
	tx.Commit()
	return tb
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotIsImmutable(t *testing.T) {
	tb := newTestTables(t)
	ip := netip.MustParseAddr("10.7.0.5")
	tx := tb.Begin(2)
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: ip, HostID: 2, ENI: 0xe1}))
	old := tx.Commit()

	tx = tb.Begin(3)
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: ip, HostID: self, ENI: 0xe2}))
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: netip.MustParseAddr("10.7.0.6"), HostID: 2, ENI: 0xe3}))
	mustOK(t, tx.UpsertHost(Host{ID: 2, Underlay: netip.MustParseAddr("127.0.2.2"), Role: RoleHost}))
	tx.RemoveVPC(99)
	tx.Commit()

	tx = tb.Begin(4)
	tx.RemoveVPC(7)
	tx.Commit()

	m, ok := lookup(old, 7, ip)
	if !ok || m.ENI != 0xe1 || m.Local || m.Underlay != netip.MustParseAddr("127.0.1.2") {
		t.Errorf("old snapshot: Mapping = %+v, %v; want eni e1 on 127.0.1.2", m, ok)
	}
	if _, ok := lookup(old, 7, netip.MustParseAddr("10.7.0.6")); ok || old.Len() != 1 || old.Revision() != 2 {
		t.Errorf("old snapshot sees later changes: Len %d, rev %d", old.Len(), old.Revision())
	}
	if _, ok := tb.Load().VPC(7); ok || tb.Load().Len() != 0 {
		t.Errorf("RemoveVPC left the VPC or its mappings: Len %d", tb.Load().Len())
	}
}

func TestUpsertVPCKeepsMappingsRemoveVPCDropsThem(t *testing.T) {
	tb := newTestTables(t)
	tx := tb.Begin(2)
	v2 := testVPC()
	v2.VNI = 8
	v2.ID = 0x8
	mustOK(t, tx.UpsertVPC(v2))
	for i := range 1000 {
		mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: testIP(i), HostID: 2, ENI: uint64(i + 1)}))
		mustOK(t, tx.UpsertMapping(Mapping{VNI: 8, IP: testIP(i), HostID: 2, ENI: uint64(i + 1)}))
	}
	tx.Commit()

	tx = tb.Begin(3)
	v := testVPC()
	v.Peerings = nil
	mustOK(t, tx.UpsertVPC(v))
	s := tx.Commit()
	if s.Len() != 2000 || s.Peered(7, 9) {
		t.Fatalf("after UpsertVPC: Len %d (want 2000), Peered(7, 9) %v (want false)", s.Len(), s.Peered(7, 9))
	}

	tx = tb.Begin(4)
	tx.RemoveVPC(7)
	s = tx.Commit()
	if s.Len() != 1000 {
		t.Fatalf("after RemoveVPC: Len %d, want 1000", s.Len())
	}
	for m := range s.Mappings() {
		if m.VNI != 8 {
			t.Fatalf("mapping of removed VPC left: %+v", m)
		}
	}
	tx = tb.Begin(5)
	mustOK(t, tx.UpsertVPC(testVPC()))
	if s := tx.Commit(); s.Len() != 1000 {
		t.Fatalf("re-added VPC came back with mappings: Len %d", s.Len())
	}
}

func TestLocalAndHostlessMappings(t *testing.T) {
	tb := newTestTables(t)
	tx := tb.Begin(2)
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: netip.MustParseAddr("10.7.0.5"), HostID: self, ENI: 1, MAC: [6]byte{2, 0, 0, 0, 0, 5}}))
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: netip.MustParseAddr("10.7.0.6"), HostID: 42, ENI: 2}))
	s := tx.Commit()
	if m, _ := lookup(s, 7, netip.MustParseAddr("10.7.0.5")); !m.Local || m.Underlay != netip.MustParseAddr("127.0.1.1") || m.MAC[5] != 5 {
		t.Errorf("local mapping: %+v", m)
	}
	if m, ok := lookup(s, 7, netip.MustParseAddr("10.7.0.6")); !ok || m.Local || m.Underlay.IsValid() {
		t.Errorf("mapping on unregistered host: %+v, %v; want present with no underlay", m, ok)
	}
	tx = tb.Begin(3)
	mustOK(t, tx.UpsertHost(Host{ID: 42, Underlay: netip.MustParseAddr("127.0.1.42"), Role: RoleHost}))
	s = tx.Commit()
	if m, _ := lookup(s, 7, netip.MustParseAddr("10.7.0.6")); m.Underlay != netip.MustParseAddr("127.0.1.42") {
		t.Errorf("host registered later: mapping underlay %v", m.Underlay)
	}
	if _, ok := lookup(s, 7, netip.MustParseAddr("::ffff:10.7.0.6")); ok {
		t.Errorf("lookups take IPv4 addresses only, as parsed from packets")
	}
}

func TestInvalidUpdates(t *testing.T) {
	tb := newTestTables(t)
	ip := netip.MustParseAddr("10.7.0.5")
	tests := []struct {
		name string
		do   func(*Txn) error
		want error
	}{
		{"host id 0", func(tx *Txn) error {
			return tx.UpsertHost(Host{Underlay: ip, Role: RoleHost})
		}, ErrInvalid},
		{"a host with edge functions", func(tx *Txn) error {
			return tx.UpsertHost(Host{ID: 9, Underlay: ip, Role: RoleHost, Functions: &[]Function{{Kind: TargetInternetGateway}}})
		}, ErrInvalid},
		{"an edge function that is no edge's", func(tx *Txn) error {
			return tx.UpsertHost(Host{ID: 9, Underlay: ip, Role: RoleEdge, Functions: &[]Function{{Kind: TargetPeering}}})
		}, ErrInvalid},
		{"host IPv6", func(tx *Txn) error {
			return tx.UpsertHost(Host{ID: 9, Underlay: netip.MustParseAddr("::1"), Role: RoleHost})
		}, ErrInvalid},
		{"host without role", func(tx *Txn) error { return tx.UpsertHost(Host{ID: 9, Underlay: ip}) }, ErrInvalid},
		{"mapping VNI too big", func(tx *Txn) error {
			return tx.UpsertMapping(Mapping{VNI: 1 << 24, IP: ip, HostID: 2, ENI: 1})
		}, ErrInvalid},
		{"mapping IPv6", func(tx *Txn) error {
			return tx.UpsertMapping(Mapping{VNI: 7, IP: netip.MustParseAddr("fd00::1"), HostID: 2, ENI: 1})
		}, ErrInvalid},
		{"mapping without ENI", func(tx *Txn) error {
			return tx.UpsertMapping(Mapping{VNI: 7, IP: ip, HostID: 2})
		}, ErrInvalid},
		{"mapping unknown VPC", func(tx *Txn) error {
			return tx.UpsertMapping(Mapping{VNI: 8, IP: ip, HostID: 2, ENI: 1})
		}, ErrUnknownVPC},
		{"delete IPv6", func(tx *Txn) error { return tx.DeleteMapping(7, netip.IPv6Loopback()) }, ErrInvalid},
		{"subnet names missing route table", func(tx *Txn) error {
			v := testVPC()
			v.Subnets[0].RouteTable = 0xdead
			return tx.UpsertVPC(v)
		}, ErrInvalid},
		{"two routes to one prefix", func(tx *Txn) error {
			v := testVPC()
			v.RouteTables[0].Routes = append(v.RouteTables[0].Routes, Route{Dst: netip.MustParsePrefix("10.7.0.0/16"), Target: Target{Kind: TargetBlackhole}})
			return tx.UpsertVPC(v)
		}, ErrInvalid},
		{"route without target kind", func(tx *Txn) error {
			v := testVPC()
			v.RouteTables[0].Routes[0].Target = Target{}
			return tx.UpsertVPC(v)
		}, ErrInvalid},
		{"peer VNI too big", func(tx *Txn) error {
			v := testVPC()
			v.Peerings = []Peering{{ID: 1, PeerVNI: 1 << 24}}
			return tx.UpsertVPC(v)
		}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tb.Load()
			tx := tb.Begin(2)
			err := tt.do(tx)
			s := tx.Commit()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			t.Log(err)
			if s.Len() != before.Len() || len(s.Edges()) != len(before.Edges()) {
				t.Fatalf("a refused update changed the tables")
			}
		})
	}
}

func TestTxnUseAfterCommitPanics(t *testing.T) {
	tx := New(self).Begin(1)
	tx.Commit()
	tx.Abort() // allowed: the deferred form
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	tx.RemoveVPC(1)
}

// TestConcurrentReaders runs readers against a writer; run it with -race. Each
// commit rewrites one mapping with its own revision as the ENI, so a reader can
// tell a torn snapshot from a consistent one.
func TestConcurrentReaders(t *testing.T) {
	tb := newTestTables(t)
	probe := netip.MustParseAddr("10.7.255.254")
	const commits = 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := tb.Load()
				m, ok := lookup(s, 7, probe)
				if s.Revision() > 1 && (!ok || m.ENI != uint64(s.Revision())) {
					t.Errorf("rev %d: probe mapping %+v, %v", s.Revision(), m, ok)
					return
				}
				_, _ = s.Host(m.Underlay)
				if v, ok := s.VPC(7); ok {
					_ = v.Route(probe, netip.MustParseAddr("10.9.0.1"))
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(7, 7))
	for rev := int64(2); rev < commits; rev++ {
		tx := tb.Begin(rev)
		mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: probe, HostID: 2, ENI: uint64(rev)}))
		for range 20 {
			ip := testIP(r.IntN(5000))
			if r.IntN(3) == 0 {
				mustOK(t, tx.DeleteMapping(7, ip))
			} else {
				mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: ip, HostID: 1 + r.Uint64N(4), ENI: 1}))
			}
		}
		if rev%50 == 0 {
			mustOK(t, tx.UpsertVPC(testVPC()))
			mustOK(t, tx.UpsertHost(Host{ID: 2, Underlay: addr4(0x7f000100 + uint32(rev)), Role: RoleHost}))
		}
		tx.Commit()
	}
	close(stop)
	wg.Wait()
}

// TestShardGrowShrink drives one VPC through growth and back to empty, to
// exercise resizing and backward-shift deletion on every shard.
func TestShardGrowShrink(t *testing.T) {
	tb := newTestTables(t)
	const n = 50000
	r := rand.New(rand.NewPCG(1, 2))
	perm := r.Perm(n)
	tx := tb.Begin(2)
	for _, i := range perm {
		mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: testIP(i), HostID: 2, ENI: uint64(i + 1)}))
	}
	full := tx.Commit()
	if e, _ := full.byVNI.get(7); e.shardBits() != shardBitsFor(n) {
		t.Fatalf("%d mappings in %d shards, want %d", n, len(e.shards), 1<<shardBitsFor(n))
	}
	for i, p := range r.Perm(n) {
		tx := tb.Begin(int64(3 + i))
		mustOK(t, tx.DeleteMapping(7, testIP(p)))
		s := tx.Commit()
		if _, ok := lookup(s, 7, testIP(p)); ok || s.Len() != n-i-1 {
			t.Fatalf("after deleting %d mappings: %v still there or Len %d", i+1, testIP(p), s.Len())
		}
		if i%997 == 0 {
			for j := range n {
				m, ok := lookup(full, 7, testIP(j))
				if !ok || m.ENI != uint64(j+1) {
					t.Fatalf("full snapshot lost %v", testIP(j))
				}
			}
		}
	}
	e, _ := tb.Load().byVNI.get(7)
	if len(e.shards) > 2 {
		t.Fatalf("empty VPC kept %d shards", len(e.shards))
	}
	for i, sh := range e.shards {
		if sh != nil {
			t.Fatalf("shard %d not released when empty: %d entries", i, sh.n)
		}
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	tb := newTestTables(t)
	tx := tb.Begin(2)
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: netip.MustParseAddr("10.7.0.5"), HostID: 2, ENI: 1}))
	s := tx.Commit()
	v, _ := s.VPC(7)
	src, dst := netip.MustParseAddr("10.7.0.5"), netip.MustParseAddr("10.9.1.1")
	under := netip.MustParseAddr("127.0.1.2")
	var m Mapping
	tests := []struct {
		name string
		f    func()
	}{
		{"Load", func() { _ = tb.Load() }},
		{"Lookup", func() { s.Lookup(7, src, &m) }},
		{"Lookup miss", func() { s.Lookup(7, dst, &m) }},
		{"VPC", func() { _, _ = s.VPC(7) }},
		{"Route", func() { _ = v.Route(src, dst) }},
		{"RouteIn", func() { _ = v.RouteIn(1, dst) }},
		{"PeerVNI", func() { _, _ = v.PeerVNI(0x79) }},
		{"Peered", func() { _ = s.Peered(7, 9) }},
		{"Host", func() { _, _ = s.Host(under) }},
		{"HostByID", func() { _, _ = s.HostByID(2) }},
		{"Edges", func() { _ = s.Edges() }},
		{"EdgesFor", func() { _ = s.EdgesFor(Target{Kind: TargetInternetGateway, ID: 9}) }},
		{"Attached", func() { _ = v.Attached(Target{Kind: TargetInternetGateway, ID: 9}) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s: %v allocations, want 0", tt.name, n)
		}
	}
}

// Instance names: set with the mapping, found both ways (any case),
// renamed, cleared, gone with the mapping; an older snapshot keeps its own.
func TestNames(t *testing.T) {
	tb := New(1)
	tx := tb.Begin(1)
	mustOK(t, tx.UpsertVPC(VPC{VNI: 7, ID: 7, Name: "red", CIDR: netip.MustParsePrefix("10.0.0.0/16")}))
	ip := netip.MustParseAddr("10.0.1.4")
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: ip, HostID: 1, ENI: 1, Name: "Web"}))
	tx.Commit()
	first := tb.Load()
	if got, ok := first.ByName(7, "web"); !ok || got != ip {
		t.Fatalf("ByName web: %v %v", got, ok)
	}
	if n, ok := first.Name(7, ip); !ok || n != "Web" {
		t.Fatalf("Name: %q %v", n, ok)
	}
	if v, _ := first.VPC(7); v.Name != "red" {
		t.Fatalf("VPC name %q", v.Name)
	}
	for m := range first.Mappings() {
		if m.Name != "Web" {
			t.Fatalf("Mappings: name %q", m.Name)
		}
	}
	tx = tb.Begin(2)
	mustOK(t, tx.UpsertMapping(Mapping{VNI: 7, IP: ip, HostID: 1, ENI: 1, Name: "api"}))
	tx.Commit()
	if _, ok := tb.Load().ByName(7, "web"); ok {
		t.Fatal("the old name still resolves after a rename")
	}
	if got, ok := tb.Load().ByName(7, "API"); !ok || got != ip {
		t.Fatalf("renamed: %v %v", got, ok)
	}
	if _, ok := first.ByName(7, "web"); !ok {
		t.Fatal("a rename changed an older snapshot")
	}
	tx = tb.Begin(3)
	mustOK(t, tx.DeleteMapping(7, ip))
	tx.Commit()
	if _, ok := tb.Load().ByName(7, "api"); ok {
		t.Fatal("a deleted mapping's name still resolves")
	}
	if _, ok := tb.Load().Name(7, ip); ok {
		t.Fatal("a deleted mapping still has a name")
	}
}
