package packet

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// encapsulated builds inner at Headroom in a fresh buffer and encapsulates it with e.
func encapsulated(t testing.TB, e *Encap, inner func(b []byte) IPv4) []byte {
	t.Helper()
	buf := make([]byte, Headroom+1500)
	in := inner(buf[Headroom:])
	start, ok := Encapsulate(buf, len(in), e)
	if !ok {
		t.Fatalf("Encapsulate(%+v) failed", e)
	}
	return buf[start : Headroom+len(in)]
}

func TestEncapRoundTrip(t *testing.T) {
	inners := map[string]func(b []byte) IPv4{
		"icmp": func(b []byte) IPv4 { return icmpEcho(b, instA, instB, 0x77, 1, "ping") },
		"tcp":  func(b []byte) IPv4 { return tcpSegment(b, instA, instB, 40000, 443, TCPFlagSYN, "") },
		"udp":  func(b []byte) IPv4 { return udpDatagram(b, instA, instB, 5353, 53, "query") },
	}
	options := []GeneveOptions{
		{SourceVNI: 0x000abc},
		{SourceVNI: MaxVNI, SourceFlags: 1, HasEndpoint: true, EndpointID: 0xdeadbeef},
		{SourceVNI: 1, HasTrace: true, TraceID: 0x1234},
		{SourceVNI: 2, HasEndpoint: true, EndpointID: 5, HasTrace: true, TraceID: 6},
	}
	for name, mk := range inners {
		for _, o := range options {
			e := Encap{Src: hostA, Dst: hostB, SrcPort: 50123, VNI: 0x123456, Options: o}
			pkt := encapsulated(t, &e, mk)
			want := mk(make([]byte, 1500))
			if len(pkt) != len(want)+o.Overhead() {
				t.Errorf("%s %+v: %d bytes, want inner %d + overhead %d", name, o, len(pkt), len(want), o.Overhead())
			}

			var got Encap
			if !ParseEncap(pkt, &got) {
				t.Fatalf("%s %+v: ParseEncap failed on\n% x", name, o, pkt)
			}
			if !bytes.Equal(got.Inner, want) {
				t.Errorf("%s: inner\n% x, want\n% x", name, []byte(got.Inner), []byte(want))
			}
			e.DstPort, e.Inner = GenevePort, got.Inner
			if !encapEqual(got, e) {
				t.Errorf("%s: parsed %+v, want %+v", name, got, e)
			}

			outer := IPv4(pkt)
			if !outer.ChecksumValid() || outer.TTL() != 64 || !outer.DF() || outer.ID() != 0 || outer.TOS() != 0 {
				t.Errorf("%s: outer header % x", name, pkt[:20])
			}
			if u := UDP(outer.Payload()); u.Checksum() != 0 || int(u.Length()) != len(pkt)-20 {
				t.Errorf("%s: UDP header % x", name, pkt[20:28])
			}
		}
	}
}

func encapEqual(a, b Encap) bool {
	return a.Src == b.Src && a.Dst == b.Dst && a.SrcPort == b.SrcPort && a.DstPort == b.DstPort &&
		a.VNI == b.VNI && a.Options == b.Options && bytes.Equal(a.Inner, b.Inner)
}

// TestEncapBytes pins the wire format of the common case, byte for byte.
func TestEncapBytes(t *testing.T) {
	e := Encap{Src: hostA, Dst: hostB, SrcPort: 0xc001, VNI: 0x000102, Options: GeneveOptions{SourceVNI: 0x030405, SourceFlags: 6}}
	pkt := encapsulated(t, &e, func(b []byte) IPv4 { return icmpEcho(b, instA, instB, 1, 1, "") })
	want := []byte{
		0x45, 0x00, 0x00, 0x48, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, // IPv4, len 72, DF, TTL 64, UDP
		192, 0, 2, 10, 198, 51, 100, 20,
		0xc0, 0x01, 0x17, 0xc1, 0x00, 0x34, 0x00, 0x00, // UDP 49153 -> 6081, len 52, no checksum
		0x02, 0x00, 0x08, 0x00, 0x00, 0x01, 0x02, 0x00, // Geneve: 2 words of options, IPv4, VNI 0x102
		0xff, 0xf0, 0x01, 0x01, 0x03, 0x04, 0x05, 0x06, // SourceVPC
	}
	binary.BigEndian.PutUint16(want[10:], InternetChecksum(want[:20]))
	if !bytes.Equal(pkt[:Overhead], want) {
		t.Errorf("outer headers\n% x, want\n% x", pkt[:Overhead], want)
	}
}

