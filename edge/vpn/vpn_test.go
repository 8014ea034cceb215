package vpn

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

const red = 100

var (
	vpcCIDR = netip.MustParsePrefix("10.0.0.0/16")
	sitePfx = netip.MustParsePrefix("192.168.50.0/24")
	inst    = netip.MustParseAddr("10.0.1.4")
	office  = netip.MustParseAddr("192.168.50.10")
	host1   = netip.MustParseAddr("192.168.0.1")
	self    = netip.MustParseAddr("192.168.0.100")
)

const connID = 0xa1

// syn writes a TCP segment from src to dst at buf[packet.Headroom:] with
// flags and, if mss is not 0, an MSS option; it returns the packet.
func syn(buf []byte, src, dst netip.Addr, flags uint8, mss uint16) packet.IPv4 {
	b := buf[packet.Headroom:]
	hl := packet.TCPMinSize
	if mss != 0 {
		hl += 8 // NOP, NOP, MSS
	}
	t := packet.TCP(b[packet.IPv4MinSize : packet.IPv4MinSize+hl])
	t.Encode(&packet.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: flags, Window: 1000})
	if mss != 0 {
		t[12] = byte(hl/4) << 4
		copy(t[20:], []byte{1, 1, 2, 4, 0, 0, 0, 0})
		binary.BigEndian.PutUint16(t[24:], mss)
		t[26], t[27] = 1, 1
	}
	t.SetChecksum(t.ComputeChecksum(src, dst))
	n := packet.IPv4MinSize + len(t)
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: packet.ProtoTCP, Src: src, Dst: dst})
	return packet.IPv4(b[:n])
}

func mssOf(p packet.IPv4) uint16 { return binary.BigEndian.Uint16(p.Payload()[24:]) }

func checksumOK(p packet.IPv4) bool {
	t := packet.TCP(p.Payload())
	return t.Checksum() == t.ComputeChecksum(p.Src(), p.Dst())
}

// TestClampMSS: a SYN's MSS above what the tunnel carries is lowered, with
// a checksum still right; a small MSS and other segments are untouched.
func TestClampMSS(t *testing.T) {
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		flags     uint8
		mss, want uint16
	}{
		{packet.TCPFlagSYN, 1460, maxMSS},
		{packet.TCPFlagSYN | packet.TCPFlagACK, 8960, maxMSS},
		{packet.TCPFlagSYN, 1200, 1200},
		{packet.TCPFlagACK, 1460, 1460}, // not a SYN: an MSS-looking option is left alone
	} {
		p := syn(buf, inst, office, tc.flags, tc.mss)
		clampMSS(p)
		if got := mssOf(p); got != tc.want || !checksumOK(p) {
			t.Errorf("flags %#x MSS %d: got %d (checksum ok %v), want %d", tc.flags, tc.mss, got, checksumOK(p), tc.want)
		}
	}
	p := syn(buf, inst, office, packet.TCPFlagSYN, 0)
	before := string(p)
	if clampMSS(p); string(p) != before {
		t.Error("a SYN without an MSS option was changed")
	}
	if a := testing.AllocsPerRun(100, func() { clampMSS(syn(buf, inst, office, packet.TCPFlagSYN, 1460)) }); a != 0 {
		t.Errorf("clampMSS allocates %.1f times", a)
	}
}

// FuzzClampMSS: no packet panics it, and a segment whose checksum was
// right still has a right one.
func FuzzClampMSS(f *testing.F) {
	buf := make([]byte, 2048)
	f.Add([]byte(syn(buf, inst, office, packet.TCPFlagSYN, 1460)))
	f.Add([]byte(syn(buf, inst, office, packet.TCPFlagSYN, 0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := packet.IPv4(b)
		if !p.Valid() || int(p.TotalLen()) != len(b) {
			return
		}
		ok := p.Protocol() == packet.ProtoTCP && packet.TCP(p.Payload()).Valid() && checksumOK(p)
		clampMSS(p)
		if ok && !checksumOK(p) {
			t.Fatalf("checksum broken by clamping: % x", b)
		}
	})
}

// vpnFunction is the function with one connection up: red's 10.0.0.0/16
// to the site's 192.168.50.0/24.
func vpnFunction() *Function {
	f := New(Config{EdgeID: "edge-1"})
	f.conns.Store(&[]conn{{id: connID, vni: red, vpc: vpcCIDR, routes: []netip.Prefix{sitePfx}}})
	return f
}

func TestFromVPC(t *testing.T) {
	f := vpnFunction()
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		name     string
		vni      uint32
		target   uint64
		src, dst netip.Addr
		want     datapath.Verdict
	}{
		{"to the site", red, connID, inst, office, datapath.Forwarded},
		{"no tunnel up for that connection", red, 0xb2, inst, office, datapath.NoRoute},
		{"another VPC", 200, connID, inst, office, datapath.NoRoute},
		{"not a site prefix", red, connID, inst, netip.MustParseAddr("192.168.51.1"), datapath.NoRoute},
	} {
		p := syn(buf, tc.src, tc.dst, packet.TCPFlagSYN, 1460)
		if v := f.FromVPC(nil, tc.vni, tc.target, p, nil); v != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, v, tc.want)
		}
	}
	p := syn(buf, inst, office, packet.TCPFlagSYN, 1460)
	if a := testing.AllocsPerRun(100, func() { f.FromVPC(nil, red, connID, p, nil) }); a != 0 {
		t.Errorf("FromVPC allocates %.1f times", a)
	}
}

