package mapping

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/control/store"
)

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// ackWriter records hosts' acknowledgements in the store, so that every
// server (not just the one a host talks to) can tell when an instance is
// reachable. Acks that arrive while a write is in flight are coalesced into
// the next one: one write per host per round, however many acks.
type ackWriter struct {
	st     *store.Store
	log    *slog.Logger
	mu     sync.Mutex
	dirty  map[string]store.Ack
	notify chan struct{}
}

func newAckWriter(st *store.Store, log *slog.Logger) *ackWriter {
	return &ackWriter{st: st, log: log, dirty: map[string]store.Ack{}, notify: make(chan struct{}, 1)}
}

func (a *ackWriter) add(host string, rev int64) {
	a.mu.Lock()
	if old, ok := a.dirty[host]; !ok || rev >= old.Revision {
		a.dirty[host] = store.Ack{Revision: rev, Seen: time.Now()}
	}
	a.mu.Unlock()
	a.kick()
}

func (a *ackWriter) kick() {
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

func (a *ackWriter) run(ctx context.Context) {
	for {
		select {
		case <-a.notify:
		case <-ctx.Done():
			return
		}
		a.mu.Lock()
		batch := a.dirty
		a.dirty = map[string]store.Ack{}
		a.mu.Unlock()
		if err := a.st.PutAcks(ctx, batch); err != nil && ctx.Err() == nil {
			a.log.Warn("mapping: could not record acks; retrying", "hosts", len(batch), "err", err)
			a.mu.Lock()
			for h, ack := range batch {
				if cur, ok := a.dirty[h]; !ok || cur.Revision < ack.Revision {
					a.dirty[h] = ack
				}
			}
			a.mu.Unlock()
			select {
			case <-time.After(500 * time.Millisecond):
				a.kick()
			case <-ctx.Done():
				return
			}
		}
	}
}
