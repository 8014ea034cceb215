package packet

import (
	"net/netip"
	"testing"
)

// A header from a real capture (UDP 192.168.0.1 -> 192.168.0.199), with 4 bytes of payload.
var capturedIPv4 = []byte{
	0x45, 0x00, 0x00, 0x18, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x9d, 0x14,
	0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
	0xde, 0xad, 0xbe, 0xef,
}

func TestIPv4Accessors(t *testing.T) {
	ip := IPv4(append([]byte(nil), capturedIPv4...))
	ip.SetChecksum(ip.ComputeChecksum())
	if !ip.Valid() || !ip.ChecksumValid() {
		t.Fatalf("Valid %v ChecksumValid %v", ip.Valid(), ip.ChecksumValid())
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Version", ip.Version(), uint8(4)},
		{"HeaderLen", ip.HeaderLen(), 20},
		{"TOS", ip.TOS(), uint8(0)},
		{"TotalLen", ip.TotalLen(), uint16(24)},
		{"ID", ip.ID(), uint16(0x1c46)},
		{"Flags", ip.Flags(), uint8(IPv4FlagDF)},
		{"DF", ip.DF(), true},
		{"MF", ip.MF(), false},
		{"FragmentOffset", ip.FragmentOffset(), uint16(0)},
		{"IsFragment", ip.IsFragment(), false},
		{"TTL", ip.TTL(), uint8(64)},
		{"Protocol", ip.Protocol(), ProtoUDP},
		{"Src", ip.Src(), netip.MustParseAddr("192.168.0.1")},
		{"Dst", ip.Dst(), netip.MustParseAddr("192.168.0.199")},
		{"Payload", string(ip.Payload()), "\xde\xad\xbe\xef"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestIPv4EncodeRoundTrip(t *testing.T) {
	tests := []IPv4Fields{
		{TOS: 0xb8, TotalLen: 20, ID: 1, TTL: 1, Protocol: ProtoICMP, Src: instA, Dst: instB},
		{TotalLen: 1500, ID: 0xffff, Flags: IPv4FlagMF, FragOffset: 1480, TTL: 255, Protocol: ProtoTCP, Src: hostA, Dst: hostB},
		{TotalLen: 65535, Flags: IPv4FlagDF, FragOffset: 0xfff8, TTL: 64, Protocol: ProtoUDP, Src: netip.IPv4Unspecified(), Dst: netip.MustParseAddr("255.255.255.255")},
	}
	for _, f := range tests {
		ip := IPv4(make([]byte, IPv4MinSize))
		ip.Encode(&f)
		got := IPv4Fields{
			TOS: ip.TOS(), TotalLen: ip.TotalLen(), ID: ip.ID(), Flags: ip.Flags(),
			FragOffset: ip.FragmentOffset(), TTL: ip.TTL(), Protocol: ip.Protocol(),
			Src: ip.Src(), Dst: ip.Dst(),
		}
		if got != f {
			t.Errorf("Encode(%+v) reads back %+v", f, got)
		}
		if !ip.ChecksumValid() {
			t.Errorf("Encode(%+v): bad checksum %#04x", f, ip.Checksum())
		}
		if ip.IsFragment() != (f.Flags&IPv4FlagMF != 0 || f.FragOffset != 0) {
			t.Errorf("Encode(%+v): IsFragment = %v", f, ip.IsFragment())
		}
	}
}

func TestIPv4Setters(t *testing.T) {
	ip := IPv4(append([]byte(nil), capturedIPv4...))
	ip.SetTTL(3)
	ip.SetSrc(instA)
	ip.SetDst(instB)
	ip.SetTotalLen(22)
	ip.SetChecksum(0xbeef)
	if ip.TTL() != 3 || ip.Src() != instA || ip.Dst() != instB || ip.TotalLen() != 22 || ip.Checksum() != 0xbeef {
		t.Errorf("setters read back TTL %d src %v dst %v len %d sum %#x", ip.TTL(), ip.Src(), ip.Dst(), ip.TotalLen(), ip.Checksum())
	}
	if len(ip.Payload()) != 2 {
		t.Errorf("Payload honours TotalLen: len %d, want 2", len(ip.Payload()))
	}
}

func TestIPv4Valid(t *testing.T) {
	mut := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), capturedIPv4...))
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"captured", capturedIPv4, true},
		{"trailing padding", mut(func(b []byte) []byte { return append(b, 0, 0) }), true},
		{"empty", nil, false},
		{"19 bytes", capturedIPv4[:19], false},
		{"version 6", mut(func(b []byte) []byte { b[0] = 0x65; return b }), false},
		{"IHL 4", mut(func(b []byte) []byte { b[0] = 0x44; return b }), false},
		{"IHL past buffer", mut(func(b []byte) []byte { b[0] = 0x46; b[3] = 24; return b[:23] }), false},
		{"IHL 6 fits", mut(func(b []byte) []byte { b[0] = 0x46; return b }), true},
		{"total length past buffer", mut(func(b []byte) []byte { b[3] = 25; return b }), false},
		{"total length below header", mut(func(b []byte) []byte { b[3] = 19; return b }), false},
		{"total length is header", mut(func(b []byte) []byte { b[3] = 20; return b }), true},
	}
	for _, tt := range tests {
		if got := IPv4(tt.b).Valid(); got != tt.want {
			t.Errorf("%s: Valid = %v, want %v", tt.name, got, tt.want)
		}
	}
}
