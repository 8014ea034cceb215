package nic

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/packet"
)

// superPacket builds a TCP/IPv4 super-packet as a kernel hands it to a
// NIC with TSO: one header, payload bytes of n, the TCP checksum field
// holding the pseudo-header's sum (for the "NIC" to complete).
func superPacket(n int, flags uint8) []byte {
	src, dst := netip.MustParseAddr("10.0.1.4"), netip.MustParseAddr("10.0.1.5")
	pkt := make([]byte, 20+20+n)
	packet.IPv4(pkt).Encode(&packet.IPv4Fields{TotalLen: uint16(len(pkt)), TTL: 64, Flags: packet.IPv4FlagDF, ID: 100, Protocol: packet.ProtoTCP, Src: src, Dst: dst})
	tcp := pkt[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, flags
	for i := range n {
		tcp[20+i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(tcp[16:], packet.PseudoHeaderChecksum(packet.ProtoTCP, src.As4(), dst.As4(), uint16(len(tcp))))
	return pkt
}

func validTCP(t *testing.T, seg []byte) {
	t.Helper()
	ip := packet.IPv4(seg)
	if !ip.Valid() || !ip.ChecksumValid() || int(ip.TotalLen()) != len(seg) {
		t.Fatalf("segment's IPv4 header is not valid: % x", seg[:20])
	}
	if c := packet.Checksum(seg[20:], packet.PseudoHeaderChecksum(packet.ProtoTCP, ip.Src().As4(), ip.Dst().As4(), uint16(len(seg)-20))); c != 0xffff {
		t.Fatalf("segment's TCP checksum is wrong (sum %#x)", c)
	}
}

// TestSplitTCP: a super-packet comes out as MSS-sized segments with
// consecutive sequence numbers, IPv4 ids, valid checksums, and FIN/PSH on
// the last one only; the payload is intact.
func TestSplitTCP(t *testing.T) {
	const mss = 1400
	in := superPacket(5000, 0x18|tcpFlagFIN|tcpFlagCWR) // ACK PSH FIN CWR
	orig := append([]byte(nil), in...)
	bufs, sizes := portBufs(8)
	h := vnetHdr{flags: vnetNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: 40, gsoSize: mss, csumStart: 20, csumOffset: 16}
	if s := segments(h, in); s != 4 {
		t.Fatalf("segments: %d, want 4", s)
	}
	n, err := offloaded(h, in, bufs, sizes)
	if err != nil || n != 4 {
		t.Fatalf("offloaded: %d, %v; want 4 segments", n, err)
	}
	var payload []byte
	for i := range n {
		seg := bufs[i][packet.Headroom : packet.Headroom+sizes[i]]
		validTCP(t, seg)
		if got := binary.BigEndian.Uint32(seg[24:]); got != 1000+uint32(i*mss) {
			t.Errorf("segment %d: seq %d", i, got)
		}
		if got := binary.BigEndian.Uint16(seg[4:]); got != 100+uint16(i) {
			t.Errorf("segment %d: IPv4 id %d", i, got)
		}
		last := i == n-1
		if f := seg[33]; (f&tcpFlagFIN != 0) != last || (f&tcpFlagPSH != 0) != last || (f&tcpFlagCWR != 0) != (i == 0) {
			t.Errorf("segment %d: flags %#x", i, f)
		}
		if !last && len(seg) != 40+mss {
			t.Errorf("segment %d: %d bytes", i, len(seg))
		}
		payload = append(payload, seg[40:]...)
	}
	if string(payload) != string(orig[40:]) {
		t.Error("the segments' payloads are not the super-packet's")
	}
}

// TestCompleteChecksum: a packet the sender left its checksum to the NIC
// for comes out with the checksum it should have.
func TestCompleteChecksum(t *testing.T) {
	in := superPacket(300, 0x10)
	bufs, sizes := portBufs(1)
	p := bufs[0][packet.Headroom : packet.Headroom+len(in)]
	copy(p, in)
	n, err := offloaded(vnetHdr{flags: vnetNeedsCsum, csumStart: 20, csumOffset: 16}, p, bufs, sizes)
	if err != nil || n != 1 || sizes[0] != len(in) {
		t.Fatalf("offloaded: %d, %v", n, err)
	}
	validTCP(t, p)
	if _, err := offloaded(vnetHdr{flags: vnetNeedsCsum, csumStart: 20, csumOffset: 400}, p, bufs, sizes); err == nil {
		t.Error("a checksum offset beyond the packet was accepted")
	}
	if _, err := offloaded(vnetHdr{gsoType: 3}, p, bufs, sizes); err == nil {
		t.Error("UDP fragmentation offload was accepted")
	}
}

// FuzzOffloaded: whatever a packet socket hands over, offloaded neither
// panics nor writes past the buffers, and what it makes of a TCP
// super-packet is valid segments.
func FuzzOffloaded(f *testing.F) {
	f.Add(superPacket(3000, 0x10), uint8(vnetNeedsCsum), uint8(vnetGSOTCPv4), uint16(1400), uint16(20), uint16(16))
	f.Add(superPacket(100, 0x10), uint8(vnetNeedsCsum), uint8(vnetGSONone), uint16(0), uint16(20), uint16(16))
	f.Add([]byte{0x45, 0, 0, 20}, uint8(1), uint8(1), uint16(1), uint16(0), uint16(0))
	bufs, sizes := portBufs(maxSegmentsPerGSO)
	f.Fuzz(func(t *testing.T, in []byte, flags, gsoType uint8, gsoSize, csumStart, csumOffset uint16) {
		h := vnetHdr{flags: flags, gsoType: gsoType, gsoSize: gsoSize, csumStart: csumStart, csumOffset: csumOffset}
		if segments(h, in) > len(bufs) {
			return // Read keeps such a packet for a Read with more buffers
		}
		in = append([]byte(nil), in...)
		n, err := offloaded(h, in, bufs, sizes)
		if err != nil {
			return
		}
		if h.gsoType&^vnetGSOECN == vnetGSOTCPv4 {
			for i := range n {
				validTCP(t, bufs[i][packet.Headroom:packet.Headroom+sizes[i]])
			}
		}
	})
}