// TestFromSite: only a source routed to a connection with a tunnel here,
// never one inside the VPC, gets in, into that connection's VPC.
func TestFromSite(t *testing.T) {
	f := vpnFunction()
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		want     datapath.Verdict
	}{
		{"site to instance", office, inst, datapath.Forwarded},
		{"source inside the VPC", netip.MustParseAddr("10.0.9.9"), inst, datapath.SpoofedSource},
		{"source not routed to the connection", netip.MustParseAddr("198.51.100.9"), inst, datapath.SpoofedSource},
		{"destination in no VPC behind a tunnel", office, netip.MustParseAddr("10.9.0.1"), datapath.SpoofedSource},
	} {
		p := syn(buf, tc.src, tc.dst, packet.TCPFlagSYN|packet.TCPFlagACK, 1460)
		vni, target, v := f.FromOutsideTo(nil, p, nil)
		if v != tc.want || v == datapath.Forwarded && (vni != red || target != connID || mssOf(p) != maxMSS) {
			t.Errorf("%s: %v (VNI %d, target %#x, MSS %d), want %v", tc.name, v, vni, target, mssOf(p), tc.want)
		}
	}
	p := syn(buf, office, inst, packet.TCPFlagACK, 0)
	if a := testing.AllocsPerRun(100, func() { f.FromOutsideTo(nil, p, nil) }); a != 0 {
		t.Errorf("FromOutsideTo allocates %.1f times", a)
	}
}

// TestEdgeMarksAndReports: through the edge, a site's packet reaches the
// instance's host marked with the VPN function and the connection (so the
// host checks them), and a spoofed one is dropped with a security event.
func TestEdgeMarksAndReports(t *testing.T) {
	tb := tables.New(100)
	tx := tb.Begin(1)
	for _, h := range []tables.Host{
		{ID: 1, Underlay: host1, Role: tables.RoleHost, Healthy: true},
		{ID: 100, Underlay: self, Role: tables.RoleEdge, Healthy: true},
	} {
		if err := tx.UpsertHost(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.UpsertVPC(tables.VPC{VNI: red, ID: 1, CIDR: vpcCIDR}); err != nil {
		t.Fatal(err)
	}
	if err := tx.UpsertMapping(tables.Mapping{VNI: red, IP: inst, HostID: 1, ENI: 1}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	var events []datapath.Event
	f := vpnFunction()
	x, err := edge.New(tb, edge.Config{Underlay: self, Functions: []edge.Function{f}, Events: func(e datapath.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n := len(syn(buf, office, inst, packet.TCPFlagACK, 0))
	var r edge.InboundResult
	if v := x.Inbound(tb.Load(), f, buf, n, &r); v != datapath.Forwarded || r.Dst != host1 {
		t.Fatalf("site to instance: %v to %v", v, r.Dst)
	}
	var e packet.Encap
	if !packet.ParseGenevePayload(r.Payload, &e) || !e.Options.HasTarget || e.Options.Function != uint8(tables.TargetVPNConnection) || e.Options.Target != connID || e.VNI != red {
		t.Fatalf("to the host: %+v; want marked with the VPN connection", e.Options)
	}
	n = len(syn(buf, netip.MustParseAddr("10.0.9.9"), inst, packet.TCPFlagACK, 0))
	if v := x.Inbound(tb.Load(), f, buf, n, &r); v != datapath.SpoofedSource || len(events) != 1 || events[0].Verdict != datapath.SpoofedSource {
		t.Fatalf("site spoofing a VPC source: %v, events %v", v, events)
	}
}
