package mapping

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// promoter turns pending instances running once every host in scope has
// acknowledged their mapping. Candidates are guarded by Service.mu; the
// store writes happen on the promoter's own goroutine.
type promoter struct {
	st  *store.Store
	log *slog.Logger
	// candidates are pending instances with the hosts that have yet to
	// acknowledge them; nil means "recompute from the world".
	candidates map[string]*pending

	mu     sync.Mutex
	queue  []string
	notify chan struct{}
}

func newPromoter(st *store.Store, log *slog.Logger) *promoter {
	return &promoter{st: st, log: log, candidates: map[string]*pending{}, notify: make(chan struct{}, 1)}
}

// pending is an instance waiting for acknowledgements.
type pending struct {
	rev     int64 // the revision that wrote its mapping
	missing set   // hosts in scope that have not acknowledged rev
	created time.Time
}

func (p *promoter) consider(id string) { p.candidates[id] = nil }

func (p *promoter) enqueue(id string) {
	p.mu.Lock()
	p.queue = append(p.queue, id)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *promoter) run(ctx context.Context) {
	for {
		select {
		case <-p.notify:
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		ids := p.queue
		p.queue = nil
		p.mu.Unlock()
		for _, id := range ids {
			if _, err := p.st.SetInstanceState(ctx, id, pb.InstanceState_INSTANCE_STATE_RUNNING); err != nil && ctx.Err() == nil {
				p.log.Warn("mapping: could not mark instance running", "instance", id, "err", err)
			}
		}
	}
}

// checkPending recomputes, for every candidate, which hosts in scope have
// yet to acknowledge it, and promotes those none are missing. It runs when
// the world changed in ways that move scopes. Called with s.mu held.
func (s *Service) checkPending() {
	w := s.w
	for id := range s.promote.candidates {
		inst := w.insts[id]
		if inst == nil || inst.State != pb.InstanceState_INSTANCE_STATE_PENDING {
			delete(s.promote.candidates, id)
			continue
		}
		p := &pending{rev: w.created[id], created: inst.CreateTime.AsTime(), missing: set{}}
		for _, h := range s.laggards(w.hostsOf(inst.VpcId), p.rev) {
			p.missing.add(h)
		}
		s.promote.candidates[id] = p
		s.promoteIfReady(id, p)
	}
}

// acked notes that host applied rev: candidates stop waiting for it. This
// is the fast path: one acknowledgement costs one look per pending
// instance, however many hosts are in scope. Called with s.mu held.
func (s *Service) acked(host string, rev int64) {
	if a := s.w.acks[host]; rev >= a.Revision {
		s.w.acks[host] = store.Ack{Revision: rev, Seen: time.Now()}
	}
	for id, p := range s.promote.candidates {
		if p != nil && p.rev <= rev {
			delete(p.missing, host)
			s.promoteIfReady(id, p)
		}
	}
}

func (s *Service) promoteIfReady(id string, p *pending) {
	if len(p.missing) > 0 {
		return
	}
	delete(s.promote.candidates, id)
	s.latency.Observe(time.Since(p.created).Seconds())
	s.promote.enqueue(id)
}

// laggards lists the hosts that have not acknowledged revision rev. An edge
// marked unhealthy is not waited for: no host sends it traffic, and it gets
// what it missed when it reports in again.
func (s *Service) laggards(hosts set, rev int64) []string {
	var out []string
	for h := range hosts {
		if rec := s.w.hosts[h]; rec != nil && rec.Unhealthy {
			continue
		}
		if s.w.acks[h].Revision < rev {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// WaitInstance returns once the instance is running (every host in scope
// acknowledged its mapping) or terminated (every host that had it in scope
// acknowledged its removal). When ctx ends first it names the hosts still
// missing.
func (s *Service) WaitInstance(ctx context.Context, id string, want pb.InstanceState) (*pb.Instance, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, model.Unavailablef("the mapping service is still loading")
	}
	for {
		s.mu.Lock()
		done, why := s.reached(id, want)
		ch := s.changed
		s.mu.Unlock()
		if done {
			return s.store.GetInstance(context.WithoutCancel(ctx), id)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, model.Timeoutf("instance %s is not %s yet: %s", id, stateWord(want), why)
		}
	}
}

func stateWord(st pb.InstanceState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "INSTANCE_STATE_"))
}

// reached says whether instance id is in state want as the hosts see it,
// and if not, why. Called with s.mu held.
func (s *Service) reached(id string, want pb.InstanceState) (bool, string) {
	w := s.w
	inst := w.insts[id]
	switch want {
	case pb.InstanceState_INSTANCE_STATE_RUNNING:
		if inst == nil {
			if _, gone := s.gone[id]; gone {
				return false, "it was terminated"
			}
			return false, "this server has not seen it yet"
		}
		if inst.State == pb.InstanceState_INSTANCE_STATE_RUNNING {
			return true, ""
		}
		if late := s.laggards(w.hostsOf(inst.VpcId), w.created[id]); len(late) > 0 {
			return false, fmt.Sprintf("hosts %s have not acknowledged revision %d", strings.Join(late, ", "), w.created[id])
		}
		return false, "it is being marked running"
	default:
		if inst != nil {
			return false, "it has not been terminated"
		}
		g, ok := s.gone[id]
		if !ok {
			return true, ""
		}
		if late := s.laggards(g.hosts, g.rev); len(late) > 0 {
			return false, fmt.Sprintf("hosts %s have not acknowledged its removal at revision %d", strings.Join(late, ", "), g.rev)
		}
		return true, ""
	}
}

// ReachableWithin is how recently a host must have reported in (agents do
// every 5 s) to count as reachable.
const ReachableWithin = 15 * time.Second

// HostStatus fills each host's acknowledged revision, last-seen time and
// lag (how many revisions behind the newest change to its scope it is).
func (s *Service) HostStatus(hosts []*pb.Host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hosts {
		a := s.w.acks[h.Id]
		h.AckedRevision = a.Revision
		if !a.Seen.IsZero() && a.Seen.After(h.LastSeen.AsTime()) {
			h.LastSeen = timestamp(a.Seen)
		}
		h.Lag = max(0, s.w.relevant[h.Id]-a.Revision)
		h.Reachable = time.Since(h.LastSeen.AsTime()) < ReachableWithin
	}
}

// WaitRevision returns once every host in scope of each of vpcs (ids) has
// acknowledged store revision rev, and this server has applied it: what
// the hosts answer from their caches reflects the change that rev wrote.
// When ctx ends first it names the hosts still missing.
func (s *Service) WaitRevision(ctx context.Context, vpcs []string, rev int64) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return model.Unavailablef("the mapping service is still loading")
	}
	for {
		s.mu.Lock()
		var late []string
		applied := s.w.rev >= rev
		if applied {
			hosts := set{}
			for _, v := range vpcs {
				for h := range s.w.hostsOf(v) {
					hosts.add(h)
				}
			}
			late = s.laggards(hosts, rev)
		}
		ch := s.changed
		s.mu.Unlock()
		if applied && len(late) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if !applied {
				return model.Timeoutf("revision %d is not applied by the mapping service yet", rev)
			}
			return model.Timeoutf("hosts %s have not acknowledged revision %d", strings.Join(late, ", "), rev)
		}
	}
}
