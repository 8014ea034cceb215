package mapping

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// Service is the Mapping Service of one openvpc server. Several servers may
// run on one store; each follows it with its own single watch and serves the
// hosts connected to it.
type Service struct {
	store *store.Store
	log   *slog.Logger
	// healthWindow is Config.HealthWindow, defaulted.
	healthWindow time.Duration
	// dnsUpstream is Config.DNSUpstream, told every host that registers.
	dnsUpstream string

	mu    sync.Mutex
	w     *world
	boxes map[string]*mailbox
	// inScope indexes mailboxes by the VPCs in their scope, so a change
	// visits only the mailboxes it concerns.
	inScope map[string]map[*mailbox]struct{}
	changed chan struct{} // closed and replaced after every applied batch
	ready   chan struct{} // closed once the world is first loaded
	gone    map[string]goneRec

	acks    *ackWriter
	promote *promoter
	events  *eventLimiter
	latency histogram
}

// goneRec remembers a terminated instance until every host that had it in
// scope has acknowledged its removal.
type goneRec struct {
	rev   int64
	hosts set
	at    time.Time
}

// Config is what a Mapping Service needs.
type Config struct {
	// Store is where the state it serves lives.
	Store *store.Store
	// Logger receives its logs (default slog.Default()).
	Logger *slog.Logger
	// HealthWindow is how long an edge may go without reporting in before
	// it is marked unhealthy (default ReachableWithin).
	HealthWindow time.Duration
	// DNSUpstream is the resolver (ip:port) hosts forward the names their
	// VPC resolvers do not answer to; empty: none.
	DNSUpstream string
}

// New applies cfg's defaults, validates it and returns a Service; Run
// makes it follow the store.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("mapping: no store to serve from")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HealthWindow <= 0 {
		cfg.HealthWindow = ReachableWithin
	}
	st, log := cfg.Store, cfg.Logger
	s := &Service{
		store: st, log: log, healthWindow: cfg.HealthWindow, dnsUpstream: cfg.DNSUpstream,
		w: newWorld(), boxes: map[string]*mailbox{}, inScope: map[string]map[*mailbox]struct{}{},
		changed: make(chan struct{}), ready: make(chan struct{}), gone: map[string]goneRec{},
		latency: newHistogram(),
	}
	s.acks = newAckWriter(st, log)
	s.promote = newPromoter(st, log)
	s.events = newEventLimiter(st, log)
	return s, nil
}

// Run follows the store until ctx ends. After a watch failure (for
// example when etcd compacted history the watch still needed) it reloads
// everything and sends every connected host a fresh snapshot. Its helpers
// (ack writer, promoter, edge health) run beside it; Run returns once
// they and the store watch have stopped, with ctx's error.
func (s *Service) Run(ctx context.Context) error {
	var helpers sync.WaitGroup
	for _, run := range []func(context.Context){s.acks.run, s.promote.run, s.watchHealth, s.events.run} {
		helpers.Go(func() { run(ctx) })
	}
	defer helpers.Wait()
	for ctx.Err() == nil {
		err := s.follow(ctx)
		if ctx.Err() != nil {
			break
		}
		s.log.Warn("mapping: store watch failed; reloading", "err", err)
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

func (s *Service) follow(ctx context.Context) error {
	snap, err := s.store.Load(ctx)
	if err != nil {
		return err
	}
	s.reload(snap)
	errc := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	batches := s.store.Watch(wctx, snap.Revision, errc)
	// The watch's goroutine ends once canceled and its channel drained:
	// follow returns only after it has.
	defer func() {
		cancel()
		for range batches {
		}
	}()
	janitor := time.NewTicker(30 * time.Second)
	defer janitor.Stop()
	for {
		select {
		case b, ok := <-batches:
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
					return errors.New("mapping: watch closed")
				}
			}
			if err := s.applyBatch(b); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-janitor.C:
			s.expireGone()
		}
	}
}

// reload replaces the world with a full load; every mailbox is reset to
// a snapshot, since deltas against the old world may be incomplete.
func (s *Service) reload(b store.Batch) {
	w := newWorld()
	d := newDelta(b.Revision)
	// Keys load in key order, which puts instances before the VPCs they
	// name; fold parents in first.
	order := map[string]int{store.RecVPC: 0, store.RecSubnet: 1, store.RecRouteTable: 1, store.RecPeering: 1, store.RecHost: 1, store.RecAck: 1, store.RecInstance: 2}
	slices.SortStableFunc(b.Records, func(x, y store.Record) int { return order[x.Kind] - order[y.Kind] })
	for _, r := range b.Records {
		if err := w.apply(r, d); err != nil {
			s.log.Error("mapping: skipping record", "err", err)
		}
	}
	w.rev = b.Revision
	s.mu.Lock()
	s.w = w
	for _, m := range s.boxes {
		m.mu.Lock()
		m.dropQueue()
		m.snapshot = true
		m.wake()
		m.mu.Unlock()
	}
	for _, i := range w.insts {
		if i.State == pb.InstanceState_INSTANCE_STATE_PENDING {
			s.promote.consider(i.Id)
		}
	}
	s.broadcastLocked()
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.mu.Unlock()
}

