package mapping

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/control/apierr"
	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// ReportedReasons are the reasons a host or edge may report: the data-plane
// verdicts that indicate an attack (DESIGN.md §6: spoofed-source,
// unknown-sender, sender-mismatch, not-peered). A report with any other
// reason is refused and counted, and is itself an event (ReasonBadReport):
// made-up reasons would otherwise fill the log and the metrics.
var ReportedReasons = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range datapath.Verdicts() {
		if v.Attack() {
			m[v.String()] = true
		}
	}
	return m
}()

// ReasonBadReport: a host or edge reported an event the server refused (an
// unknown reason, a malformed field).
const ReasonBadReport = "bad-report"

// Bounds on what a report may hold.
const (
	// maxReportEvents is far above what a host's reporter batches in its
	// 100 ms under a flood of distinct sources (its queue is 1024 deep,
	// drained continuously); the message size bounds it too.
	maxReportEvents = 1 << 16
	maxEventCount   = 1 << 30
	maxDetail       = 256
	// maxHostLabels bounds the host label of the metrics; beyond it hosts
	// are counted as "other". Hosts are certified, so a real fleet stays
	// under it; an insecure server believes any id.
	maxHostLabels = 10000
)

// eventWindow is the rate limit of security-event writes: at most one per
// record per window; occurrences in between are added at the next write
// (or by the flusher, once the window has passed).
const eventWindow = 10 * time.Second

type bucketKey struct{ host, reason string }

// eventBucket mirrors, on this server, the records of one host and reason.
type eventBucket struct {
	slots map[string]*eventSlot // by source
	// full: the store has no room for another source of this host and
	// reason; new sources go to store.OtherSources.
	full bool
}

type eventSlot struct {
	at      time.Time         // last write
	pending int64             // occurrences since, not written yet
	latest  *pb.SecurityEvent // the latest of them
}

type eventLimiter struct {
	st      *store.Store
	log     *slog.Logger
	mu      sync.Mutex
	buckets map[bucketKey]*eventBucket
	hosts   map[string]bool // host label values in use
	// seen counts every event reported, stored or folded, per host and reason.
	seen *prometheus.CounterVec
	// refused counts events refused (unknown reason, malformed).
	refused prometheus.Counter
}

func newEventLimiter(st *store.Store, log *slog.Logger) *eventLimiter {
	return &eventLimiter{st: st, log: log, buckets: map[bucketKey]*eventBucket{}, hosts: map[string]bool{},
		seen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "openvpc_security_events_total",
			Help: "Security events reported to the Mapping Service, per host and reason (including those folded by rate limiting).",
		}, []string{"host", "reason"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "openvpc_security_events_refused_total",
			Help: "Security events a host or edge reported that the server refused: an unknown reason or a malformed field.",
		}),
	}
}

// claimedSource is the source an event is aggregated by: the outer source
// for an unknown sender (the inner one is whatever it forged), the inner
// source for the rest, the caller's address for refused requests.
func claimedSource(ev *pb.SecurityEvent) string {
	if ev.Reason == datapath.UnknownSender.String() || ev.InnerSrc == "" {
		return ev.OuterSrc
	}
	return ev.InnerSrc
}

// validReport checks an event as a host or edge reported it, and makes it
// the server's: the server's receive time, the host's time kept aside.
func validReport(ev *pb.SecurityEvent, now time.Time) error {
	if !ReportedReasons[ev.Reason] {
		return model.Invalidf("security event reason %q is not one a host may report", ev.Reason)
	}
	for what, a := range map[string]*string{"outer_src": &ev.OuterSrc, "outer_dst": &ev.OuterDst, "inner_src": &ev.InnerSrc, "inner_dst": &ev.InnerDst} {
		if *a == "" {
			continue
		}
		ip, err := netip.ParseAddr(*a)
		if err != nil {
			return model.Invalidf("security event %s %q is not an IP address", what, *a)
		}
		*a = ip.String()
	}
	if ev.ClaimedVni > model.MaxVNI {
		return model.Invalidf("security event claimed VNI %d is more than 24 bits", ev.ClaimedVni)
	}
	if ev.Count < 0 || ev.Count > maxEventCount {
		return model.Invalidf("security event count %d: give 0 to %d occurrences per report", ev.Count, maxEventCount)
	}
	if len(ev.Detail) > maxDetail {
		ev.Detail = apierr.Shorten(ev.Detail[:maxDetail])
	}
	ev.HostTime, ev.Time = ev.Time, timestamppb.New(now)
	ev.Id, ev.FirstSeen, ev.LastSeen, ev.OtherSources = "", nil, nil, false
	return nil
}

