package packet

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestChecksumKnown(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint16 // Checksum(in, 0)
	}{
		{"empty", nil, 0},
		{"zeros", make([]byte, 40), 0},
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0xddf2},
		{"odd length pads low byte", []byte{0xab}, 0xab00},
		{"end-around carry", []byte{0xff, 0xff, 0x00, 0x01}, 0x0001},
		{"all ones", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xffff},
		{"all ones, odd", []byte{0xff, 0xff, 0xff}, 0xff00},
	}
	for _, tt := range tests {
		if got := Checksum(tt.in, 0); got != tt.want {
			t.Errorf("%s: Checksum = %#04x, want %#04x", tt.name, got, tt.want)
		}
	}
}

// TestChecksumMatchesReference compares the 8-bytes-at-a-time sum with the obvious one on
// every length up to 300 and every alignment of the tail.
func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 300)
	for n := 0; n <= len(buf); n++ {
		for range 20 {
			fillRand(r, buf[:n])
			initial := uint16(r.Uint32())
			if got, want := Checksum(buf[:n], initial), refChecksum(buf[:n], initial); got != want {
				t.Fatalf("len %d initial %#x: Checksum = %#04x, reference = %#04x", n, initial, got, want)
			}
		}
	}
}

func TestChecksumChains(t *testing.T) {
	b := []byte("openvpc checksums chain over even-length pieces!")
	whole := Checksum(b, 0)
	for i := 0; i <= len(b); i += 2 {
		if got := Checksum(b[i:], Checksum(b[:i], 0)); got != whole {
			t.Errorf("split at %d: %#04x, want %#04x", i, got, whole)
		}
		if got := ChecksumCombine(Checksum(b[:i], 0), Checksum(b[i:], 0)); got != whole {
			t.Errorf("combine at %d: %#04x, want %#04x", i, got, whole)
		}
	}
}

func TestInternetChecksumVerifies(t *testing.T) {
	b := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	c := InternetChecksum(b)
	if c != 0xb861 {
		t.Fatalf("InternetChecksum = %#04x, want 0xb861", c)
	}
	b[10], b[11] = byte(c>>8), byte(c)
	if s := Checksum(b, 0); s != 0xffff {
		t.Errorf("sum with checksum in place = %#04x, want 0xffff", s)
	}
}

// The incremental-update tests rewrite a field with the RFC 1624 helpers and compare with a
// recomputation from scratch, over random packets: for the IPv4 header, TCP and UDP (the
// addresses, through the pseudo-header, and the ports) and ICMP (the echo identifier).

func TestChecksumUpdateIPv4Header(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 60)
	for range 10000 {
		fillRand(r, b)
		ip := randIPv4Header(r, b)
		old, nw := ip.Src().As4(), randAddr(r).As4()
		ip.SetChecksum(ip.ComputeChecksum())
		ip.SetSrc(netip.AddrFrom4(nw))
		got := ChecksumUpdateAddr(ip.Checksum(), old, nw)
		if want := ip.ComputeChecksum(); got != want {
			t.Fatalf("header % x: incremental %#04x, recomputed %#04x", []byte(ip[:ip.HeaderLen()]), got, want)
		}
		// And a 16-bit field: the TTL/protocol word, as a router decrementing TTL does.
		oldWord := uint16(ip[8])<<8 | uint16(ip[9])
		ip.SetChecksum(got)
		ip.SetTTL(ip.TTL() - 1)
		got = ChecksumUpdate16(ip.Checksum(), oldWord, uint16(ip[8])<<8|uint16(ip[9]))
		if want := ip.ComputeChecksum(); got != want {
			t.Fatalf("TTL: incremental %#04x, recomputed %#04x", got, want)
		}
	}
}

func TestChecksumUpdateTCP(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, 200)
	for range 10000 {
		fillRand(r, buf)
		n := r.IntN(100)
		ip := tcpSegment(buf, randAddr(r), randAddr(r), uint16(r.Uint32()), uint16(r.Uint32()), uint8(r.Uint32()), string(buf[100:100+n]))
		tcp := TCP(ip.Payload())

		nw := randAddr(r)
		ip.RewriteSrc(nw)
		checkTCP(t, ip, "RewriteSrc")
		ip.RewriteDst(randAddr(r))
		checkTCP(t, ip, "RewriteDst")

		oldPort, newPort := tcp.SrcPort(), uint16(r.Uint32())
		tcp.SetSrcPort(newPort)
		tcp.SetChecksum(ChecksumUpdate16(tcp.Checksum(), oldPort, newPort))
		checkTCP(t, ip, "port")
	}
}

func checkTCP(t *testing.T, ip IPv4, what string) {
	t.Helper()
	if !ip.ChecksumValid() {
		t.Fatalf("%s: IPv4 header checksum %#04x, recomputed %#04x", what, ip.Checksum(), ip.ComputeChecksum())
	}
	tcp := TCP(ip.Payload())
	if got, want := tcp.Checksum(), tcp.ComputeChecksum(ip.Src(), ip.Dst()); got != want {
		t.Fatalf("%s: TCP checksum incremental %#04x, recomputed %#04x", what, got, want)
	}
}

