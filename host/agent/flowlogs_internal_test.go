package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/packet/packettest"
)

// writes records each Write it is given.
type writes struct{ got []string }

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, string(p))
	return len(p), nil
}

// TestLineWriterWritesWholeLines: however the logger's buffer splits its
// output, each write to the shared file holds whole lines only, and
// nothing is lost or reordered.
func TestLineWriterWritesWholeLines(t *testing.T) {
	var w writes
	lw := &lineWriter{w: &w}
	in := "2 a b\n2 c d\n2 e f\n"
	for _, chunk := range []string{"2 a", " b\n2 c", " d\n", "2 e f", "\n"} {
		if n, err := lw.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	for _, g := range w.got {
		if !strings.HasSuffix(g, "\n") || strings.HasPrefix(g, " ") {
			t.Errorf("a write holds part of a line: %q", g)
		}
	}
	if got := strings.Join(w.got, ""); got != in {
		t.Errorf("written %q, want %q", got, in)
	}
	if len(w.got) != 3 || len(lw.partial) != 0 {
		t.Errorf("writes %q, pending %q", w.got, lw.partial)
	}
}

// syncLog collects log output from the loggers' goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestFlowLogsFollowTheCache runs the agent's flow logs over a real cache
// and real flow records: a flow log starts for each local ENI it covers
// (by ENI, by subnet) and not for a remote ENI's; its file gets the
// covered ENIs' lines only; a destination that cannot be opened is
// reported once, not at every batch; a flow log deleted, or left with no
// local ENI, stops writing; Run's end stops everything.
func TestFlowLogsFollowTheCache(t *testing.T) {
	var logs syncLog
	cache := node.NewCache("host-a", slog.New(slog.NewTextHandler(&logs, nil)))
	var flows datapath.Flows
	f := newFlowLogs(flows.List, cache, slog.New(slog.NewTextHandler(&logs, nil)))
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	const vni = 7
	fl := func(n int, eni, subnet, traffic, file string) *pb.FlowLogFacts {
		tt := map[string]pb.FlowLogTrafficType{"all": pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ALL, "accept": pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ACCEPT, "reject": pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_REJECT}[traffic]
		return &pb.FlowLogFacts{Id: model.FormatID(model.KindFlowLog, uint64(n)), EniId: eni, SubnetId: subnet, TrafficType: tt, Path: file, IntervalSeconds: 1}
	}
	eni := func(n uint64) string { return model.FormatID(model.KindENI, n) }
	subnet2 := model.FormatID(model.KindSubnet, 2)
	facts := func(fls ...*pb.FlowLogFacts) *pb.Change {
		return &pb.Change{Kind: &pb.Change_UpsertVpc{UpsertVpc: &pb.VpcFacts{Vni: vni, Id: model.FormatID(model.KindVPC, 1), Cidr: "10.0.0.0/16",
			Subnets:  []*pb.SubnetFacts{{Id: model.FormatID(model.KindSubnet, 1), Cidr: "10.0.1.0/24"}, {Id: subnet2, Cidr: "10.0.2.0/24"}},
			FlowLogs: fls}}}
	}
	mapping := func(ip string, n uint64, host string) *pb.Change {
		return &pb.Change{Kind: &pb.Change_UpsertMapping{UpsertMapping: &pb.MappingRecord{Vni: vni, Ip: ip, HostId: host, EniId: eni(n), Mac: "02:00:00:00:00:01", InstanceId: model.FormatID(model.KindInstance, n)}}}
	}
	rev := int64(0)
	apply := func(changes ...*pb.Change) {
		t.Helper()
		rev++
		if err := cache.Apply(node.Batch{Revision: rev, Snapshot: rev == 1, Changes: changes}); err != nil || cache.Skipped() != 0 {
			t.Fatalf("apply: %v (%d skipped)", err, cache.Skipped())
		}
		f.reconcile()
	}
	running := func() []uint64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		var ids []uint64
		for id := range f.running {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}
	buf := make([]byte, 2048)
	tables := map[datapath.Direction]*datapath.FlowTable{datapath.Egress: flows.Table(datapath.Egress), datapath.Ingress: flows.Table(datapath.Ingress)}
	record := func(dir datapath.Direction, src, dst string, v datapath.Verdict) {
		tb := tables[dir]
		n := packettest.UDP(buf, src, dst, 10, 64, false)
		tb.Begin()
		tb.Record(vni, packet.IPv4(buf[packet.Headroom:packet.Headroom+n]), 100, v)
		tb.End()
	}
	lines := func(name string) []string {
		b, err := os.ReadFile(path(name))
		if err != nil {
			return nil
		}
		return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
	}
	waitLines := func(name string, min int) []string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if l := lines(name); len(l) >= min {
				return l
			}
		}
		t.Fatalf("%s: %d lines, want at least %d", name, len(lines(name)), min)
		return nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.run(ctx) }()
	for f.mu.Lock(); f.ctx == nil; f.mu.Lock() {
		f.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	f.mu.Unlock()

	apply(
		facts(fl(1, eni(4), "", "all", path("eni.log")), fl(2, "", subnet2, "reject", path("subnet.log")),
			fl(3, "", "", "accept", path("no/such/dir.log")), fl(4, eni(5), "", "all", path("remote.log"))),
		mapping("10.0.1.4", 4, "host-a"), mapping("10.0.2.9", 9, "host-a"), mapping("10.0.1.5", 5, "host-b"),
	)
	if got := running(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("running flow logs %v, want 1 (ENI 4) and 2 (subnet 2); not 3 (no file), not 4 (a remote ENI)", got)
	}
	record(datapath.Egress, "10.0.1.4", "10.0.1.5", datapath.Forwarded)
	record(datapath.Ingress, "10.0.1.5", "10.0.1.4", datapath.Delivered)
	record(datapath.Ingress, "10.0.1.5", "10.0.2.9", datapath.SGDenied)
	record(datapath.Egress, "10.0.2.9", "10.0.1.5", datapath.NoRoute) // not the firewall's decision
	for _, l := range waitLines("eni.log", 2) {
		if !strings.Contains(l, eni(4)) || !strings.Contains(l, "ACCEPT") {
			t.Errorf("eni.log: %s", l)
		}
	}
	for _, l := range waitLines("subnet.log", 1) {
		if !strings.Contains(l, eni(9)) || !strings.Contains(l, "REJECT") {
			t.Errorf("subnet.log: %s", l)
		}
	}
	if _, err := os.Stat(path("remote.log")); !os.IsNotExist(err) {
		t.Errorf("a flow log of a remote ENI made its file here: %v", err)
	}

	// Another batch: the failed one is not tried (nor reported) again.
	apply(mapping("10.0.1.6", 6, "host-b"))
	if n := logs.count("cannot open"); n != 1 {
		t.Errorf("the unopenable destination was reported %d times, want once", n)
	}
	// Flow log 1 deleted: it stops, and writes nothing more.
	apply(facts(fl(2, "", subnet2, "reject", path("subnet.log")), fl(3, "", "", "accept", path("no/such/dir.log"))))
	if got := running(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("running flow logs %v after deleting 1", got)
	}
	before, beforeSubnet := len(lines("eni.log")), len(lines("subnet.log"))
	record(datapath.Egress, "10.0.1.4", "10.0.1.5", datapath.Forwarded)
	record(datapath.Ingress, "10.0.1.5", "10.0.2.9", datapath.SGDenied)
	waitLines("subnet.log", beforeSubnet+1)
	time.Sleep(1200 * time.Millisecond)
	if n := len(lines("eni.log")); n != before {
		t.Errorf("a deleted flow log went on writing: %d lines, then %d", before, n)
	}
	// ENI 9 leaves the host: subnet 2 covers no local ENI, its log stops.
	apply(&pb.Change{Kind: &pb.Change_DeleteMapping{DeleteMapping: &pb.MappingKey{Vni: vni, Ip: "10.0.2.9"}}})
	if got := running(); len(got) != 0 {
		t.Fatalf("running flow logs %v with no covered ENI left", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
