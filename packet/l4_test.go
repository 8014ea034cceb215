package packet

import (
	"bytes"
	"testing"
)

func TestUDPRoundTrip(t *testing.T) {
	buf := make([]byte, 64)
	ip := udpDatagram(buf, instA, instB, 53000, 53, "query")
	u := UDP(ip.Payload())
	if !u.Valid() || u.SrcPort() != 53000 || u.DstPort() != 53 || u.Length() != 13 || string(u.Payload()) != "query" {
		t.Fatalf("read back %d->%d len %d payload %q", u.SrcPort(), u.DstPort(), u.Length(), u.Payload())
	}
	if s := Checksum(u, PseudoHeaderChecksum(ProtoUDP, instA.As4(), instB.As4(), u.Length())); s != 0xffff {
		t.Errorf("checksum does not verify: sum %#04x", s)
	}
}

func TestUDPValid(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"header only", []byte{0, 1, 0, 2, 0, 8, 0, 0}, true},
		{"short", []byte{0, 1, 0, 2, 0, 8, 0}, false},
		{"length below header", []byte{0, 1, 0, 2, 0, 7, 0, 0}, false},
		{"length past buffer", []byte{0, 1, 0, 2, 0, 9, 0, 0}, false},
		{"trailing bytes", []byte{0, 1, 0, 2, 0, 8, 0, 0, 9}, true},
	}
	for _, tt := range tests {
		if got := UDP(tt.b).Valid(); got != tt.want {
			t.Errorf("%s: Valid = %v, want %v", tt.name, got, tt.want)
		}
	}
	if p := UDP([]byte{0, 1, 0, 2, 0, 9, 0, 0, 'x', 'y'}).Payload(); string(p) != "x" {
		t.Errorf("Payload honours the length field: %q", p)
	}
}

func TestTCPRoundTrip(t *testing.T) {
	buf := make([]byte, 64)
	ip := tcpSegment(buf, instA, instB, 40000, 443, TCPFlagSYN|TCPFlagECE|TCPFlagCWR, "hi")
	tcp := TCP(ip.Payload())
	if !tcp.Valid() {
		t.Fatal("not Valid")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"SrcPort", tcp.SrcPort(), uint16(40000)},
		{"DstPort", tcp.DstPort(), uint16(443)},
		{"Seq", tcp.Seq(), uint32(0x01020304)},
		{"Ack", tcp.Ack(), uint32(0)},
		{"DataOffset", tcp.DataOffset(), 20},
		{"Flags", tcp.Flags(), TCPFlagSYN | TCPFlagECE | TCPFlagCWR},
		{"Window", tcp.Window(), uint16(64240)},
		{"UrgentPointer", tcp.UrgentPointer(), uint16(0)},
		{"Payload", string(tcp.Payload()), "hi"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s := Checksum(tcp, PseudoHeaderChecksum(ProtoTCP, instA.As4(), instB.As4(), uint16(len(tcp)))); s != 0xffff {
		t.Errorf("checksum does not verify: sum %#04x", s)
	}
	tcp.SetSrcPort(1)
	tcp.SetDstPort(2)
	tcp.SetChecksum(3)
	if tcp.SrcPort() != 1 || tcp.DstPort() != 2 || tcp.Checksum() != 3 {
		t.Error("setters do not read back")
	}
}

func TestTCPValid(t *testing.T) {
	hdr := func(off byte, n int) []byte {
		b := make([]byte, n)
		if n > 12 {
			b[12] = off << 4
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"minimal", hdr(5, 20), true},
		{"short", hdr(5, 19), false},
		{"offset 4", hdr(4, 20), false},
		{"options fit", hdr(15, 60), true},
		{"options past buffer", hdr(6, 23), false},
	}
	for _, tt := range tests {
		if got := TCP(tt.b).Valid(); got != tt.want {
			t.Errorf("%s: Valid = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestICMPv4RoundTrip(t *testing.T) {
	buf := make([]byte, 64)
	ip := icmpEcho(buf, instA, instB, 0x1234, 7, "ping")
	m := ICMPv4(ip.Payload())
	if !m.Valid() || m.Type() != ICMPv4EchoRequest || m.Code() != 0 || m.Ident() != 0x1234 || m.Seq() != 7 || string(m.Payload()) != "ping" {
		t.Fatalf("read back type %d code %d id %#x seq %d payload %q", m.Type(), m.Code(), m.Ident(), m.Seq(), m.Payload())
	}
	if InternetChecksum(m) != 0 {
		t.Error("checksum does not verify")
	}

	// Frag needed: type 3 code 4, next-hop MTU in the second half of the second word.
	m.SetType(ICMPv4DstUnreachable)
	m.SetCode(ICMPv4FragNeeded)
	m.SetMTU(1456)
	m.SetChecksum(m.ComputeChecksum())
	want := []byte{3, 4, 0, 0, 0, 0, 0x05, 0xb0}
	copy(want[2:4], m[2:4])
	if !bytes.Equal(m[:8], want) || m.MTU() != 1456 || InternetChecksum(m) != 0 {
		t.Errorf("frag needed header % x, want % x", []byte(m[:8]), want)
	}
	if ICMPv4(make([]byte, 7)).Valid() {
		t.Error("7 bytes are Valid")
	}
}

func TestARP(t *testing.T) {
	mac := [6]byte{0x02, 0, 0, 0, 0, 0x01}
	gw := [6]byte{0x02, 0xee, 0xee, 0xee, 0xee, 0xee}
	req := ARP(make([]byte, ARPSize))
	req.Encode(&ARPFields{Op: ARPRequest, SenderHW: mac, SenderIP: instA, TargetIP: instB})
	want := []byte{
		0, 1, 8, 0, 6, 4, 0, 1,
		2, 0, 0, 0, 0, 1, 10, 0, 1, 5,
		0, 0, 0, 0, 0, 0, 10, 0, 2, 7,
	}
	if !bytes.Equal(req, want) {
		t.Fatalf("request\n% x, want\n% x", []byte(req), want)
	}
	if !req.Valid() || req.Op() != ARPRequest || req.SenderHW() != mac || req.SenderIP() != instA || req.TargetHW() != [6]byte{} || req.TargetIP() != instB {
		t.Fatal("request does not read back")
	}

	req.MakeReply(gw)
	if req.Op() != ARPReply || req.SenderHW() != gw || req.SenderIP() != instB || req.TargetHW() != mac || req.TargetIP() != instA {
		t.Errorf("reply: op %d sender %x %v target %x %v", req.Op(), req.SenderHW(), req.SenderIP(), req.TargetHW(), req.TargetIP())
	}
}

func TestARPValid(t *testing.T) {
	good := ARP(make([]byte, ARPSize))
	good.Encode(&ARPFields{Op: ARPRequest, SenderIP: instA, TargetIP: instB})
	for i, tt := range []struct {
		off  int
		val  byte
		want bool
	}{
		{-1, 0, true},
		{1, 6, false},    // hardware type 6 (IEEE 802)
		{2, 0x86, false}, // protocol type 0x86dd
		{4, 8, false},    // hardware length
		{5, 16, false},   // protocol length
	} {
		b := append(ARP(nil), good...)
		if tt.off >= 0 {
			b[tt.off] = tt.val
		}
		if got := b.Valid(); got != tt.want {
			t.Errorf("case %d: Valid = %v, want %v", i, got, tt.want)
		}
	}
	if good[:ARPSize-1].Valid() {
		t.Error("27 bytes are Valid")
	}
}
