package testcloud_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/packet"
)

// inner builds an IPv4/UDP packet src → dst.
func inner(src, dst string) []byte {
	b := make([]byte, packet.IPv4MinSize+packet.UDPMinSize+16)
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(len(b)), TTL: 64, Protocol: packet.ProtoUDP,
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)})
	u := packet.UDP(b[packet.IPv4MinSize:])
	u.SetSrcPort(4000)
	u.SetDstPort(4000)
	u.SetLength(uint16(len(u)))
	return b
}

// geneve wraps an inner packet as a host would put it on the wire.
func geneve(pkt []byte, vni, sourceVNI uint32) []byte {
	buf := make([]byte, packet.Headroom+len(pkt))
	copy(buf[packet.Headroom:], pkt)
	start, ok := packet.EncapsulateGeneve(buf, len(pkt), vni, packet.GeneveOptions{SourceVNI: sourceVNI})
	if !ok {
		panic("encapsulate")
	}
	return buf[start:]
}

// TestAttackMatrix: every attack is dropped with the right reason and
// counted; those that indicate an attack raise exactly one security event
// each: repeats within the rate-limit window are folded into the next.
func TestAttackMatrix(t *testing.T) {
	s := newScene(t)
	c := s.c.AddAgent("host-c", netip.MustParseAddr("127.0.1.3"))
	client, _ := s.run(t, "red-a", s.a, s.red)
	web, _ := s.run(t, "red-a", s.b, s.red)
	s.run(t, "red-a", c, s.red) // so host-a knows host-c
	s.run(t, "green-a", s.b, s.green)
	hostA := &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1), Port: int(s.c.WirePort())}
	rogue := func(from string, payload []byte) {
		t.Helper()
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for range 3 {
			if _, err := conn.WriteToUDP(payload, hostA); err != nil {
				t.Fatal(err)
			}
		}
	}
	counters := &s.a.Plane.Counters
	delivered := counters.Get(datapath.Delivered)
	eni, _ := model.ParseID(model.KindENI, client.EniId)

	for _, tc := range []struct {
		name   string
		attack func()
		want   datapath.Verdict
	}{
		{"an instance sends from an address it does not own", func() {
			// As `openvpc ping client web --source 10.0.1.77` does it.
			r, err := s.api.Inst.PingInstance(s.c.Ctx(), connect.NewRequest(&pb.PingInstanceRequest{From: client.Id, To: web.Id, Count: 2, Source: "10.0.1.77"}))
			if err != nil || r.Msg.Verdict != "spoofed-source" || r.Msg.Received != 0 {
				t.Fatalf("forged ping: %v, %v", r, err)
			}
			if v, err := s.a.Plane.Send(eni, inner("10.0.1.77", web.PrivateIp)); err != nil || v != datapath.SpoofedSource {
				t.Fatalf("send: %v %v", v, err)
			}
		}, datapath.SpoofedSource},
		{"a packet from an unregistered underlay address", func() {
			rogue("127.0.1.9", geneve(inner(web.PrivateIp, client.PrivateIp), s.red.Vni, s.red.Vni))
		}, datapath.UnknownSender},
		{"a rogue process on host-c claims host-b's instance", func() {
			rogue("127.0.1.3", geneve(inner(web.PrivateIp, client.PrivateIp), s.red.Vni, s.red.Vni))
		}, datapath.SenderMismatch},
		{"green claims its way into red without peering", func() {
			rogue("127.0.1.2", geneve(inner("10.2.1.4", client.PrivateIp), s.red.Vni, s.green.Vni))
		}, datapath.NotPeered},
		{"a packet for an ENI that is not on this host", func() {
			rogue("127.0.1.2", geneve(inner(client.PrivateIp, web.PrivateIp), s.red.Vni, s.red.Vni))
		}, datapath.NotLocal},
		{"garbage and truncated packets", func() {
			good := geneve(inner(web.PrivateIp, client.PrivateIp), s.red.Vni, s.red.Vni)
			rogue("127.0.1.2", []byte("not a packet at all"))
			rogue("127.0.1.2", good[:20])
		}, datapath.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counters.Get(tc.want)
			tc.attack()
			waitFor(t, func() bool { return counters.Get(tc.want) > before })
		})
	}
	if got := counters.Get(datapath.Delivered); got != delivered {
		t.Fatalf("host-a delivered %d forged packets", got-delivered)
	}
	// Packets put on the path through the API are recorded like any other:
	// `openvpc flows --verdict dropped` shows the forged ping.
	fl, err := s.api.Inst.ListFlows(s.c.Ctx(), connect.NewRequest(&pb.ListFlowsRequest{Verdict: "dropped"}))
	if err != nil {
		t.Fatal(err)
	}
	forged := false
	for _, f := range fl.Msg.Flows {
		forged = forged || f.Verdict == "spoofed-source" && f.Src == "10.0.1.77"
	}
	if !forged {
		t.Errorf("no spoofed-source flow from 10.0.1.77 among the dropped: %v", fl.Msg.Flows)
	}
	// Exactly one event per attack reason, with the repeats counted in it.
	want := map[string]bool{"spoofed-source": true, "unknown-sender": true, "sender-mismatch": true, "not-peered": true}
	var evs []*pb.SecurityEvent
	waitFor(t, func() bool {
		r, err := s.api.Inst.ListEvents(s.c.Ctx(), connect.NewRequest(&pb.ListEventsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		evs = r.Msg.Events
		return len(evs) >= len(want)
	})
	time.Sleep(300 * time.Millisecond) // any extra event would have arrived
	r, _ := s.api.Inst.ListEvents(s.c.Ctx(), connect.NewRequest(&pb.ListEventsRequest{}))
	evs = r.Msg.Events
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.Reason]++
		if !want[ev.Reason] || ev.HostId != "host-a" {
			t.Errorf("unexpected event %v", ev)
		}
	}
	for reason := range want {
		if seen[reason] != 1 {
			t.Errorf("%d %s events, want exactly 1 (all: %v)", seen[reason], reason, evs)
		}
	}
}