func TestEncapsulateRefuses(t *testing.T) {
	good := Encap{Src: hostA, Dst: hostB, VNI: 1}
	tests := []struct {
		name     string
		bufLen   int
		innerLen int
		e        Encap
	}{
		{"inner past buffer", Headroom + 10, 11, good},
		{"buffer shorter than headroom", Headroom - 1, 0, good},
		{"negative inner", Headroom + 10, -1, good},
		{"too big for IPv4", Headroom + 65535, 65535 - Overhead + 1, good},
		{"IPv6 source", Headroom + 10, 10, Encap{Src: mustAddr("2001:db8::1"), Dst: hostB, VNI: 1}},
		{"zero destination", Headroom + 10, 10, Encap{Src: hostA, VNI: 1}},
		{"VNI too big", Headroom + 10, 10, Encap{Src: hostA, Dst: hostB, VNI: MaxVNI + 1}},
	}
	for _, tt := range tests {
		if _, ok := Encapsulate(make([]byte, tt.bufLen), tt.innerLen, &tt.e); ok {
			t.Errorf("%s: Encapsulate succeeded", tt.name)
		}
	}
	// The largest packet IPv4 allows is fine.
	if _, ok := Encapsulate(make([]byte, Headroom+65535), 65535-Overhead, &good); !ok {
		t.Error("65535-byte packet refused")
	}
}

// TestEncapsulateGeneveForSockets checks the path where a UDP socket adds the outer headers.
func TestEncapsulateGeneveForSockets(t *testing.T) {
	buf := make([]byte, Headroom+100)
	in := tcpSegment(buf[Headroom:], instA, instB, 1, 2, TCPFlagSYN, "")
	o := GeneveOptions{SourceVNI: 3, HasTrace: true, TraceID: 4}
	start, ok := EncapsulateGeneve(buf, len(in), 0xabc, o)
	if !ok || start != Headroom-GeneveMinSize-o.Len() {
		t.Fatalf("EncapsulateGeneve = %d, %v", start, ok)
	}
	got := Encap{Src: hostA, SrcPort: 9}
	if !ParseGenevePayload(buf[start:Headroom+len(in)], &got) {
		t.Fatal("ParseGenevePayload failed")
	}
	if got.VNI != 0xabc || got.Options != o || !bytes.Equal(got.Inner, in) || got.Src != hostA || got.SrcPort != 9 {
		t.Errorf("parsed %+v", got)
	}
}

