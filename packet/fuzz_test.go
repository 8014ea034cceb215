package packet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// Every decoder has a fuzz target. They must never panic, and when a parse succeeds what it
// returns must hold together: sub-slices inside the buffer, lengths consistent, encoders
// and decoders inverse. Targets copy the input before writing to it.

// seedPackets returns well-formed packets of each kind, for the seed corpora.
func seedPackets() [][]byte {
	mk := func(f func(b []byte) IPv4) []byte { return f(make([]byte, 200)) }
	return [][]byte{
		mk(func(b []byte) IPv4 { return icmpEcho(b, instA, instB, 1, 2, "ping") }),
		mk(func(b []byte) IPv4 { return tcpSegment(b, instA, instB, 40000, 443, TCPFlagSYN, "") }),
		mk(func(b []byte) IPv4 { return udpDatagram(b, instA, instB, 5353, 53, "query") }),
		capturedIPv4,
	}
}

func seedEncaps(t testing.TB) [][]byte {
	var out [][]byte
	opts := []GeneveOptions{{SourceVNI: 1}, {SourceVNI: 2, HasEndpoint: true, EndpointID: 3, HasTrace: true, TraceID: 4},
		{SourceVNI: 9, HasTarget: true, Function: 3, Target: 5}}
	for i, in := range seedPackets()[:3] {
		e := Encap{Src: hostA, Dst: hostB, SrcPort: 50000, VNI: 9, Options: opts[i%3]}
		out = append(out, encapsulated(t, &e, func(b []byte) IPv4 { return IPv4(b[:copy(b, in)]) }))
	}
	return out
}

func FuzzIPv4(f *testing.F) {
	for _, p := range seedPackets() {
		f.Add(p, []byte{203, 0, 113, 1})
	}
	f.Add([]byte{0x46, 0, 0, 20}, []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data, addr []byte) {
		ip := IPv4(bytes.Clone(data))
		if !ip.Valid() {
			return
		}
		hl, tl := ip.HeaderLen(), int(ip.TotalLen())
		if hl < IPv4MinSize || hl > tl || tl > len(ip) || len(ip.Payload()) != tl-hl {
			t.Fatalf("Valid but header %d total %d len %d payload %d", hl, tl, len(ip), len(ip.Payload()))
		}
		if !ip.Src().Is4() || !ip.Dst().Is4() {
			t.Fatal("addresses are not IPv4")
		}
		ip.SetChecksum(ip.ComputeChecksum())
		if !ip.ChecksumValid() {
			t.Fatal("ComputeChecksum does not verify")
		}
		FlowHash(ip)
		if len(addr) < 4 {
			return
		}
		// Incremental rewrite agrees with recomputation, given correct checksums to start.
		fixL4Checksums(ip)
		ip.RewriteSrc(netip.AddrFrom4([4]byte(addr)))
		ip.RewriteDst(netip.AddrFrom4([4]byte(addr)))
		if !ip.ChecksumValid() {
			t.Fatal("header checksum wrong after rewrite")
		}
		checkL4Checksums(t, ip)
	})
}

// fixL4Checksums makes the TCP or UDP checksum of an unfragmented packet correct.
func fixL4Checksums(ip IPv4) {
	if ip.IsFragment() {
		return
	}
	switch p := ip.Payload(); ip.Protocol() {
	case ProtoTCP:
		if len(p) >= TCPMinSize {
			TCP(p).SetChecksum(TCP(p).ComputeChecksum(ip.Src(), ip.Dst()))
		}
	case ProtoUDP:
		if u := UDP(p); u.Valid() && u.Checksum() != 0 {
			u.SetChecksum(u.ComputeChecksum(ip.Src(), ip.Dst()))
		}
	}
}

func checkL4Checksums(t *testing.T, ip IPv4) {
	t.Helper()
	if ip.IsFragment() {
		return
	}
	switch p := ip.Payload(); ip.Protocol() {
	case ProtoTCP:
		if len(p) >= TCPMinSize {
			if got, want := TCP(p).Checksum(), TCP(p).ComputeChecksum(ip.Src(), ip.Dst()); got != want {
				t.Fatalf("TCP checksum %#04x after rewrite, want %#04x", got, want)
			}
		}
	case ProtoUDP:
		if u := UDP(p); u.Valid() && u.Checksum() != 0 {
			if got, want := u.Checksum(), u.ComputeChecksum(ip.Src(), ip.Dst()); got != want {
				t.Fatalf("UDP checksum %#04x after rewrite, want %#04x", got, want)
			}
		}
	}
}