// hostLabel is host as a metric label: bounded in number.
func (l *eventLimiter) hostLabel(host string) string {
	if !l.hosts[host] {
		if len(l.hosts) >= maxHostLabels {
			return "other"
		}
		l.hosts[host] = true
	}
	return host
}

// record counts an event and writes it to its record now, or at the end of
// its record's rate-limit window.
func (l *eventLimiter) record(ctx context.Context, ev *pb.SecurityEvent) error {
	now := time.Now()
	if ev.Time == nil {
		ev.Time = timestamppb.New(now)
	}
	n := max(1, ev.Count)
	l.mu.Lock()
	l.seen.WithLabelValues(l.hostLabel(ev.HostId), ev.Reason).Add(float64(n))
	bk := bucketKey{ev.HostId, ev.Reason}
	b := l.buckets[bk]
	if b == nil {
		if len(l.buckets) > 100000 {
			clear(l.buckets) // bound memory under a flood of hosts; the store still aggregates
		}
		b = &eventBucket{slots: map[string]*eventSlot{}}
		l.buckets[bk] = b
	}
	src := claimedSource(ev)
	slot := b.slots[src]
	if slot == nil && (b.full || len(b.slots) >= store.EventSources) {
		src = store.OtherSources
		slot = b.slots[src]
	}
	if slot == nil {
		slot = &eventSlot{}
		b.slots[src] = slot
	}
	if now.Sub(slot.at) < eventWindow {
		slot.pending += n
		slot.latest = ev
		l.mu.Unlock()
		return nil
	}
	ev.Count = n + slot.pending
	slot.at, slot.pending, slot.latest = now, 0, nil
	l.mu.Unlock()
	l.log.Warn("security event", "host", ev.HostId, "reason", ev.Reason, "outer_src", ev.OuterSrc,
		"inner_src", ev.InnerSrc, "inner_dst", ev.InnerDst, "claimed_vni", ev.ClaimedVni, "detail", ev.Detail)
	return l.write(ctx, bk, src, ev)
}

// write adds ev to the store, and learns when the store put it with the
// other sources.
func (l *eventLimiter) write(ctx context.Context, bk bucketKey, src string, ev *pb.SecurityEvent) error {
	wrote, err := l.st.PutEvent(ctx, ev, src)
	if err != nil || wrote == src {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[bk]; b != nil {
		b.full = true
		delete(b.slots, src)
		if b.slots[wrote] == nil {
			b.slots[wrote] = &eventSlot{at: time.Now()}
		}
	}
	return nil
}

// run writes, every window, the occurrences held back by rate limiting,
// so a record's count is never more than a window behind.
func (l *eventLimiter) run(ctx context.Context) {
	t := time.NewTicker(eventWindow / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.flush(ctx, time.Now())
		}
	}
}

func (l *eventLimiter) flush(ctx context.Context, now time.Time) {
	type due struct {
		bk  bucketKey
		src string
		ev  *pb.SecurityEvent
	}
	var out []due
	l.mu.Lock()
	for bk, b := range l.buckets {
		for src, s := range b.slots {
			if s.pending > 0 && now.Sub(s.at) >= eventWindow {
				ev := s.latest
				ev.Count = s.pending
				out = append(out, due{bk, src, ev})
				s.at, s.pending, s.latest = now, 0, nil
			}
		}
	}
	l.mu.Unlock()
	for _, d := range out {
		if err := l.write(ctx, d.bk, d.src, d.ev); err != nil && ctx.Err() == nil {
			l.log.Error("mapping: could not store security events", "host", d.bk.host, "reason", d.bk.reason, "err", err)
		}
	}
}

// report records the events a host or edge reported. Events the server
// refuses are counted, recorded once more as ReasonBadReport, and named in
// the error; the others are recorded all the same.
func (l *eventLimiter) report(ctx context.Context, host, addr string, evs []*pb.SecurityEvent) error {
	if len(evs) > maxReportEvents {
		return model.Invalidf("%d security events in one report: send at most %d", len(evs), maxReportEvents)
	}
	now := time.Now()
	var bad []string
	for _, ev := range evs {
		ev.HostId = host
		if err := validReport(ev, now); err != nil {
			l.refused.Inc()
			bad = append(bad, err.Error())
			continue
		}
		if err := l.record(ctx, ev); err != nil {
			return err
		}
	}
	if len(bad) == 0 {
		return nil
	}
	detail := fmt.Sprintf("%d of %d reported events refused; the first: %s", len(bad), len(evs), bad[0])
	if err := l.record(ctx, &pb.SecurityEvent{HostId: host, Reason: ReasonBadReport, OuterSrc: addr, Detail: apierr.Shorten(detail)}); err != nil {
		return err
	}
	if len(bad) > 1 {
		detail += "; then: " + strings.Join(bad[1:min(len(bad), 3)], "; ")
	}
	return model.Invalidf("%s", detail)
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