// applyBatch folds a store batch into the world and fans the resulting
// deltas out to the mailboxes whose scope they touch.
func (s *Service) applyBatch(b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.w
	d := newDelta(b.Revision)
	for _, r := range b.Records {
		if err := w.apply(r, d); err != nil {
			return err
		}
	}
	w.rev = b.Revision
	for h := range d.hostsChanged {
		if _, registered := w.hosts[h]; !registered {
			s.disconnectLocked(h) // removed: its stream must not outlive it
		}
	}
	for _, i := range d.gone {
		hosts := w.hostsOf(i.VpcId)
		hosts.add(i.HostId)
		s.gone[i.Id] = goneRec{rev: b.Revision, hosts: hosts, at: time.Now()}
	}
	w.markRelevant(d)
	for m := range s.affected(d) {
		if m.awaitingSnapshot() {
			continue // its snapshot, built later, will include d
		}
		if out := s.deltaFor(m, d); len(out) > 0 {
			m.push(&pb.SubscribeResponse{Revision: d.rev, Changes: out})
		}
	}
	for _, i := range append(d.born, d.states...) {
		if i.State == pb.InstanceState_INSTANCE_STATE_PENDING {
			s.promote.consider(i.Id)
		}
	}
	if len(d.born) > 0 || len(d.scopeDirty) > 0 || len(d.facts) > 0 || d.health {
		s.checkPending()
	} else if d.acked {
		for host, a := range w.acks {
			if _, waiting := d.ackedHosts[host]; waiting {
				s.acked(host, a.Revision)
			}
		}
	}
	s.broadcastLocked()
	return nil
}

// Disconnect ends host's subscription stream on this server, if it has
// one: the host was removed. (Its certificate is revoked, so it cannot
// open another.)
func (s *Service) Disconnect(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnectLocked(host)
}

func (s *Service) disconnectLocked(host string) {
	m := s.boxes[host]
	if m == nil {
		return
	}
	m.mu.Lock()
	if m.stream != nil {
		m.stream()
	}
	m.mu.Unlock()
}

// affected lists the mailboxes d may concern: those of hosts whose scope
// may have moved, those with a changed VPC in scope, and those holding (or
// due) a changed host record.
func (s *Service) affected(d *delta) map[*mailbox]struct{} {
	out := map[*mailbox]struct{}{}
	for h := range d.scopeDirty {
		if m := s.boxes[h]; m != nil {
			out[m] = struct{}{}
		}
	}
	for _, vpcs := range []map[string]struct{}{d.facts, keysOf(d.mappings), keysOf(d.presence)} {
		for v := range vpcs {
			for m := range s.inScope[v] {
				out[m] = struct{}{}
			}
		}
	}
	// A changed edge record concerns everyone; a host's record concerns
	// the mailboxes whose scope holds a VPC with its instances, since a
	// mailbox holds or references a host only through such a VPC.
	if len(d.edges) > 0 {
		for _, m := range s.boxes {
			out[m] = struct{}{}
		}
		return out
	}
	for h := range d.hostsChanged {
		for v := range s.w.hostVPC[h] {
			for m := range s.inScope[v] {
				out[m] = struct{}{}
			}
		}
		if m := s.boxes[h]; m != nil {
			out[m] = struct{}{}
		}
	}
	return out
}