func FuzzUDP(f *testing.F) {
	for _, p := range seedPackets() {
		f.Add(p[IPv4MinSize:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u := UDP(bytes.Clone(data))
		if !u.Valid() {
			return
		}
		if len(u.Payload()) != int(u.Length())-UDPMinSize {
			t.Fatalf("payload %d bytes, length field %d", len(u.Payload()), u.Length())
		}
		u.SetChecksum(u.ComputeChecksum(instA, instB))
		n := u.Length()
		if s := Checksum(u[:n], PseudoHeaderChecksum(ProtoUDP, instA.As4(), instB.As4(), n)); s != 0xffff {
			t.Fatalf("checksum does not verify: %#04x", s)
		}
	})
}

func FuzzTCP(f *testing.F) {
	for _, p := range seedPackets() {
		f.Add(p[IPv4MinSize:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tcp := TCP(bytes.Clone(data))
		if !tcp.Valid() {
			return
		}
		if tcp.DataOffset() < TCPMinSize || len(tcp.Payload()) != len(tcp)-tcp.DataOffset() {
			t.Fatalf("data offset %d, payload %d of %d", tcp.DataOffset(), len(tcp.Payload()), len(tcp))
		}
		tcp.SetChecksum(tcp.ComputeChecksum(instA, instB))
		if s := Checksum(tcp, PseudoHeaderChecksum(ProtoTCP, instA.As4(), instB.As4(), uint16(len(tcp)))); s != 0xffff {
			t.Fatalf("checksum does not verify: %#04x", s)
		}
	})
}

func FuzzICMPv4(f *testing.F) {
	for _, p := range seedPackets() {
		f.Add(p[IPv4MinSize:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := ICMPv4(bytes.Clone(data))
		if !m.Valid() {
			return
		}
		_, _, _, _ = m.Type(), m.Code(), m.Ident(), m.MTU()
		if len(m.Payload()) != len(m)-ICMPv4MinSize {
			t.Fatal("payload length")
		}
		m.SetChecksum(m.ComputeChecksum())
		if InternetChecksum(m) != 0 {
			t.Fatal("checksum does not verify")
		}
	})
}

func FuzzARP(f *testing.F) {
	req := ARP(make([]byte, ARPSize))
	req.Encode(&ARPFields{Op: ARPRequest, SenderHW: [6]byte{2, 0, 0, 0, 0, 1}, SenderIP: instA, TargetIP: instB})
	f.Add([]byte(req))
	f.Add(append([]byte(req), 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		a := ARP(bytes.Clone(data))
		if !a.Valid() {
			return
		}
		sender, senderIP, target := a.SenderHW(), a.SenderIP(), a.TargetIP()
		hw := [6]byte{2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
		a.MakeReply(hw)
		if !a.Valid() || a.Op() != ARPReply || a.SenderHW() != hw || a.SenderIP() != target || a.TargetHW() != sender || a.TargetIP() != senderIP {
			t.Fatalf("MakeReply: % x", []byte(a))
		}
	})
}

func FuzzGeneve(f *testing.F) {
	for _, p := range seedEncaps(f) {
		f.Add(p[IPv4MinSize+UDPMinSize:])
	}
	f.Add([]byte(geneveWith(optForeign, optSource, optOursUnkCr)))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := Geneve(data)
		o, ok := ParseGeneveOptions(g)
		if !g.Valid() {
			if ok {
				t.Fatal("options parsed from an invalid header")
			}
			return
		}
		if g.HeaderLen() > len(g) || len(g.RawOptions()) != 4*int(g.OptLen()) {
			t.Fatalf("header %d, options %d, len %d", g.HeaderLen(), len(g.RawOptions()), len(g))
		}
		consumed := 0
		it := g.OptionIter()
		for opt, more := it.Next(); more; opt, more = it.Next() {
			consumed += geneveOptHdrLen + len(opt.Data)
			if len(opt.Data)%4 != 0 || cap(opt.Data) != len(opt.Data) {
				t.Fatalf("option data len %d cap %d", len(opt.Data), cap(opt.Data))
			}
		}
		if !it.Malformed() && consumed != len(g.RawOptions()) {
			t.Fatalf("options consumed %d of %d", consumed, len(g.RawOptions()))
		}
		if !ok {
			return
		}
		// What we parse, we can write; and what we write parses back the same.
		b := make([]byte, GeneveMinSize+o.Len())
		if WriteGeneve(b, g.VNI(), o) != len(b) {
			t.Fatalf("WriteGeneve refused %+v", o)
		}
		if o2, ok := ParseGeneveOptions(Geneve(b)); !ok || o2 != o || Geneve(b).VNI() != g.VNI() {
			t.Fatalf("re-encoded %+v parses as %+v, %v", o, o2, ok)
		}
	})
}

func FuzzParseEncap(f *testing.F) {
	for _, p := range seedEncaps(f) {
		f.Add(p, false)
		f.Add(p, true)
	}
	// fixChecksum lets the fuzzer past the outer header checksum, to the parts behind it.
	f.Fuzz(func(t *testing.T, data []byte, fixChecksum bool) {
		if ip := IPv4(data); fixChecksum && ip.Valid() {
			data = bytes.Clone(data)
			IPv4(data).SetChecksum(IPv4(data).ComputeChecksum())
		}
		var e Encap
		if !ParseEncap(data, &e) {
			return
		}
		// Inner is the sub-slice right after the Geneve header, inside the buffer.
		off := IPv4(data).HeaderLen() + UDPMinSize + Geneve(data[IPv4(data).HeaderLen()+UDPMinSize:]).HeaderLen()
		if off+len(e.Inner) > len(data) || &data[off] != &e.Inner[0] {
			t.Fatalf("Inner (len %d) is not data[%d:] (len %d)", len(e.Inner), off, len(data))
		}
		if !e.Inner.Valid() || int(e.Inner.TotalLen()) != len(e.Inner) {
			t.Fatal("Inner is not a valid packet trimmed to its length")
		}
		if e.VNI > MaxVNI || e.Options.SourceVNI > MaxVNI {
			t.Fatalf("VNIs %#x %#x", e.VNI, e.Options.SourceVNI)
		}
		// Re-encapsulating what we parsed gives a packet that parses the same.
		buf := make([]byte, Headroom+len(e.Inner))
		copy(buf[Headroom:], e.Inner)
		// It always fits: our headers are never longer than the ones parsed, which held
		// at least our options.
		start, ok := Encapsulate(buf, len(e.Inner), &e)
		if !ok {
			t.Fatalf("Encapsulate refused %+v", e)
		}
		var e2 Encap
		if !ParseEncap(buf[start:], &e2) {
			t.Fatal("re-encapsulated packet does not parse")
		}
		e.DstPort = GenevePort
		if !encapEqual(e, e2) {
			t.Fatalf("re-encapsulated packet parses as %+v, want %+v", e2, e)
		}
		if binary.BigEndian.Uint16(buf[start+IPv4MinSize+2:]) != GenevePort {
			t.Fatal("destination port")
		}
	})
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte("openvpc"), uint16(0))
	f.Add(make([]byte, 67), uint16(0xffff))
	f.Fuzz(func(t *testing.T, data []byte, initial uint16) {
		if got, want := Checksum(data, initial), refChecksum(data, initial); got != want {
			t.Fatalf("Checksum = %#04x, reference %#04x", got, want)
		}
	})
}

// FuzzGeneveOptionsFastPath: the straight read of a lone SourceVPC option
// and the iterator agree on every options area.
func FuzzGeneveOptionsFastPath(f *testing.F) {
	f.Add([]byte{0xff, 0xf0, 0x01, 0x01, 0x00, 0x01, 0x02, 0x00})
	f.Add([]byte{0xff, 0xf0, 0x81, 0x01, 0x00, 0x01, 0x02, 0x00})
	f.Add([]byte{0xff, 0xf0, 0x01, 0x21, 0x00, 0x01, 0x02, 0x07})
	// SourceVPC then EdgeTarget: what a host sends an edge.
	f.Add([]byte{0xff, 0xf0, 0x01, 0x01, 0x00, 0x01, 0x02, 0x00, 0xff, 0xf0, 0x84, 0x03, 3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0xff, 0xf0, 0x01, 0x01, 0x00, 0x01, 0x02, 0x00, 0xff, 0xf0, 0x84, 0x02, 3, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, opts []byte) {
		if len(opts) > 252 || len(opts)%4 != 0 {
			return
		}
		g := make(Geneve, GeneveMinSize+len(opts))
		g[0] = byte(len(opts) / 4)
		copy(g[GeneveMinSize:], opts)
		fast, okFast := ParseGeneveOptions(g)
		slow, okSlow := parseOptions(g)
		if okFast != okSlow || fast != slow {
			t.Fatalf("options % x: fast path %+v %v, iterator %+v %v", opts, fast, okFast, slow, okSlow)
		}
	})
}
