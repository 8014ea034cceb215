package packet

import (
	"encoding/binary"
	"net/netip"
)

// Addresses for tests: overlay addresses in 10/8 and underlay ones from documentation
// ranges. Nothing here is ever sent; packets live in memory and pcap files.
var (
	instA = netip.MustParseAddr("10.0.1.5")
	instB = netip.MustParseAddr("10.0.2.7")
	hostA = netip.MustParseAddr("192.0.2.10")
	hostB = netip.MustParseAddr("198.51.100.20")
)

// putIPv4 writes a 20-byte header for a payload of n bytes already at b[20:], with a
// correct checksum, and returns the packet.
func putIPv4(b []byte, proto uint8, src, dst netip.Addr, n int) IPv4 {
	ip := IPv4(b[:IPv4MinSize+n])
	ip.Encode(&IPv4Fields{
		TotalLen: uint16(len(ip)),
		ID:       0x1c46,
		Flags:    IPv4FlagDF,
		TTL:      DefaultTTL,
		Protocol: proto,
		Src:      src,
		Dst:      dst,
	})
	return ip
}

// icmpEcho writes an ICMP echo request from src to dst into b.
func icmpEcho(b []byte, src, dst netip.Addr, id, seq uint16, data string) IPv4 {
	m := ICMPv4(b[IPv4MinSize : IPv4MinSize+ICMPv4MinSize+len(data)])
	m.SetType(ICMPv4EchoRequest)
	m.SetCode(0)
	m.SetIdent(id)
	m.SetSeq(seq)
	copy(m.Payload(), data)
	m.SetChecksum(m.ComputeChecksum())
	return putIPv4(b, ProtoICMP, src, dst, len(m))
}

// tcpSegment writes a TCP segment with flags from src to dst into b.
func tcpSegment(b []byte, src, dst netip.Addr, sport, dport uint16, flags uint8, data string) IPv4 {
	t := TCP(b[IPv4MinSize : IPv4MinSize+TCPMinSize+len(data)])
	t.Encode(&TCPFields{SrcPort: sport, DstPort: dport, Seq: 0x01020304, Flags: flags, Window: 64240})
	copy(t.Payload(), data)
	t.SetChecksum(t.ComputeChecksum(src, dst))
	return putIPv4(b, ProtoTCP, src, dst, len(t))
}

// udpDatagram writes a UDP datagram from src to dst into b.
func udpDatagram(b []byte, src, dst netip.Addr, sport, dport uint16, data string) IPv4 {
	u := UDP(b[IPv4MinSize : IPv4MinSize+UDPMinSize+len(data)])
	u.SetSrcPort(sport)
	u.SetDstPort(dport)
	u.SetLength(uint16(len(u)))
	copy(u.Payload(), data)
	u.SetChecksum(u.ComputeChecksum(src, dst))
	return putIPv4(b, ProtoUDP, src, dst, len(u))
}

// refChecksum is RFC 1071's sum written the obvious way, 16 bits at a time: the oracle
// for the fast one.
func refChecksum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
