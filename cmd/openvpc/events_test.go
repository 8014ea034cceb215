package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestEventsShowCountAndTimes: `openvpc events` shows an aggregated record
// as such — its count, first and last seen by the server's clock — and
// `-o json` carries the host's own time apart.
func TestEventsShowCountAndTimes(t *testing.T) {
	s := startServer(t, t.TempDir())
	host := s.joinHost(t, "host-a", "127.0.1.1")
	hostTime := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Now().Format(time.DateOnly)
	if _, err := host.ReportEvents(context.Background(), connect.NewRequest(&pb.ReportEventsRequest{HostId: "host-a", Events: []*pb.SecurityEvent{
		{Reason: "spoofed-source", InnerSrc: "10.0.1.66", InnerDst: "10.0.1.5", Count: 3, Time: timestamppb.New(hostTime)},
	}})); err != nil {
		t.Fatal(err)
	}
	out := s.ok(t, "events")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("events:\n%s\nwant a header and one record", out)
	}
	head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if strings.Join(head[:6], " ") != "FIRST SEEN LAST SEEN COUNT HOST" {
		t.Errorf("events header %q, want FIRST SEEN, LAST SEEN, COUNT first", lines[0])
	}
	after := time.Now().Format(time.DateOnly)
	today := func(d string) bool { return d == before || d == after }
	if len(row) < 7 || !today(row[0]) || !today(row[2]) || row[4] != "3" || row[5] != "host-a" || row[6] != "spoofed-source" {
		t.Errorf("events row %q, want seen today (the server's clock, not 2099), count 3, host-a, spoofed-source", lines[1])
	}
	var evs []map[string]any
	if err := json.Unmarshal([]byte(s.ok(t, "-o", "json", "events")), &evs); err != nil || len(evs) != 1 {
		t.Fatalf("events -o json: %v %v", evs, err)
	}
	for _, k := range []string{"firstSeen", "lastSeen", "hostTime", "count"} {
		if evs[0][k] == nil {
			t.Errorf("events -o json lacks %s: %v", k, evs[0])
		}
	}
	if ht, _ := evs[0]["hostTime"].(string); !strings.HasPrefix(ht, "2099-01-01") {
		t.Errorf("hostTime %v, want the host's 2099", evs[0]["hostTime"])
	}
}