func TestParseEncapRejects(t *testing.T) {
	base := func() []byte {
		e := Encap{Src: hostA, Dst: hostB, SrcPort: 50000, VNI: 7, Options: GeneveOptions{SourceVNI: 7}}
		return encapsulated(t, &e, func(b []byte) IPv4 { return udpDatagram(b, instA, instB, 1, 2, "data") })
	}
	fixIP := func(b []byte) { IPv4(b).SetChecksum(IPv4(b).ComputeChecksum()) }
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"truncated outer header", func(b []byte) []byte { return b[:19] }},
		{"truncated packet", func(b []byte) []byte { return b[:len(b)-1] }},
		{"bad outer checksum", func(b []byte) []byte { b[10]++; return b }},
		{"not UDP", func(b []byte) []byte { b[9] = ProtoTCP; fixIP(b); return b }},
		{"fragment", func(b []byte) []byte { b[6] |= 0x20; fixIP(b); return b }},
		{"UDP length past IP", func(b []byte) []byte { binary.BigEndian.PutUint16(b[24:], uint16(len(b))); return b }},
		{"UDP length below header", func(b []byte) []byte { binary.BigEndian.PutUint16(b[24:], 7); return b }},
		{"UDP payload cuts Geneve", func(b []byte) []byte { binary.BigEndian.PutUint16(b[24:], 8+7); return b }},
		{"Geneve version 1", func(b []byte) []byte { b[28] |= 0x40; return b }},
		{"Geneve OAM", func(b []byte) []byte { b[29] |= 0x80; return b }},
		{"Geneve not IPv4", func(b []byte) []byte { b[30], b[31] = 0x86, 0xdd; return b }},
		{"opt len past packet", func(b []byte) []byte { b[28] = 0x3f; return b }},
		{"SourceVPC missing", func(b []byte) []byte { b[38] = 0x05; return b }},
		{"unknown critical option", func(b []byte) []byte { b[38] = 0x85; return b }},
		{"inner not IPv4", func(b []byte) []byte { b[44] = 0x60; return b }},
		{"inner truncated", func(b []byte) []byte { b[47]++; return b }},
		{"no inner", func(b []byte) []byte {
			b = b[:44]
			binary.BigEndian.PutUint16(b[2:], 44)
			binary.BigEndian.PutUint16(b[24:], 24)
			fixIP(b)
			return b
		}},
	}
	var e Encap
	if !ParseEncap(base(), &e) {
		t.Fatal("base packet rejected")
	}
	for _, tt := range tests {
		if ParseEncap(tt.mutate(base()), &e) {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// TestParseEncapTrims: link padding after the UDP datagram, and after the inner packet,
// is not part of Inner.
func TestParseEncapTrims(t *testing.T) {
	e := Encap{Src: hostA, Dst: hostB, VNI: 7, Options: GeneveOptions{SourceVNI: 7}}
	pkt := encapsulated(t, &e, func(b []byte) IPv4 { return icmpEcho(b, instA, instB, 1, 2, "x") })
	inner := append([]byte(nil), pkt[Overhead:]...)
	padded := append(append([]byte(nil), pkt...), 0, 0, 0, 0) // after the outer packet
	var got Encap
	if !ParseEncap(padded, &got) || !bytes.Equal(got.Inner, inner) {
		t.Errorf("outer padding: inner % x", []byte(got.Inner))
	}
	// Padding inside the UDP datagram, after the inner packet.
	padded = append(append([]byte(nil), pkt...), 0, 0)
	binary.BigEndian.PutUint16(padded[2:], uint16(len(padded)))
	binary.BigEndian.PutUint16(padded[24:], uint16(len(padded)-20))
	IPv4(padded).SetChecksum(IPv4(padded).ComputeChecksum())
	if !ParseEncap(padded, &got) || !bytes.Equal(got.Inner, inner) {
		t.Errorf("inner padding: inner % x", []byte(got.Inner))
	}
}

func TestFlowHash(t *testing.T) {
	b1, b2 := make([]byte, 100), make([]byte, 100)
	tests := []struct {
		name       string
		fwd, rev   IPv4
		sameAsPrev bool
	}{
		{"tcp", tcpSegment(b1, instA, instB, 40000, 443, TCPFlagSYN, ""), tcpSegment(b2, instB, instA, 443, 40000, TCPFlagSYN|TCPFlagACK, ""), false},
		{"udp", udpDatagram(b1, instA, instB, 5353, 53, "q"), udpDatagram(b2, instB, instA, 53, 5353, "answer"), false},
		{"icmp echo", icmpEcho(b1, instA, instB, 9, 1, "x"), func() IPv4 {
			ip := icmpEcho(b2, instB, instA, 9, 1, "x")
			ICMPv4(ip.Payload()).SetType(ICMPv4EchoReply)
			return ip
		}(), false},
	}
	for _, tt := range tests {
		f, r := FlowHash(tt.fwd), FlowHash(tt.rev)
		if f != r {
			t.Errorf("%s: forward %#x, reverse %#x", tt.name, f, r)
		}
	}

	// Different ports, different protocols, different addresses: different hashes.
	base := FlowHash(tcpSegment(b1, instA, instB, 40000, 443, 0, ""))
	for name, ip := range map[string]IPv4{
		"sport":    tcpSegment(b2, instA, instB, 40001, 443, 0, ""),
		"dport":    tcpSegment(b2, instA, instB, 40000, 444, 0, ""),
		"swapped":  tcpSegment(b2, instA, instB, 443, 40000, 0, ""),
		"protocol": udpDatagram(b2, instA, instB, 40000, 443, ""),
		"address":  tcpSegment(b2, instA, hostA, 40000, 443, 0, ""),
	} {
		if FlowHash(ip) == base {
			t.Errorf("%s: same hash %#x as the base flow", name, base)
		}
	}

	// Fragments hash without ports: the first and the rest agree.
	first := tcpSegment(b1, instA, instB, 40000, 443, 0, "0123456789")
	first[6] |= 0x20 // MF
	rest := tcpSegment(b2, instA, instB, 1, 2, 0, "0123456789")
	rest[7] = 3 // offset 24
	if FlowHash(first) != FlowHash(rest) {
		t.Error("fragments of one datagram hash differently")
	}
	if FlowHash(IPv4{0x45}) != 0 {
		t.Error("invalid packet hashed")
	}
}

func TestSourcePort(t *testing.T) {
	seen := map[uint16]bool{}
	for h := range uint32(1 << 16) {
		p := SourcePort(h * 2654435761)
		if p < 49152 {
			t.Fatalf("SourcePort(%#x) = %d, below 49152", h, p)
		}
		seen[p] = true
	}
	if len(seen) < 16384*9/10 {
		t.Errorf("65536 hashes reach only %d of 16384 ports", len(seen))
	}
}
