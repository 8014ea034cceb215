package dataplane

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

var (
	self  = netip.MustParseAddr("127.0.1.1")
	host2 = netip.MustParseAddr("127.0.1.2")
	host3 = netip.MustParseAddr("127.0.1.3")
	a     = netip.MustParseAddr
)

const red, yellow, green = 100, 200, 300

// fixture: this host (1) runs red 10.0.1.4 (ENI 1), red 10.0.2.4 (ENI 3,
// another subnet) and yellow 10.1.1.5 (ENI 5); host 2 runs red 10.0.1.5
// and yellow 10.1.1.4; host 3 runs red 10.0.1.6. Red and yellow are peered
// (pcx 7) with routes both ways; green exists elsewhere, unpeered.
type fixture struct {
	t      *tables.Tables
	p      *Plane
	events []datapath.Event
	enis   map[uint64]*Attachment
}

func newFixture(tb testing.TB) *fixture {
	f := &fixture{t: tables.New(1), enis: map[uint64]*Attachment{}}
	tx := f.t.Begin(1)
	for id, addr := range map[uint64]netip.Addr{1: self, 2: host2, 3: host3} {
		must(tb, tx.UpsertHost(tables.Host{ID: id, Underlay: addr, Role: tables.RoleHost, Healthy: true}))
	}
	vpc := func(vni uint32, cidr string, subnets []string, peer netip.Prefix) tables.VPC {
		v := tables.VPC{VNI: vni, ID: uint64(vni), CIDR: netip.MustParsePrefix(cidr), MainRouteTable: uint64(vni)}
		rt := tables.RouteTable{ID: uint64(vni), Routes: []tables.Route{{Dst: v.CIDR, Target: tables.Target{Kind: tables.TargetLocal}}}}
		if peer.IsValid() {
			rt.Routes = append(rt.Routes, tables.Route{Dst: peer, Target: tables.Target{Kind: tables.TargetPeering, ID: 7}})
		}
		v.RouteTables = []tables.RouteTable{rt}
		for i, s := range subnets {
			v.Subnets = append(v.Subnets, tables.Subnet{ID: uint64(vni*10 + uint32(i)), CIDR: netip.MustParsePrefix(s)})
		}
		return v
	}
	r := vpc(red, "10.0.0.0/16", []string{"10.0.1.0/24", "10.0.2.0/24"}, netip.MustParsePrefix("10.1.0.0/16"))
	r.Peerings = []tables.Peering{{ID: 7, PeerVNI: yellow}}
	y := vpc(yellow, "10.1.0.0/16", []string{"10.1.1.0/24"}, netip.MustParsePrefix("10.0.0.0/16"))
	y.Peerings = []tables.Peering{{ID: 7, PeerVNI: red}}
	must(tb, tx.UpsertVPC(r))
	must(tb, tx.UpsertVPC(y))
	for _, m := range []tables.Mapping{
		{VNI: red, IP: a("10.0.1.4"), HostID: 1, ENI: 1},
		{VNI: red, IP: a("10.0.1.5"), HostID: 2, ENI: 2},
		{VNI: red, IP: a("10.0.2.4"), HostID: 1, ENI: 3},
		{VNI: red, IP: a("10.0.1.6"), HostID: 3, ENI: 6},
		{VNI: yellow, IP: a("10.1.1.4"), HostID: 2, ENI: 4},
		{VNI: yellow, IP: a("10.1.1.5"), HostID: 1, ENI: 5},
		{VNI: red, IP: a("10.0.1.8"), HostID: 1, ENI: 8}, // local, never attached
	} {
		must(tb, tx.UpsertMapping(m))
	}
	tx.Commit()
	f.p = New(f.t, Config{Underlay: self, Events: func(e datapath.Event) { f.events = append(f.events, e) }})
	for _, at := range []*Attachment{
		{ENI: 1, VNI: red, IP: a("10.0.1.4"), Subnet: netip.MustParsePrefix("10.0.1.0/24"), Gateway: a("10.0.1.1")},
		{ENI: 3, VNI: red, IP: a("10.0.2.4"), Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: a("10.0.2.1")},
		{ENI: 5, VNI: yellow, IP: a("10.1.1.5"), Subnet: netip.MustParsePrefix("10.1.1.0/24"), Gateway: a("10.1.1.1")},
	} {
		f.p.Attach(at)
		f.enis[at.ENI] = at
	}
	return f
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// udpPacket builds an IPv4/UDP packet with payload size n at buf[Headroom:].
func udpPacket(buf []byte, src, dst string, n int, ttl uint8, df bool) int {
	total := packet.IPv4MinSize + packet.UDPMinSize + n
	b := buf[packet.Headroom : packet.Headroom+total]
	var flags uint8
	if df {
		flags = packet.IPv4FlagDF
	}
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(total), TTL: ttl, Flags: flags, Protocol: packet.ProtoUDP, Src: a(src), Dst: a(dst)})
	u := packet.UDP(b[packet.IPv4MinSize:])
	u.SetSrcPort(40000)
	u.SetDstPort(53)
	u.SetLength(uint16(packet.UDPMinSize + n))
	u.ComputeChecksum(a(src), a(dst))
	return total
}

