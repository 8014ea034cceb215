package vpn

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
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
