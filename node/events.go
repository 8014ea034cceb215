package node

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

// eventWindow: at most one event per (reason, source) leaves this host per
// window; repeats are folded into the next one's count.
const eventWindow = 10 * time.Second

// Reporter carries the data plane's security events to the Mapping
// Service. Report never blocks the packet path: when the queue is full the
// event is only counted.
type Reporter struct {
	client  openvpcv1connect.MappingServiceClient
	host    string
	log     *slog.Logger
	ch      chan datapath.Event
	Dropped atomic.Uint64
}

// NewReporter returns a reporter for host; Run sends.
func NewReporter(c openvpcv1connect.MappingServiceClient, host string, log *slog.Logger) *Reporter {
	return &Reporter{client: c, host: host, log: log, ch: make(chan datapath.Event, 1024)}
}

// Report queues an event (the data plane's Config.Events).
func (r *Reporter) Report(e datapath.Event) {
	select {
	case r.ch <- e:
	default:
		r.Dropped.Add(1)
	}
}

type eventKey struct {
	v   datapath.Verdict
	src netip.Addr
}

type eventSlot struct {
	at         time.Time
	suppressed int64
}

// Run sends queued events, rate-limited, in small batches, until ctx
// ends; it returns ctx's error.
func (r *Reporter) Run(ctx context.Context) error {
	slots := map[eventKey]*eventSlot{}
	var batch []*pb.SecurityEvent
	flush := time.NewTicker(100 * time.Millisecond)
	defer flush.Stop()
	for {
		select {
		case e := <-r.ch:
			if ev := r.admit(slots, e, time.Now()); ev != nil {
				batch = append(batch, ev)
			}
		case <-flush.C:
			if len(batch) > 0 {
				if _, err := r.client.ReportEvents(ctx, connect.NewRequest(&pb.ReportEventsRequest{HostId: r.host, Events: batch})); err != nil && ctx.Err() == nil {
					r.log.Warn("could not report security events", "events", len(batch), "err", err)
				}
				batch = nil
			}
			if len(slots) > 10000 {
				clear(slots)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Reporter) admit(slots map[eventKey]*eventSlot, e datapath.Event, now time.Time) *pb.SecurityEvent {
	src := e.InnerSrc
	if e.Verdict == datapath.UnknownSender {
		src = e.OuterSrc
	}
	k := eventKey{e.Verdict, src}
	s := slots[k]
	if s != nil && now.Sub(s.at) < eventWindow {
		s.suppressed++
		return nil
	}
	if s == nil {
		s = &eventSlot{}
		slots[k] = s
	}
	count := 1 + s.suppressed
	s.at, s.suppressed = now, 0
	str := func(a netip.Addr) string {
		if a.IsValid() {
			return a.String()
		}
		return ""
	}
	return &pb.SecurityEvent{
		Time: timestamppb.New(now), HostId: r.host, Reason: e.Verdict.String(), Count: count,
		OuterSrc: str(e.OuterSrc), OuterDst: str(e.OuterDst), InnerSrc: str(e.InnerSrc), InnerDst: str(e.InnerDst),
		ClaimedVni: e.ClaimedVNI,
	}
}
