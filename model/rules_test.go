package model

import (
	"errors"
	"strings"
	"testing"
)

func i32(n int32) *int32 { return &n }

func TestMatchSpecParse(t *testing.T) {
	ok := []struct {
		spec MatchSpec
		want Match
		str  string
	}{
		{MatchSpec{Protocol: "tcp", Port: "80"}, Match{ProtoTCP, 80, 80}, "tcp:80"},
		{MatchSpec{Protocol: "TCP", Port: "1000-2000"}, Match{ProtoTCP, 1000, 2000}, "tcp:1000-2000"},
		{MatchSpec{Protocol: "udp", Port: "0-65535"}, Match{ProtoUDP, 0, 65535}, "udp:0-65535"},
		{MatchSpec{Protocol: "icmp"}, Match{ProtoICMP, AnyPort, AnyPort}, "icmp"},
		{MatchSpec{Protocol: "icmp", ICMPType: i32(8)}, Match{ProtoICMP, 8, AnyPort}, "icmp:8"},
		{MatchSpec{Protocol: "icmp", ICMPType: i32(3), ICMPCode: i32(4)}, Match{ProtoICMP, 3, 4}, "icmp:3/4"},
		{MatchSpec{Protocol: "all"}, Match{ProtoAll, AnyPort, AnyPort}, "all"},
		{MatchSpec{Protocol: "-1"}, Match{ProtoAll, AnyPort, AnyPort}, "all"},
		{MatchSpec{Protocol: "47"}, Match{47, AnyPort, AnyPort}, "47"},
		{MatchSpec{Protocol: "6", Port: "22"}, Match{ProtoTCP, 22, 22}, "tcp:22"},
	}
	for _, c := range ok {
		got, err := c.spec.Parse()
		if err != nil || got != c.want {
			t.Errorf("%+v: got %+v, %v; want %+v", c.spec, got, err, c.want)
		}
		if got.String() != c.str {
			t.Errorf("%+v: String() = %q, want %q", got, got.String(), c.str)
		}
	}
	bad := []struct {
		spec MatchSpec
		says string
	}{
		{MatchSpec{}, "no protocol"},
		{MatchSpec{Protocol: "sctpx"}, "not known"},
		{MatchSpec{Protocol: "256"}, "0–255"},
		{MatchSpec{Protocol: "tcp"}, "needs a port"},
		{MatchSpec{Protocol: "tcp", Port: "http"}, "not a port"},
		{MatchSpec{Protocol: "tcp", Port: "70000"}, "0–65535"},
		{MatchSpec{Protocol: "tcp", Port: "2000-1000"}, "backwards"},
		{MatchSpec{Protocol: "icmp", Port: "80"}, "tcp and udp only"},
		{MatchSpec{Protocol: "all", Port: "80"}, "tcp and udp only"},
		{MatchSpec{Protocol: "tcp", Port: "80", ICMPType: i32(8)}, "icmp only"},
		{MatchSpec{Protocol: "icmp", ICMPCode: i32(0)}, "needs an ICMP type"},
		{MatchSpec{Protocol: "icmp", ICMPType: i32(300)}, "0–255"},
	}
	for _, c := range bad {
		_, err := c.spec.Parse()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: error %v, want invalid saying %q", c.spec, err, c.says)
		}
	}
}

func TestACLRuleNumber(t *testing.T) {
	for _, n := range []int32{1, 100, 32766} {
		if err := CheckACLRuleNumber(n); err != nil {
			t.Errorf("%d: %v", n, err)
		}
	}
	for _, n := range []int32{0, -1, 32767} {
		if err := CheckACLRuleNumber(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d: %v, want invalid", n, err)
		}
	}
}

// FuzzMatchSpec: any spec parses to a Match that passes Check, or is
// refused as invalid input; never a panic.
func FuzzMatchSpec(f *testing.F) {
	f.Add("tcp", "80", int32(-2), int32(-2))
	f.Add("icmp", "", int32(3), int32(4))
	f.Add("all", "1-2", int32(-1), int32(-2))
	f.Fuzz(func(t *testing.T, proto, port string, typ, code int32) {
		s := MatchSpec{Protocol: proto, Port: port}
		if typ != -2 {
			s.ICMPType = &typ
		}
		if code != -2 {
			s.ICMPCode = &code
		}
		m, err := s.Parse()
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%+v: error %v is not ErrInvalid", s, err)
			}
			return
		}
		if err := m.Check(); err != nil {
			t.Fatalf("%+v parsed to %+v, which fails Check: %v", s, m, err)
		}
	})
}

func TestCheckConntrack(t *testing.T) {
	if err := CheckConntrack(0, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := CheckConntrack(60, 30, 180, 600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		v    [4]uint32
		says string
	}{
		{[4]uint32{59, 0, 0, 0}, "TCP established timeout 59 s is outside 60–432000"},
		{[4]uint32{0, 61, 0, 0}, "UDP timeout"},
		{[4]uint32{0, 0, 181, 0}, "UDP stream timeout"},
		{[4]uint32{0, 0, 0, 601}, "other protocols"},
	} {
		err := CheckConntrack(c.v[0], c.v[1], c.v[2], c.v[3])
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want invalid saying %q", c.v, err, c.says)
		}
	}
}