// wire encapsulates an inner packet as another host would, into a UDP
// payload: VNI dst, SourceVPC src.
func wire(buf []byte, n int, vni, srcVNI uint32) []byte {
	start, ok := packet.EncapsulateGeneve(buf, n, vni, packet.GeneveOptions{SourceVNI: srcVNI})
	if !ok {
		panic("encapsulate")
	}
	return buf[start : packet.Headroom+n]
}

func TestEgress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		src, dst  string
		size      int
		ttl       uint8
		df        bool
		want      datapath.Verdict
		toHost    netip.Addr
		vni       uint32
		toENI     uint64
		wantTTL   uint8
		replyType uint8
	}{
		{name: "same subnet, other host", src: "10.0.1.4", dst: "10.0.1.5", ttl: 64, want: datapath.Forwarded, toHost: host2, vni: red, wantTTL: 64},
		{name: "other subnet, same host: the router hop", src: "10.0.1.4", dst: "10.0.2.4", ttl: 64, want: datapath.Delivered, toENI: 3, wantTTL: 63},
		{name: "peered VPC, other host", src: "10.0.1.4", dst: "10.1.1.4", ttl: 64, want: datapath.Forwarded, toHost: host2, vni: yellow, wantTTL: 63},
		{name: "peered VPC, same host", src: "10.0.1.4", dst: "10.1.1.5", ttl: 64, want: datapath.Delivered, toENI: 5, wantTTL: 63},
		{name: "unpeered VPC", src: "10.0.1.4", dst: "10.2.1.4", ttl: 64, want: datapath.NoRoute},
		{name: "no such instance", src: "10.0.1.4", dst: "10.0.1.99", ttl: 64, want: datapath.NoMapping},
		{name: "spoofed source", src: "10.0.1.77", dst: "10.0.1.5", ttl: 64, want: datapath.SpoofedSource},
		{name: "TTL runs out at the router", src: "10.0.1.4", dst: "10.0.2.4", ttl: 1, want: datapath.TTLExceeded, replyType: packet.ICMPv4TimeExceeded},
		{name: "TTL 1 inside the subnet is fine", src: "10.0.1.4", dst: "10.0.1.5", ttl: 1, want: datapath.Forwarded, toHost: host2, vni: red, wantTTL: 1},
		{name: "too big with DF", src: "10.0.1.4", dst: "10.0.1.5", size: 1500, ttl: 64, df: true, want: datapath.TooBig, replyType: packet.ICMPv4DstUnreachable},
		{name: "too big without DF", src: "10.0.1.4", dst: "10.0.1.5", size: 1500, ttl: 64, want: datapath.TooBig},
		{name: "local but not attached", src: "10.0.1.4", dst: "10.0.1.8", ttl: 64, want: datapath.NoPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			buf := make([]byte, 2048)
			n := udpPacket(buf, tc.src, tc.dst, tc.size+10, tc.ttl, tc.df)
			var r Result
			scratch := make([]byte, ScratchSize)
			f.p.Egress(f.t.Load(), f.enis[1], buf, n, scratch, &r)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", r.Verdict, tc.want)
			}
			switch tc.want {
			case datapath.Forwarded:
				var e packet.Encap
				if !packet.ParseGenevePayload(r.Payload, &e) {
					t.Fatal("forwarded payload does not parse")
				}
				if r.Dst != tc.toHost || e.VNI != tc.vni || e.Options.SourceVNI != red || e.Inner.TTL() != tc.wantTTL || !e.Inner.ChecksumValid() {
					t.Fatalf("forwarded to %v VNI %d source VNI %d TTL %d", r.Dst, e.VNI, e.Options.SourceVNI, e.Inner.TTL())
				}
				if r.SrcPort < 49152 {
					t.Fatalf("source port %d is not from the flow hash range", r.SrcPort)
				}
			case datapath.Delivered:
				ip := packet.IPv4(r.Packet)
				if r.To.ENI != tc.toENI || ip.TTL() != tc.wantTTL || !ip.ChecksumValid() || ip.Dst() != a(tc.dst) {
					t.Fatalf("delivered to ENI %d, TTL %d, checksum ok %v", r.To.ENI, ip.TTL(), ip.ChecksumValid())
				}
			}
			if tc.replyType != 0 {
				checkICMPError(t, r.Reply, tc.replyType, a(tc.src))
			} else if r.Reply != nil {
				t.Fatalf("unexpected reply %x", r.Reply)
			}
			if tc.want.Attack() != (len(f.events) == 1) {
				t.Fatalf("events %v for verdict %v", f.events, tc.want)
			}
		})
	}
}

