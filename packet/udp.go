package packet

import (
	"encoding/binary"
	"net/netip"
)

// UDP is a view of a UDP datagram (RFC 768), header first:
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|   Source Port   | Destination Port|
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
//	|          data octets ...
//	+---------------- ...
//
// Over IPv4 a zero checksum means the sender computed none.
type UDP []byte

const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6
)

// UDPMinSize is the length of the UDP header.
const UDPMinSize = 8

// Valid reports whether b holds a UDP header whose length field covers at least the header
// and at most b.
func (b UDP) Valid() bool {
	if len(b) < UDPMinSize {
		return false
	}
	n := int(b.Length())
	return n >= UDPMinSize && n <= len(b)
}

// SrcPort returns the source port.
func (b UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[udpSrcPort:]) }

// DstPort returns the destination port.
func (b UDP) DstPort() uint16 { return binary.BigEndian.Uint16(b[udpDstPort:]) }

// Length returns the length field: header plus data, in bytes.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[udpLength:]) }

// Checksum returns the checksum field.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[udpChecksum:]) }

// Payload returns the data up to the length field. It needs Valid.
func (b UDP) Payload() []byte { return b[UDPMinSize:b.Length()] }

// SetSrcPort sets the source port; the checksum is not updated.
func (b UDP) SetSrcPort(p uint16) { binary.BigEndian.PutUint16(b[udpSrcPort:], p) }

// SetDstPort sets the destination port; the checksum is not updated.
func (b UDP) SetDstPort(p uint16) { binary.BigEndian.PutUint16(b[udpDstPort:], p) }

// SetLength sets the length field; the checksum is not updated.
func (b UDP) SetLength(n uint16) { binary.BigEndian.PutUint16(b[udpLength:], n) }

// SetChecksum sets the checksum field.
func (b UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[udpChecksum:], c) }

// ComputeChecksum returns the checksum of the datagram (up to the length field, so it
// needs Valid) sent from src to dst, treating the checksum field as zero. A computed zero
// is returned as 0xffff, because zero on the wire means "no checksum".
func (b UDP) ComputeChecksum(src, dst netip.Addr) uint16 {
	n := b.Length()
	s := PseudoHeaderChecksum(ProtoUDP, src.As4(), dst.As4(), n)
	s = Checksum(b[:udpChecksum], s)
	s = Checksum(b[UDPMinSize:n], s)
	return nonZero(^s)
}

// UpdateChecksum adjusts the checksum after a 16-bit word of the datagram or its
// pseudo-header changed from old to new (a NAT rewriting a port), keeping UDP's rules: a
// zero field stays zero, and a zero result is sent as 0xffff.
func (b UDP) UpdateChecksum(old, new uint16) {
	if c := b.Checksum(); c != 0 {
		b.SetChecksum(nonZero(ChecksumUpdate16(c, old, new)))
	}
}

func (b UDP) updateChecksumAddr(old, new [4]byte) {
	if c := b.Checksum(); c != 0 {
		b.SetChecksum(nonZero(ChecksumUpdateAddr(c, old, new)))
	}
}

func nonZero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}