func TestChecksumUpdateUDP(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, 200)
	for i := range 10000 {
		fillRand(r, buf)
		n := r.IntN(100)
		ip := udpDatagram(buf, randAddr(r), randAddr(r), uint16(r.Uint32()), uint16(r.Uint32()), string(buf[100:100+n]))
		u := UDP(ip.Payload())
		noChecksum := i%10 == 0
		if noChecksum {
			u.SetChecksum(0)
		}

		ip.RewriteSrc(randAddr(r))
		checkUDP(t, ip, noChecksum, "RewriteSrc")
		ip.RewriteDst(randAddr(r))
		checkUDP(t, ip, noChecksum, "RewriteDst")

		oldPort, newPort := u.DstPort(), uint16(r.Uint32())
		u.SetDstPort(newPort)
		u.UpdateChecksum(oldPort, newPort)
		checkUDP(t, ip, noChecksum, "port")
	}
}

func checkUDP(t *testing.T, ip IPv4, noChecksum bool, what string) {
	t.Helper()
	if !ip.ChecksumValid() {
		t.Fatalf("%s: IPv4 header checksum wrong", what)
	}
	u := UDP(ip.Payload())
	want := u.ComputeChecksum(ip.Src(), ip.Dst())
	if noChecksum {
		want = 0
	}
	if got := u.Checksum(); got != want {
		t.Fatalf("%s: UDP checksum incremental %#04x, want %#04x", what, got, want)
	}
}

// TestUDPChecksumZeroResult covers the one case a zero UDP checksum is not "none": a sum
// whose complement is zero goes on the wire as 0xffff, from scratch and incrementally.
func TestUDPChecksumZeroResult(t *testing.T) {
	buf := make([]byte, 64)
	ip := udpDatagram(buf, instA, instB, 1000, 2000, "xx")
	u := UDP(ip.Payload())
	// Choose the payload so that the total sum is 0xffff, i.e. the checksum is 0.
	u.Payload()[0], u.Payload()[1] = 0, 0
	s := PseudoHeaderChecksum(ProtoUDP, instA.As4(), instB.As4(), u.Length())
	s = Checksum(u[:6], s)
	fill := ^s // makes the sum 0xffff
	u.Payload()[0], u.Payload()[1] = byte(fill>>8), byte(fill)
	if got := u.ComputeChecksum(instA, instB); got != 0xffff {
		t.Fatalf("ComputeChecksum = %#04x, want 0xffff", got)
	}
	// Incrementally: start from a packet whose port differs, then set the port back.
	u.SetSrcPort(1001)
	u.SetChecksum(u.ComputeChecksum(instA, instB))
	u.SetSrcPort(1000)
	u.UpdateChecksum(1001, 1000)
	if got := u.Checksum(); got != 0xffff {
		t.Fatalf("UpdateChecksum gave %#04x, want 0xffff", got)
	}
}

func TestChecksumUpdateICMP(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	buf := make([]byte, 200)
	for range 10000 {
		fillRand(r, buf)
		n := r.IntN(100)
		ip := icmpEcho(buf, randAddr(r), randAddr(r), uint16(r.Uint32()), uint16(r.Uint32()), string(buf[100:100+n]))
		m := ICMPv4(ip.Payload())

		// A NAT rewrites the echo identifier like a port...
		oldID, newID := m.Ident(), uint16(r.Uint32())
		m.SetIdent(newID)
		m.SetChecksum(ChecksumUpdate16(m.Checksum(), oldID, newID))
		if got, want := m.Checksum(), m.ComputeChecksum(); got != want {
			t.Fatalf("ident: incremental %#04x, recomputed %#04x", got, want)
		}
		// ...and an address quoted in the data of an ICMP error, at an even offset.
		if len(m) < 12 {
			continue
		}
		off := 8 + 2*r.IntN((len(m)-12)/2+1)
		old, nw := [4]byte(m[off:]), randAddr(r).As4()
		copy(m[off:], nw[:])
		m.SetChecksum(ChecksumUpdateAddr(m.Checksum(), old, nw))
		if got, want := m.Checksum(), m.ComputeChecksum(); got != want {
			t.Fatalf("quoted address: incremental %#04x, recomputed %#04x", got, want)
		}
		// Address rewrites do not touch the ICMP checksum: it has no pseudo-header.
		before := m.Checksum()
		ip.RewriteSrc(randAddr(r))
		if m.Checksum() != before || !ip.ChecksumValid() {
			t.Fatalf("RewriteSrc on ICMP: checksum %#04x -> %#04x, header valid %v", before, m.Checksum(), ip.ChecksumValid())
		}
	}
}

// TestRewriteFragments: a non-first fragment has no transport header to fix, and a first
// fragment's checksum covers the whole datagram, so it is fixed the same way.
func TestRewriteFragments(t *testing.T) {
	buf := make([]byte, 100)
	ip := tcpSegment(buf, instA, instB, 1, 2, TCPFlagACK, "0123456789")
	payload := append([]byte(nil), ip.Payload()...)
	ip[6] = 0x00
	ip[7] = 0x02 // offset 16 bytes
	ip.SetChecksum(ip.ComputeChecksum())
	ip.RewriteSrc(hostA)
	if !ip.ChecksumValid() {
		t.Fatal("header checksum wrong after rewrite of a fragment")
	}
	if string(ip.Payload()) != string(payload) {
		t.Fatal("RewriteSrc changed the payload of a non-first fragment")
	}
}

func randAddr(r *rand.Rand) netip.Addr {
	var a [4]byte
	fillRand(r, a[:])
	return netip.AddrFrom4(a)
}

// randIPv4Header makes b's first bytes a valid header of random length and content.
func randIPv4Header(r *rand.Rand, b []byte) IPv4 {
	ihl := 5 + r.IntN(11)
	if 4*ihl > len(b) {
		ihl = len(b) / 4
	}
	b[0] = 0x40 | byte(ihl)
	ip := IPv4(b)
	ip.SetTotalLen(uint16(4 * ihl))
	return ip
}

func fillRand(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}
