package packet

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 is a view of an IPv4 packet (RFC 791), header first:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags are, from the high bit: reserved, DF (don't fragment), MF (more fragments).
// Accessors need at least IPv4MinSize bytes, and Payload needs Valid; see the package doc.
type IPv4 []byte

const (
	ipv4VersIHL  = 0
	ipv4TOS      = 1
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4FlagsFO  = 6
	ipv4TTL      = 8
	ipv4Protocol = 9
	ipv4Checksum = 10
	ipv4SrcAddr  = 12
	ipv4DstAddr  = 16
)

const (
	// IPv4MinSize is the length of a header without options.
	IPv4MinSize = 20
	// IPv4Version is the value of the version field.
	IPv4Version = 4
	// IPv4FlagDF and IPv4FlagMF are the bits of the 3-bit flags field (IPv4.Flags).
	IPv4FlagDF = 0x2
	IPv4FlagMF = 0x1
	// DefaultTTL is the TTL of the packets this package builds.
	DefaultTTL = 64
)

// IP protocol numbers this package knows.
const (
	ProtoICMP uint8 = 1
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
)

// Valid reports whether b holds a well-formed IPv4 header and the whole packet it announces:
// version 4, a header of at least 20 bytes that fits in b, and a total length between the
// header length and len(b). Bytes past the total length (link padding) are allowed.
func (b IPv4) Valid() bool {
	if len(b) < IPv4MinSize || b.Version() != IPv4Version {
		return false
	}
	hl, tl := b.HeaderLen(), int(b.TotalLen())
	return hl >= IPv4MinSize && hl <= tl && tl <= len(b)
}

// Version returns the version field (4 for IPv4).
func (b IPv4) Version() uint8 { return b[ipv4VersIHL] >> 4 }

// HeaderLen returns the header length in bytes (IHL × 4).
func (b IPv4) HeaderLen() int { return int(b[ipv4VersIHL]&0xf) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN).
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLen returns the length of header and payload in bytes.
func (b IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// Flags returns the 3-bit flags field; see IPv4FlagDF and IPv4FlagMF.
func (b IPv4) Flags() uint8 { return b[ipv4FlagsFO] >> 5 }

// DF reports whether the don't-fragment flag is set.
func (b IPv4) DF() bool { return b.Flags()&IPv4FlagDF != 0 }

// MF reports whether the more-fragments flag is set.
func (b IPv4) MF() bool { return b.Flags()&IPv4FlagMF != 0 }

// FragmentOffset returns the fragment offset in bytes (the field counts 8-byte units).
func (b IPv4) FragmentOffset() uint16 {
	return binary.BigEndian.Uint16(b[ipv4FlagsFO:]) << 3
}

// IsFragment reports whether b is part of a fragmented datagram: only the first fragment
// carries the transport header, so port-based logic must not trust the others.
func (b IPv4) IsFragment() bool { return b.MF() || b.FragmentOffset() != 0 }

// TTL returns the time-to-live field.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the protocol of the payload (ProtoTCP, ...).
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Src returns the source address.
func (b IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4SrcAddr:])) }

// Dst returns the destination address.
func (b IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4DstAddr:])) }

// Payload returns the bytes after the header up to the total length. It needs Valid.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():b.TotalLen()] }

// SetTTL sets the time-to-live field; the checksum is not updated.
func (b IPv4) SetTTL(ttl uint8) { b[ipv4TTL] = ttl }

// SetTotalLen sets the total length field; the checksum is not updated.
func (b IPv4) SetTotalLen(n uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], n) }

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], c) }

// SetSrc sets the source address, which must be IPv4; no checksum is updated (RewriteSrc does).
func (b IPv4) SetSrc(a netip.Addr) { putAddr4(b[ipv4SrcAddr:], a) }

// SetDst sets the destination address, which must be IPv4; no checksum is updated.
func (b IPv4) SetDst(a netip.Addr) { putAddr4(b[ipv4DstAddr:], a) }

// ComputeChecksum returns the header checksum, treating the checksum field as zero.
func (b IPv4) ComputeChecksum() uint16 {
	hl := b.HeaderLen()
	return ^ChecksumCombine(Checksum(b[:ipv4Checksum], 0), Checksum(b[ipv4SrcAddr:hl], 0))
}

// ChecksumValid reports whether the header checksum field is correct. It needs Valid.
func (b IPv4) ChecksumValid() bool { return Checksum(b[:b.HeaderLen()], 0) == 0xffff }

// RewriteSrc sets the source address and updates, incrementally (RFC 1624), the header
// checksum and the TCP or UDP checksum that covers it through the pseudo-header: what a
// stateless NAT does. It needs Valid. ICMP checksums do not cover addresses.
func (b IPv4) RewriteSrc(a netip.Addr) { b.rewriteAddr(ipv4SrcAddr, a) }

// RewriteDst is RewriteSrc for the destination address.
func (b IPv4) RewriteDst(a netip.Addr) { b.rewriteAddr(ipv4DstAddr, a) }

func (b IPv4) rewriteAddr(off int, a netip.Addr) {
	old, nw := [4]byte(b[off:]), a.As4()
	copy(b[off:off+4], nw[:])
	b.SetChecksum(ChecksumUpdateAddr(b.Checksum(), old, nw))
	if b.FragmentOffset() != 0 {
		return // the transport header is in the first fragment only
	}
	p := b.Payload()
	switch b.Protocol() {
	case ProtoTCP:
		if len(p) >= TCPMinSize {
			t := TCP(p)
			t.SetChecksum(ChecksumUpdateAddr(t.Checksum(), old, nw))
		}
	case ProtoUDP:
		if len(p) >= UDPMinSize {
			UDP(p).updateChecksumAddr(old, nw)
		}
	}
}

// IPv4Fields are the fields Encode writes. The version is 4 and the header has no options.
type IPv4Fields struct {
	TOS        uint8
	TotalLen   uint16
	ID         uint16
	Flags      uint8  // IPv4FlagDF, IPv4FlagMF
	FragOffset uint16 // in bytes, a multiple of 8
	TTL        uint8
	Protocol   uint8
	Src, Dst   netip.Addr // must be IPv4
}

// Encode writes a 20-byte header from f, with its checksum, at the start of b.
func (b IPv4) Encode(f *IPv4Fields) {
	_ = b[IPv4MinSize-1] // one bounds check for all writes
	b[ipv4VersIHL] = IPv4Version<<4 | IPv4MinSize/4
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsFO:], uint16(f.Flags)<<13|f.FragOffset>>3)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	putAddr4(b[ipv4SrcAddr:], f.Src)
	putAddr4(b[ipv4DstAddr:], f.Dst)
	b.SetChecksum(0)
	b.SetChecksum(InternetChecksum(b[:IPv4MinSize]))
}
