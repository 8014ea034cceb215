package node

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

// Batch is one complete, atomic change to a host's cache.
type Batch struct {
	Revision int64
	// Snapshot: drop everything held before applying Changes.
	Snapshot bool
	Changes  []*pb.Change
}

// Subscriber keeps a host's cache current: it subscribes to the Mapping
// Service, applies each complete batch, acknowledges it, and on any
// failure resubscribes from the last applied revision, so nothing is lost
// and nothing applied twice. While the server is away the cache simply
// stays as it is (headless operation).
type Subscriber struct {
	Client openvpcv1connect.MappingServiceClient
	HostID string
	// Apply installs one batch atomically; it is called from Run's
	// goroutine only.
	Apply func(Batch) error
	// Heartbeat is how often the host acknowledges even without changes,
	// so the Mapping Service knows it is alive. Default 5s.
	Heartbeat time.Duration
	Log       *slog.Logger
	// Removed, when set, is called from Run's goroutine when the server
	// first refuses this host because it was removed (openvpc host
	// remove revoked its certificate): it has no business keeping what the
	// cloud gave it.
	Removed func()

	rev       atomic.Int64
	connected atomic.Bool
	acked     chan struct{} // wakes the ack loop
	// ackStream is the open ack stream, used by the ack loop only.
	ackStream *connect.ClientStreamForClient[pb.AckStreamRequest, pb.AckStreamResponse]
}

// Revision is the last revision applied.
func (s *Subscriber) Revision() int64 { return s.rev.Load() }

// Connected reports whether a subscription stream is open.
func (s *Subscriber) Connected() bool { return s.connected.Load() }

// Run subscribes until ctx ends, reconnecting with backoff.
func (s *Subscriber) Run(ctx context.Context) error {
	if s.Heartbeat == 0 {
		s.Heartbeat = 5 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.acked = make(chan struct{}, 1)
	ackCtx, stopAcks := context.WithCancel(ctx)
	acksDone := make(chan struct{})
	go func() {
		defer close(acksDone)
		s.acks(ackCtx)
	}()
	defer func() {
		stopAcks()
		<-acksDone
	}()
	backoff := 50 * time.Millisecond
	refused := false
	for ctx.Err() == nil {
		progressed, err := s.stream(ctx)
		s.connected.Store(false)
		if ctx.Err() != nil {
			break
		}
		if progressed {
			backoff = 50 * time.Millisecond
		}
		s.Log.Debug("mapping stream ended; resubscribing", "host", s.HostID, "rev", s.Revision(), "err", err, "in", backoff)
		// Refused credentials do not heal by retrying: say so, once.
		if code := connect.CodeOf(err); (code == connect.CodeUnauthenticated || code == connect.CodePermissionDenied) != refused {
			refused = !refused
			switch {
			case refused && wasRemoved(err):
				s.Log.Warn("the server refuses this host: it was removed; its instances go too", "host", s.HostID, "err", err)
				if s.Removed != nil {
					s.Removed()
				}
			case refused:
				s.Log.Warn("the server refuses this host; it keeps forwarding on its last cache", "host", s.HostID, "err", err)
			}
		}
		select {
		case <-time.After(backoff + rand.N(backoff/2+1)):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	return ctx.Err()
}

// wasRemoved reports whether err is a server refusing this host's
// certificate as revoked, which only host remove does. The server says so
// in the message (control/trust); testcloud's removal tests hold both
// ends to it.
func wasRemoved(err error) bool {
	return connect.CodeOf(err) == connect.CodeUnauthenticated && strings.Contains(err.Error(), "was revoked")
}

// stream runs one subscription; progressed reports whether any batch was
// applied.
func (s *Subscriber) stream(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := s.Client.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{HostId: s.HostID, FromRevision: s.Revision()}))
	if err != nil {
		return false, err
	}
	defer st.Close()
	s.connected.Store(true)
	var pending Batch
	for st.Receive() {
		m := st.Msg()
		if m.Snapshot {
			pending = Batch{Snapshot: true}
		}
		pending.Changes = append(pending.Changes, m.Changes...)
		if m.More {
			continue
		}
		pending.Revision = m.Revision
		if err := s.Apply(pending); err != nil {
			return progressed, err
		}
		s.rev.Store(m.Revision)
		progressed = true
		pending = Batch{}
		select {
		case s.acked <- struct{}{}:
		default:
		}
	}
	if err := st.Err(); err != nil {
		return progressed, err
	}
	return progressed, errors.New("mapping stream closed by the server")
}

// ack reports the applied revision on the ack stream, opening it when
// needed; should the stream fail, the unary Ack carries this one.
func (s *Subscriber) ack(ctx context.Context) {
	req := &pb.AckStreamRequest{HostId: s.HostID, Revision: s.Revision()}
	if s.ackStream == nil {
		s.ackStream = s.Client.AckStream(ctx)
	}
	if err := s.ackStream.Send(req); err == nil {
		return
	}
	s.ackStream.CloseAndReceive()
	s.ackStream = nil
	_, err := s.Client.Ack(ctx, connect.NewRequest(&pb.AckRequest{HostId: s.HostID, Revision: req.Revision}))
	if err != nil && ctx.Err() == nil {
		s.Log.Debug("ack failed", "host", s.HostID, "err", err)
	}
}

// acks acknowledges the newest applied revision whenever it moves, and
// every Heartbeat regardless. Acks are not sent per batch: while one is in
// flight, newer batches coalesce into the next, so a host flooded with
// changes does not flood the server with acks.
func (s *Subscriber) acks(ctx context.Context) {
	t := time.NewTicker(s.Heartbeat)
	defer t.Stop()
	defer func() {
		if s.ackStream != nil {
			s.ackStream.CloseAndReceive()
			s.ackStream = nil
		}
	}()
	for {
		select {
		case <-s.acked:
		case <-t.C:
			if !s.Connected() {
				continue
			}
		case <-ctx.Done():
			return
		}
		s.ack(ctx)
	}
}