func checkICMPError(t *testing.T, b []byte, typ uint8, to netip.Addr) {
	t.Helper()
	ip := packet.IPv4(b)
	if !ip.Valid() || !ip.ChecksumValid() || ip.Protocol() != packet.ProtoICMP || ip.Dst() != to || ip.Src() != a("10.0.1.1") {
		t.Fatalf("ICMP error header: valid %v from %v to %v", ip.Valid(), ip.Src(), ip.Dst())
	}
	icmp := packet.ICMPv4(ip.Payload())
	if icmp.Type() != typ || icmp.ComputeChecksum() != icmp.Checksum() {
		t.Fatalf("ICMP type %d checksum %x (want %x)", icmp.Type(), icmp.Checksum(), icmp.ComputeChecksum())
	}
	if typ == packet.ICMPv4DstUnreachable && (icmp.Code() != packet.ICMPv4FragNeeded || icmp.MTU() != DefaultMTU) {
		t.Fatalf("frag needed: code %d MTU %d", icmp.Code(), icmp.MTU())
	}
	quoted := packet.IPv4(icmp.Payload())
	if quoted.Src() != to {
		t.Fatalf("quoted packet from %v", quoted.Src())
	}
}

func TestIngress(t *testing.T) {
	for _, tc := range []struct {
		name           string
		from           netip.Addr
		src, dst       string
		vni, sourceVNI uint32
		want           datapath.Verdict
		toENI          uint64
	}{
		{name: "same VPC", from: host2, src: "10.0.1.5", dst: "10.0.1.4", vni: red, sourceVNI: red, want: datapath.Delivered, toENI: 1},
		{name: "peered VPC", from: host2, src: "10.1.1.4", dst: "10.0.1.4", vni: red, sourceVNI: yellow, want: datapath.Delivered, toENI: 1},
		{name: "unknown sender", from: a("127.0.1.9"), src: "10.0.1.5", dst: "10.0.1.4", vni: red, sourceVNI: red, want: datapath.UnknownSender},
		{name: "not local", from: host2, src: "10.0.1.5", dst: "10.0.1.6", vni: red, sourceVNI: red, want: datapath.NotLocal},
		{name: "no such destination", from: host2, src: "10.0.1.5", dst: "10.0.1.99", vni: red, sourceVNI: red, want: datapath.NotLocal},
		{name: "green claims its way into red", from: host2, src: "10.2.1.4", dst: "10.0.1.4", vni: red, sourceVNI: green, want: datapath.NotPeered},
		{name: "host 3 forges host 2's instance", from: host3, src: "10.0.1.5", dst: "10.0.1.4", vni: red, sourceVNI: red, want: datapath.SenderMismatch},
		{name: "forged source VPC on a real address", from: host2, src: "10.0.1.5", dst: "10.0.1.4", vni: red, sourceVNI: yellow, want: datapath.SenderMismatch},
		{name: "local but not attached", from: host2, src: "10.0.1.5", dst: "10.0.1.8", vni: red, sourceVNI: red, want: datapath.NoPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			buf := make([]byte, 2048)
			n := udpPacket(buf, tc.src, tc.dst, 32, 64, false)
			var r Result
			f.p.Ingress(f.t.Load(), tc.from, wire(buf, n, tc.vni, tc.sourceVNI), &r)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", r.Verdict, tc.want)
			}
			if tc.want == datapath.Delivered && (r.To.ENI != tc.toENI || packet.IPv4(r.Packet).Src() != a(tc.src)) {
				t.Fatalf("delivered to %d", r.To.ENI)
			}
			if tc.want.Attack() {
				if len(f.events) != 1 || f.events[0].Verdict != tc.want || f.events[0].OuterSrc != tc.from || f.events[0].ClaimedVNI != tc.sourceVNI {
					t.Fatalf("events %+v", f.events)
				}
			} else if len(f.events) != 0 {
				t.Fatalf("events %+v", f.events)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	f := newFixture(t)
	buf := make([]byte, 2048)
	n := udpPacket(buf, "10.0.1.5", "10.0.1.4", 32, 64, false)
	good := append([]byte(nil), wire(buf, n, red, red)...)
	var r Result
	for cut := 0; cut < len(good); cut++ {
		f.p.Ingress(f.t.Load(), host2, good[:cut], &r)
		if r.Verdict != datapath.Malformed {
			t.Fatalf("truncated to %d bytes: %v", cut, r.Verdict)
		}
	}
	for _, n := range []int{0, 1, 19, 20} {
		eb := make([]byte, packet.Headroom+n)
		f.p.Egress(f.t.Load(), f.enis[1], eb, n, make([]byte, ScratchSize), &r)
		if r.Verdict != datapath.Malformed {
			t.Fatalf("egress of %d garbage bytes: %v", n, r.Verdict)
		}
	}
}

// FuzzIngress: no input from the wire crashes the data plane.
func FuzzIngress(f *testing.F) {
	fx := newFixture(f)
	buf := make([]byte, 2048)
	n := udpPacket(buf, "10.0.1.5", "10.0.1.4", 32, 64, false)
	f.Add(append([]byte(nil), wire(buf, n, red, red)...))
	f.Add([]byte{0, 0, 0x08, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Result
		fx.p.Ingress(fx.t.Load(), host2, b, &r)
		if r.Verdict == datapath.Delivered && len(r.Packet) > len(b) {
			t.Fatal("delivered more than arrived")
		}
	})
}

// FuzzEgress: no packet from an instance crashes the data plane.
func FuzzEgress(f *testing.F) {
	fx := newFixture(f)
	buf := make([]byte, 2048)
	n := udpPacket(buf, "10.0.1.4", "10.0.1.5", 32, 64, false)
	f.Add(append([]byte(nil), buf[packet.Headroom:packet.Headroom+n]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1900 {
			return
		}
		eb := make([]byte, packet.Headroom+len(b)+16)
		copy(eb[packet.Headroom:], b)
		var r Result
		fx.p.Egress(fx.t.Load(), fx.enis[1], eb, len(b), make([]byte, ScratchSize), &r)
	})
}

func TestNoAllocations(t *testing.T) {
	f := newFixture(t)
	f.p.cfg.Events = func(datapath.Event) {}
	snap := f.t.Load()
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	var r Result
	for _, dst := range []string{"10.0.1.5", "10.0.2.4", "10.1.1.4", "10.0.1.99"} {
		n := udpPacket(buf, "10.0.1.4", dst, 64, 64, false)
		allocs := testing.AllocsPerRun(100, func() {
			udpPacket(buf, "10.0.1.4", dst, 64, 64, false)
			f.p.Egress(snap, f.enis[1], buf, n, scratch, &r)
		})
		if allocs != 0 {
			t.Errorf("egress to %s: %.1f allocations per packet", dst, allocs)
		}
	}
	n := udpPacket(buf, "10.0.1.5", "10.0.1.4", 64, 64, false)
	payload := append([]byte(nil), wire(buf, n, red, red)...)
	if allocs := testing.AllocsPerRun(100, func() { f.p.Ingress(snap, host2, payload, &r) }); allocs != 0 {
		t.Errorf("ingress: %.1f allocations per packet", allocs)
	}
}

// BenchmarkPipeline measures egress and ingress per packet next to a
// copy-only loop over the same bytes (the baseline of issue P1).
func BenchmarkPipeline(b *testing.B) {
	for _, size := range []int{64, 1400} {
		f := newFixture(b)
		f.p.cfg.Events = func(datapath.Event) {}
		snap := f.t.Load()
		buf := make([]byte, 2048)
		scratch := make([]byte, ScratchSize)
		var r Result
		payloadLen := size - packet.IPv4MinSize - packet.UDPMinSize
		b.Run(fmt.Sprintf("egress/%dB", size), func(b *testing.B) {
			n := udpPacket(buf, "10.0.1.4", "10.0.1.5", payloadLen, 64, false)
			orig := append([]byte(nil), buf[packet.Headroom:packet.Headroom+n]...)
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(buf[packet.Headroom:], orig[:packet.IPv4MinSize]) // undo nothing but the header
				f.p.Egress(snap, f.enis[1], buf, n, scratch, &r)
			}
		})
		b.Run(fmt.Sprintf("ingress/%dB", size), func(b *testing.B) {
			n := udpPacket(buf, "10.0.1.5", "10.0.1.4", payloadLen, 64, false)
			payload := append([]byte(nil), wire(buf, n, red, red)...)
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				f.p.Ingress(snap, host2, payload, &r)
			}
		})
		b.Run(fmt.Sprintf("copy-baseline/%dB", size), func(b *testing.B) {
			src, dst := make([]byte, size), make([]byte, size+packet.Headroom)
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(dst[packet.Headroom:], src)
			}
		})
	}
}