func keysOf[V any](m map[string]V) map[string]struct{} {
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// enter and leave keep the inScope index. Called with s.mu held.
func (s *Service) enter(m *mailbox, vpc string) {
	if s.inScope[vpc] == nil {
		s.inScope[vpc] = map[*mailbox]struct{}{}
	}
	s.inScope[vpc][m] = struct{}{}
}

func (s *Service) leave(m *mailbox, vpc string) {
	delete(s.inScope[vpc], m)
	if len(s.inScope[vpc]) == 0 {
		delete(s.inScope, vpc)
	}
}

// deltaFor is what mailbox m needs of delta d: the host records it newly
// needs, scope removals, scope additions (facts and all mappings), the
// changed facts and mappings of VPCs it already had, and last the host
// records it no longer needs. Records come before the mappings that name
// them and go after the last such mapping.
func (s *Service) deltaFor(m *mailbox, d *delta) []*pb.Change {
	w := s.w
	var vpcChanges []*pb.Change
	added, removed := set{}, set{}
	if _, dirty := d.scopeDirty[m.host]; dirty {
		now := w.scope(m.host)
		for v, vni := range m.scope {
			if _, keep := now[v]; !keep {
				removed.add(v)
				vpcChanges = append(vpcChanges, &pb.Change{Kind: &pb.Change_RemoveVpc{RemoveVpc: vni}})
				delete(m.scope, v)
				s.leave(m, v)
			}
		}
		for v := range now {
			if _, had := m.scope[v]; !had {
				added.add(v)
				m.scope[v] = w.vpcs[v].Vni
				s.enter(m, v)
				vpcChanges = w.fullVPC(m.host, v, vpcChanges)
			}
		}
	}
	for v := range d.facts {
		if _, in := m.scope[v]; in {
			if _, new := added[v]; !new {
				if _, exists := w.vpcs[v]; exists {
					vpcChanges = append(vpcChanges, &pb.Change{Kind: &pb.Change_UpsertVpc{UpsertVpc: w.facts(v)}})
				}
			}
		}
	}
	for v, changes := range d.mappings {
		if _, in := m.scope[v]; in {
			if _, new := added[v]; !new {
				for _, c := range changes {
					vpcChanges = append(vpcChanges, w.forHost(m.host, c))
				}
			}
		}
	}
	touched := s.countRefs(m, d, added, removed)
	var before, after []*pb.Change
	for h := range touched {
		want := m.refs[h] > 0 || w.isEdge(h)
		_, has := m.held[h]
		rec, registered := w.hosts[h]
		_, changed := d.hostsChanged[h]
		switch {
		case want && registered && (!has || changed):
			before = append(before, &pb.Change{Kind: &pb.Change_UpsertHost{UpsertHost: w.hostRecord(rec)}})
			m.held.add(h)
		case has && (!want || !registered):
			after = append(after, &pb.Change{Kind: &pb.Change_DeleteHost{DeleteHost: h}})
			delete(m.held, h)
		}
	}
	if len(vpcChanges) == 0 && len(before) == 0 && len(after) == 0 {
		return nil
	}
	return append(append(before, vpcChanges...), after...)
}

// countRefs updates m.refs for d and returns the hosts whose record m may
// need to gain or lose. Called with s.mu held.
func (s *Service) countRefs(m *mailbox, d *delta, added, removed set) set {
	w := s.w
	touched := set{}
	ref := func(h string, by int) {
		m.refs[h] += by
		if m.refs[h] <= 0 {
			delete(m.refs, h)
		}
		touched.add(h)
	}
	for v, hosts := range d.presence {
		_, in := m.scope[v]
		if _, new := added[v]; !in || new {
			continue
		}
		for h, by := range hosts {
			if by != 0 {
				ref(h, by)
			}
		}
	}
	for v := range removed {
		// What m counted for v is the presence before this delta.
		for h := range w.vpcHost[v] {
			if d.presence[v][h] <= 0 {
				ref(h, -1)
			}
		}
		for h, by := range d.presence[v] {
			if by < 0 {
				ref(h, -1)
			}
		}
	}
	for v := range added {
		for h := range w.vpcHost[v] {
			ref(h, +1)
		}
	}
	for h := range d.hostsChanged {
		touched.add(h)
	}
	return touched
}

// snapshotFor builds m's scope afresh and returns it as snapshot messages.
func (s *Service) snapshotFor(m *mailbox) ([]*pb.SubscribeResponse, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.w
	for v := range m.scope {
		s.leave(m, v)
	}
	clear(m.scope)
	clear(m.refs)
	clear(m.held)
	var vpcChanges []*pb.Change
	for v := range w.scope(m.host) {
		m.scope[v] = w.vpcs[v].Vni
		s.enter(m, v)
		vpcChanges = w.fullVPC(m.host, v, vpcChanges)
		for h := range w.vpcHost[v] {
			m.refs[h]++
		}
	}
	var changes []*pb.Change
	for id, h := range w.hosts {
		if m.refs[id] > 0 || h.Role == pb.HostRole_HOST_ROLE_EDGE {
			changes = append(changes, &pb.Change{Kind: &pb.Change_UpsertHost{UpsertHost: w.hostRecord(h)}})
			m.held.add(id)
		}
	}
	changes = append(changes, vpcChanges...)
	var msgs []*pb.SubscribeResponse
	for first := true; first || len(changes) > 0; first = false {
		n := min(len(changes), snapshotChunk)
		msgs = append(msgs, &pb.SubscribeResponse{Revision: w.rev, Snapshot: first, Changes: changes[:n], More: n < len(changes)})
		changes = changes[n:]
	}
	// Installing under s.mu orders the snapshot before any later delta.
	m.replace(msgs)
	return msgs, w.rev
}

func (s *Service) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Service) expireGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, g := range s.gone {
		if time.Since(g.at) > 10*time.Minute {
			delete(s.gone, id)
		}
	}
	for host, m := range s.boxes {
		m.mu.Lock()
		stale := !m.detached.IsZero() && time.Since(m.detached) > detachedTTL
		m.mu.Unlock()
		if stale {
			for v := range m.scope {
				s.leave(m, v)
			}
			delete(s.boxes, host)
		}
	}
}

// Ready is closed once the service has loaded the store.
func (s *Service) Ready() <-chan struct{} { return s.ready }
