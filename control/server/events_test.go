package server_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestEventLogCannotBeBlinded: a host that lies about times and reasons,
// or floods one kind of event from forged sources, can neither hide nor
// evict an event recorded before, nor grow the metrics.
func TestEventLogCannotBeBlinded(t *testing.T) {
	s := startServer(t)
	host := s.mapping(s.hostHTTP(t, "host-a", netip.MustParseAddr("127.0.1.1")))
	inst := s.instances(s.adminHTTP(t))
	report := func(evs ...*pb.SecurityEvent) error {
		_, err := host.ReportEvents(ctx(t), connect.NewRequest(&pb.ReportEventsRequest{HostId: "host-a", Events: evs}))
		return err
	}
	list := func(limit int32) []*pb.SecurityEvent {
		r, err := inst.ListEvents(ctx(t), connect.NewRequest(&pb.ListEventsRequest{Limit: limit}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.Events
	}
	of := func(evs []*pb.SecurityEvent, reason string) []*pb.SecurityEvent {
		return slices.DeleteFunc(slices.Clone(evs), func(e *pb.SecurityEvent) bool { return e.Reason != reason })
	}

	// A real event, dated 2099 by the host's clock.
	before := time.Now()
	hostTime := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := report(&pb.SecurityEvent{Reason: "spoofed-source", InnerSrc: "10.0.1.66", InnerDst: "10.0.1.5", Time: timestamppb.New(hostTime)}); err != nil {
		t.Fatal(err)
	}
	spoofed := of(list(0), "spoofed-source")
	if len(spoofed) != 1 {
		t.Fatalf("spoofed-source records: %v", spoofed)
	}
	first := spoofed[0]
	if at := first.Time.AsTime(); at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("event time %v is not the server's receive time (%v)", at, before)
	}
	if !first.FirstSeen.AsTime().Equal(first.Time.AsTime()) || !first.LastSeen.AsTime().Equal(first.Time.AsTime()) {
		t.Errorf("first seen %v, last seen %v, want both %v", first.FirstSeen.AsTime(), first.LastSeen.AsTime(), first.Time.AsTime())
	}
	if !first.HostTime.AsTime().Equal(hostTime) {
		t.Errorf("host time %v, want the host's %v kept", first.HostTime.AsTime(), hostTime)
	}

	// Made-up reasons and malformed fields are refused and counted, and
	// the report is itself an event; no record or metric series per lie.
	var lies []*pb.SecurityEvent
	for i := range 50 {
		lies = append(lies, &pb.SecurityEvent{Reason: fmt.Sprintf("made-up-%d", i)})
	}
	lies = append(lies, &pb.SecurityEvent{Reason: "spoofed-source", InnerSrc: "not an address"}, &pb.SecurityEvent{Reason: "spoofed-source", Count: 1 << 62})
	if err := report(lies...); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("a report of made-up reasons: %v, want invalid_argument", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Mapping.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series int
	for _, mf := range mfs {
		switch mf.GetName() {
		case "openvpc_security_events_total":
			series = len(mf.Metric)
		case "openvpc_security_events_refused_total":
			if v := mf.Metric[0].GetCounter().GetValue(); v != 52 {
				t.Errorf("openvpc_security_events_refused_total = %v, want 52", v)
			}
		}
	}
	if series != 2 {
		t.Errorf("%d series of openvpc_security_events_total, want 2 (spoofed-source and bad-report)", series)
	}

	// A flood of one kind from 20,000 forged sources, the first 5 of them
	// repeated.
	const flood = 20000
	var batch []*pb.SecurityEvent
	for i := range flood + 20 {
		src := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
		if i >= flood {
			src = netip.AddrFrom4([4]byte{10, 9, 0, byte(i % 5)})
		}
		batch = append(batch, &pb.SecurityEvent{Reason: "sender-mismatch", OuterSrc: "127.0.1.2", InnerSrc: src.String(), Time: timestamppb.New(hostTime)})
		if len(batch) == 4000 || i == flood+19 {
			if err := report(batch...); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	// Occurrences held back by rate limiting are written within a window.
	var evs []*pb.SecurityEvent
	for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		evs = list(1000)
		var total int64
		for _, e := range of(evs, "sender-mismatch") {
			total += e.Count
		}
		if total == flood+20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sender-mismatch records count %d occurrences, want %d", total, flood+20)
		}
	}
	mismatch := of(evs, "sender-mismatch")
	if len(mismatch) > store.EventSources+1 {
		t.Errorf("%d sender-mismatch records, want at most %d sources and one for the others", len(mismatch), store.EventSources)
	}
	others := slices.DeleteFunc(slices.Clone(mismatch), func(e *pb.SecurityEvent) bool { return !e.OtherSources })
	if len(others) != 1 || others[0].Count < flood-store.EventSources {
		t.Errorf("other-sources record: %v", others)
	}
	for _, e := range mismatch {
		if e.InnerSrc == "10.9.0.1" && e.Count != 5 {
			t.Errorf("10.9.0.1 sent 5 times; its record counts %d", e.Count)
		}
	}
	// The first event survived the flood, unchanged.
	spoofed = of(evs, "spoofed-source")
	if len(spoofed) != 1 || spoofed[0].Count != 1 || !spoofed[0].FirstSeen.AsTime().Equal(first.FirstSeen.AsTime()) {
		t.Errorf("after the flood, spoofed-source records: %v, want %v", spoofed, first)
	}
	// Even a short list shows every kind.
	short := list(3)
	for _, reason := range []string{"spoofed-source", "sender-mismatch", "bad-report"} {
		if len(of(short, reason)) != 1 {
			t.Errorf("events --limit 3 lacks %s: %v", reason, short)
		}
	}
}
