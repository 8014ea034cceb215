package packet

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv4 is a view of an ICMP message (RFC 792), header first:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Identifier (echo) / unused  | Sequence (echo) / Next-Hop MTU|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   echo data, or the IP header + 8 bytes that caused an error  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The next-hop MTU of "fragmentation needed" is RFC 1191's. The checksum covers the whole
// message and no pseudo-header, so address rewrites leave it alone.
type ICMPv4 []byte

const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpIdent    = 4
	icmpSeq      = 6
	icmpMTU      = 6
)

// ICMPv4MinSize is the length of the ICMP header.
const ICMPv4MinSize = 8

// ICMP types.
const (
	ICMPv4EchoReply      uint8 = 0
	ICMPv4DstUnreachable uint8 = 3
	ICMPv4EchoRequest    uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
)

// ICMP codes: the first group for ICMPv4DstUnreachable, the last for ICMPv4TimeExceeded.
const (
	ICMPv4NetUnreachable  uint8 = 0
	ICMPv4HostUnreachable uint8 = 1
	ICMPv4PortUnreachable uint8 = 3
	ICMPv4FragNeeded      uint8 = 4 // with the next-hop MTU (RFC 1191)
	ICMPv4AdminProhibited uint8 = 13
	ICMPv4TTLExceeded     uint8 = 0 // TTL reached zero in transit
)

// Valid reports whether b holds an ICMP header.
func (b ICMPv4) Valid() bool { return len(b) >= ICMPv4MinSize }

// Type returns the message type (ICMPv4EchoRequest, ...).
func (b ICMPv4) Type() uint8 { return b[icmpType] }

// Code returns the code, whose meaning depends on the type.
func (b ICMPv4) Code() uint8 { return b[icmpCode] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// Ident returns the identifier of an echo request or reply.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Seq returns the sequence number of an echo request or reply.
func (b ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(b[icmpSeq:]) }

// MTU returns the next-hop MTU of a "fragmentation needed" message.
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[icmpMTU:]) }

// Payload returns the bytes after the 8-byte header.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinSize:] }

// SetType sets the message type; the checksum is not updated.
func (b ICMPv4) SetType(t uint8) { b[icmpType] = t }

// SetCode sets the code; the checksum is not updated.
func (b ICMPv4) SetCode(c uint8) { b[icmpCode] = c }

// SetChecksum sets the checksum field.
func (b ICMPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], c) }

// SetIdent sets the echo identifier; the checksum is not updated.
func (b ICMPv4) SetIdent(id uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], id) }

// SetSeq sets the echo sequence number; the checksum is not updated.
func (b ICMPv4) SetSeq(seq uint16) { binary.BigEndian.PutUint16(b[icmpSeq:], seq) }

// SetMTU sets the next-hop MTU and clears the unused half-word before it.
func (b ICMPv4) SetMTU(mtu uint16) {
	binary.BigEndian.PutUint32(b[icmpIdent:], uint32(mtu))
}

// ComputeChecksum returns the checksum of the message, treating the checksum field as zero.
func (b ICMPv4) ComputeChecksum() uint16 {
	return ^Checksum(b[icmpIdent:], Checksum(b[:icmpChecksum], 0))
}

// ICMPErrorSize is the room an ICMP error needs: IPv4 and ICMP headers,
// then the offending packet's header (at most 60 bytes) and 8 bytes of its
// data.
const ICMPErrorSize = IPv4MinSize + ICMPv4MinSize + 60 + 8

// ICMPError writes into b (at least ICMPErrorSize bytes) an ICMP error
// from `from` back to the sender of orig, quoting orig as RFC 792 asks,
// and returns it. mtu is the next-hop MTU for "fragmentation needed".
// b must not overlap orig.
func ICMPError(b []byte, from netip.Addr, orig IPv4, typ, code uint8, mtu uint16) []byte {
	quote := min(len(orig), orig.HeaderLen()+8)
	total := IPv4MinSize + ICMPv4MinSize + quote
	b = b[:total]
	IPv4(b).Encode(&IPv4Fields{
		TotalLen: uint16(total), TTL: DefaultTTL, Protocol: ProtoICMP, Src: from, Dst: orig.Src(),
	})
	icmp := ICMPv4(b[IPv4MinSize:])
	clear(icmp[:ICMPv4MinSize])
	icmp.SetType(typ)
	icmp.SetCode(code)
	if typ == ICMPv4DstUnreachable && code == ICMPv4FragNeeded {
		icmp.SetMTU(mtu)
	}
	copy(icmp[ICMPv4MinSize:], orig[:quote])
	icmp.SetChecksum(0)
	icmp.SetChecksum(icmp.ComputeChecksum())
	return b
}
