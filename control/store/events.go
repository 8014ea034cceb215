package store

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// The security-event log keeps one record per host, reason and claimed
// source: repeats add to its count and move its last-seen time. Each host
// and reason has room for EventSources sources; occurrences from any
// further source add to one more record of that host and reason
// (other_sources). So a flood of one kind, however many sources it forges,
// never erases the first occurrence of another kind, or of the same kind
// from a source recorded before the flood. A record is kept EventRetention
// after its last occurrence.
const (
	EventRetention = 24 * time.Hour
	EventSources   = 32
	// OtherSources names the record of a host and reason that stands for
	// the sources beyond EventSources.
	OtherSources = "*"
)

func (s *Store) eventPrefix() string { return s.key("event") + "/" }

// eventKey is event/<host>/<reason>/<source>; the source is escaped (it
// is whatever the reporting host claimed).
func (s *Store) eventKey(host, reason, source string) string {
	return s.eventBucket(host, reason) + url.PathEscape(cmp.Or(source, "-"))
}

func (s *Store) eventBucket(host, reason string) string {
	return s.eventPrefix() + host + "/" + reason + "/"
}

// eventLease is the lease records are written with: one lease serves many
// writes for an hour, so that the store does not grow a lease per event.
type eventLease struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	granted time.Time
}

const eventLeaseReuse = time.Hour

func (s *Store) eventLeaseID(ctx context.Context) (clientv3.LeaseID, error) {
	l := &s.events
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id != 0 && time.Since(l.granted) < eventLeaseReuse {
		return l.id, nil
	}
	// Granted for the retention plus the time it is reused: a record
	// written at the end of the hour still lives EventRetention.
	r, err := s.c.Grant(ctx, int64((EventRetention+eventLeaseReuse)/time.Second))
	if err != nil {
		return 0, unavailable(err)
	}
	l.id, l.granted = r.ID, time.Now()
	return l.id, nil
}

// PutEvent adds ev (ev.Count occurrences, received at ev.Time) to the record
// of its host, reason and source, creating it if there is room, or else
// adding to the host and reason's other-sources record. It returns the
// source of the record it wrote: source, or OtherSources.
func (s *Store) PutEvent(ctx context.Context, ev *pb.SecurityEvent, source string) (string, error) {
	for range 10 {
		wrote, err := s.putEvent(ctx, ev, source)
		if err != errRetry {
			return wrote, err
		}
	}
	return "", model.Unavailablef("the store is too busy to record a security event; it is counted in openvpc_security_events_total")
}

func (s *Store) putEvent(ctx context.Context, ev *pb.SecurityEvent, source string) (string, error) {
	key := s.eventKey(ev.HostId, ev.Reason, source)
	r, err := s.c.Get(ctx, key)
	if err != nil {
		return "", unavailable(err)
	}
	if len(r.Kvs) == 0 && source != OtherSources {
		n, err := s.c.Get(ctx, s.eventBucket(ev.HostId, ev.Reason), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return "", unavailable(err)
		}
		// Concurrent servers may each add one past the limit: a bound of
		// EventSources plus the number of servers.
		if n.Count >= EventSources {
			return s.putEvent(ctx, ev, OtherSources)
		}
	}
	rec := proto.Clone(ev).(*pb.SecurityEvent)
	rec.Count = max(1, ev.Count)
	rec.FirstSeen, rec.LastSeen = ev.Time, ev.Time
	rec.OtherSources = source == OtherSources
	rev := int64(0)
	if len(r.Kvs) == 1 {
		old := new(pb.SecurityEvent)
		if err := unmarshal(r.Kvs[0], old); err != nil {
			return "", err
		}
		rev = r.Kvs[0].ModRevision
		rec.Id, rec.FirstSeen = old.Id, old.FirstSeen
		rec.Count = saturatingAdd(old.Count, rec.Count)
	}
	if rec.Id == "" {
		rec.Id = model.NewID(model.KindEvent)
	}
	b, err := proto.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("store: marshal event: %w", err)
	}
	lease, err := s.eventLeaseID(ctx)
	if err != nil {
		return "", err
	}
	t, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(b), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return "", unavailable(err)
	}
	if !t.Succeeded {
		return "", errRetry
	}
	return source, nil
}

func saturatingAdd(a, b int64) int64 {
	if a > 0 && b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

// ListEvents returns up to limit records, oldest first: the most recently
// seen of every host and reason first, then the most recently seen of the
// rest, so a flood of one kind cannot push every other kind off the list.
func (s *Store) ListEvents(ctx context.Context, limit int) ([]*pb.SecurityEvent, error) {
	r, err := s.c.Get(ctx, s.eventPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	all := make([]*pb.SecurityEvent, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		ev := new(pb.SecurityEvent)
		if err := unmarshal(kv, ev); err != nil {
			return nil, err
		}
		all = append(all, ev)
	}
	newestFirst := func(a, b *pb.SecurityEvent) int {
		return cmp.Or(b.LastSeen.AsTime().Compare(a.LastSeen.AsTime()), strings.Compare(a.Id, b.Id))
	}
	slices.SortFunc(all, newestFirst)
	type kind struct{ host, reason string }
	seen := map[kind]bool{}
	var out, rest []*pb.SecurityEvent
	for _, ev := range all {
		k := kind{ev.HostId, ev.Reason}
		if !seen[k] && len(out) < limit {
			seen[k] = true
			out = append(out, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	out = append(out, rest[:min(len(rest), limit-len(out))]...)
	slices.SortFunc(out, func(a, b *pb.SecurityEvent) int { return newestFirst(b, a) })
	return out, nil
}

// WatchEvents calls send for every record written from now on (a new one,
// or one whose count grew), until ctx ends or send fails.
func (s *Store) WatchEvents(ctx context.Context, send func(*pb.SecurityEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range s.c.Watch(ctx, s.eventPrefix(), clientv3.WithPrefix(), clientv3.WithFilterDelete()) {
		if err := resp.Err(); err != nil {
			return unavailable(err)
		}
		for _, e := range resp.Events {
			ev := new(pb.SecurityEvent)
			if err := unmarshal(e.Kv, ev); err != nil {
				return err
			}
			if err := send(ev); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}
