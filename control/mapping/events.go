package mapping

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// eventWindow is the rate limit of security events: at most one stored per
// (host, reason, source) per window; repeats are folded into the next
// stored event's count.
const eventWindow = 10 * time.Second

type eventKey struct{ host, reason, source string }

type eventLimiter struct {
	st   *store.Store
	log  *slog.Logger
	mu   sync.Mutex
	last map[eventKey]*eventSlot
	// seen counts every event reported, stored or folded, per host and reason.
	seen *prometheus.CounterVec
}

type eventSlot struct {
	at         time.Time
	suppressed int64
}

func newEventLimiter(st *store.Store, log *slog.Logger) *eventLimiter {
	return &eventLimiter{st: st, log: log, last: map[eventKey]*eventSlot{}, seen: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openvpc_security_events_total",
		Help: "Security events reported to the Mapping Service, per host and reason (including those folded by rate limiting).",
	}, []string{"host", "reason"})}
}

// admit decides whether ev is stored now; if so its count includes the
// repeats suppressed since the last stored one.
func (l *eventLimiter) admit(ev *pb.SecurityEvent, now time.Time) bool {
	source := ev.InnerSrc
	if source == "" {
		source = ev.OuterSrc
	}
	k := eventKey{ev.HostId, ev.Reason, source}
	l.mu.Lock()
	defer l.mu.Unlock()
	slot := l.last[k]
	if slot != nil && now.Sub(slot.at) < eventWindow {
		slot.suppressed += max(1, ev.Count)
		return false
	}
	if slot == nil {
		if len(l.last) > 100000 {
			clear(l.last) // bound memory under a flood of distinct sources
		}
		slot = &eventSlot{}
		l.last[k] = slot
	}
	ev.Count = max(1, ev.Count) + slot.suppressed
	slot.at, slot.suppressed = now, 0
	return true
}

// record rate-limits and stores a security event.
func (l *eventLimiter) record(ctx context.Context, ev *pb.SecurityEvent) error {
	now := time.Now()
	if ev.Time == nil {
		ev.Time = timestamppb.New(now)
	}
	l.seen.WithLabelValues(ev.HostId, ev.Reason).Add(float64(max(1, ev.Count)))
	if !l.admit(ev, now) {
		return nil
	}
	l.log.Warn("security event", "host", ev.HostId, "reason", ev.Reason, "outer_src", ev.OuterSrc,
		"inner_src", ev.InnerSrc, "inner_dst", ev.InnerDst, "claimed_vni", ev.ClaimedVni, "detail", ev.Detail)
	return l.st.PutEvent(ctx, ev)
}

// ListEvents and WatchEvents serve `openvpc events`.
func (s *Service) ListEvents(ctx context.Context, limit int) ([]*pb.SecurityEvent, error) {
	return s.store.ListEvents(ctx, limit)
}

func (s *Service) WatchEvents(ctx context.Context, send func(*pb.SecurityEvent) error) error {
	return s.store.WatchEvents(ctx, send)
}

// Record stores a security event raised by the server itself.
func (s *Service) Record(ctx context.Context, ev *pb.SecurityEvent) {
	if err := s.events.record(ctx, ev); err != nil {
		s.log.Error("mapping: could not store security event", "err", err)
	}
}
