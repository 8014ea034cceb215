package flowlog

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/packet/packettest"
)

func TestFlowLog(t *testing.T) {
	var flows datapath.Flows
	out, in := flows.Table(datapath.Egress), flows.Table(datapath.Ingress)
	buf := make([]byte, 2048)
	pkt := func(src, dst string) packet.IPv4 {
		n := packettest.UDP(buf, src, dst, 10, 64, false)
		return packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
	}
	record := func(tb *datapath.FlowTable, src, dst string, v datapath.Verdict, n int) {
		tb.Begin()
		for range n {
			tb.Record(7, pkt(src, dst), 100, v)
		}
		tb.End()
	}
	local := map[netip.Addr]uint64{netip.MustParseAddr("10.0.1.4"): 0x4, netip.MustParseAddr("10.0.1.9"): 0x9}
	var w bytes.Buffer
	l, err := New(Config{
		Flows:   flows.List,
		ENI:     func(vni uint32, ip netip.Addr) (uint64, bool) { e, ok := local[ip]; return e, ok && vni == 7 },
		Covers:  func(eni uint64) bool { return eni == 0x4 },
		Traffic: All,
		Out:     &w,
	})
	if err != nil {
		t.Fatal(err)
	}
	record(out, "10.0.1.4", "10.0.1.5", datapath.Forwarded, 3)
	record(in, "10.0.1.5", "10.0.1.4", datapath.SGDenied, 2)
	record(in, "10.0.1.5", "10.0.1.9", datapath.Delivered, 1) // ENI 9 is not covered
	record(out, "10.0.1.4", "10.0.1.6", datapath.NoRoute, 1)  // not the firewall's decision
	t0 := time.Unix(1418530010, 0)
	if err := l.Flush(t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	want := map[string]bool{
		"2 000000000000 eni-0000000000000004 10.0.1.4 10.0.1.5 40000 53 17 3 300 1418530010 1418530070 ACCEPT OK": true,
		"2 000000000000 eni-0000000000000004 10.0.1.5 10.0.1.4 40000 53 17 2 200 1418530010 1418530070 REJECT OK": true,
	}
	if len(lines) != len(want) {
		t.Fatalf("lines:\n%s", w.String())
	}
	for _, line := range lines {
		if !want[line] {
			t.Errorf("unexpected line %q", line)
		}
		if f := strings.Fields(line); len(f) != 14 {
			t.Errorf("%d fields, AWS's version 2 has 14: %q", len(f), line)
		}
	}
	// The next window reports only what is new.
	w.Reset()
	record(out, "10.0.1.4", "10.0.1.5", datapath.Forwarded, 2)
	if err := l.Flush(t0.Add(time.Minute), t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(w.String()); got != "2 000000000000 eni-0000000000000004 10.0.1.4 10.0.1.5 40000 53 17 2 200 1418530070 1418530130 ACCEPT OK" {
		t.Errorf("second window: %q", got)
	}
	if _, err := New(Config{Flows: flows.List, ENI: func(uint32, netip.Addr) (uint64, bool) { return 0, false }, Out: &w, Interval: time.Millisecond}); err == nil {
		t.Error("a 1 ms window accepted")
	}
	if _, err := ParseTraffic("dropped"); err == nil {
		t.Error("traffic type 'dropped' accepted")
	}
}
