package vpn

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/packet"
)

func TestBGPSession(t *testing.T) {
	vpc := netip.MustParsePrefix("10.0.0.0/16")
	et := &pb.EdgeTunnel{Config: &pb.VpnTunnel{InsideCidr: "169.254.20.4/30"}, Bgp: &pb.EdgeTunnelBgp{LocalAsn: 64512, PeerAsn: 65000}}
	s, err := bgpSession(et, vpc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.LocalAddr != netip.MustParseAddr("169.254.20.5") || s.PeerAddr != netip.MustParseAddr("169.254.20.6") ||
		s.LocalASN != 64512 || s.PeerASN != 65000 || s.Hold != 30*time.Second || s.Keepalive != 10*time.Second || !slices.Equal(s.Announce, []netip.Prefix{vpc}) {
		t.Fatalf("session %+v", s)
	}
	if s, err := bgpSession(et, vpc, 9*time.Second); err != nil || s.Keepalive != 3*time.Second {
		t.Fatalf("hold 9 s: %+v %v", s, err)
	}
	for _, bad := range []*pb.EdgeTunnel{
		{Config: &pb.VpnTunnel{InsideCidr: "169.254.20.4/29"}, Bgp: et.Bgp},
		{Config: et.Config, Bgp: &pb.EdgeTunnelBgp{LocalAsn: 65000, PeerAsn: 65000}},
		{Config: et.Config},
	} {
		if _, err := bgpSession(bad, vpc, 0); err == nil {
			t.Errorf("bgpSession(%v) accepted", bad)
		}
	}
	if _, err := bgpSession(et, vpc, time.Second); err == nil || !strings.Contains(err.Error(), "hold") {
		t.Errorf("hold 1 s: %v", err)
	}
}

func TestUsableLearned(t *testing.T) {
	vpc := netip.MustParsePrefix("10.0.0.0/16")
	in := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.0.5.0/24"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("169.254.1.0/24"), netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}
	got := usableLearned(in, vpc)
	want := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}
	if !slices.Equal(got, want) {
		t.Fatalf("usableLearned = %v, want %v", got, want)
	}
	if got := usableLearned(nil, vpc); len(got) != 0 {
		t.Fatalf("nothing learned: %v", got)
	}
}

func FuzzUsableLearned(f *testing.F) {
	f.Add([]byte{192, 168, 0, 0, 16, 10, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		vpc := netip.MustParsePrefix("10.0.0.0/16")
		var in []netip.Prefix
		for len(b) >= 5 {
			p, err := netip.AddrFrom4([4]byte(b[:4])).Prefix(int(b[4] % 33))
			if err == nil {
				in = append(in, p)
			}
			b = b[5:]
		}
		for _, p := range usableLearned(in, vpc) {
			if p.Overlaps(vpc) || p.Bits() == 0 || p.Masked() != p {
				t.Fatalf("kept %v", p)
			}
		}
	})
}

// TestFromSiteBGP: a BGP tunnel whose own session is down (no routes)
// still admits the prefixes the connection's other session learned, and
// nothing else; nothing goes from the VPC into it.
func TestFromSiteBGP(t *testing.T) {
	f := New(Config{EdgeID: "edge-1"})
	f.conns.Store(&[]conn{{id: connID, vni: red, vpc: vpcCIDR, sources: []netip.Prefix{sitePfx}}})
	buf := make([]byte, 2048)
	for _, tc := range []struct {
		name string
		src  netip.Addr
		want datapath.Verdict
	}{
		{"learned by the other tunnel", office, datapath.Forwarded},
		{"learned by none", netip.MustParseAddr("198.51.100.9"), datapath.SpoofedSource},
		{"inside the VPC", netip.MustParseAddr("10.0.9.9"), datapath.SpoofedSource},
	} {
		p := syn(buf, tc.src, inst, packet.TCPFlagSYN|packet.TCPFlagACK, 1460)
		if _, _, v := f.FromOutsideTo(nil, p, nil); v != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, v, tc.want)
		}
	}
	if v := f.FromVPC(nil, red, connID, syn(buf, inst, office, packet.TCPFlagSYN, 1460), nil); v != datapath.NoRoute {
		t.Errorf("into a tunnel with no routes of its own: %v, want no-route", v)
	}
	p := syn(buf, office, inst, packet.TCPFlagACK, 0)
	if a := testing.AllocsPerRun(100, func() { f.FromOutsideTo(nil, p, nil) }); a != 0 {
		t.Errorf("FromOutsideTo allocates %.1f times", a)
	}
}
