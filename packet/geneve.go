package packet

import "encoding/binary"

// Geneve is a view of a Geneve header (RFC 8926), the UDP payload on port 6081:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Virtual Network Identifier (VNI)       |    Reserved   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Variable-Length Options                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Opt Len counts 4-byte words of options. O marks a control (OAM) packet, C says a critical
// option is present. Each option is
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Option Class         |      Type     |R|R|R| Length  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             Option Data (Length × 4 bytes)                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// and the high bit of Type marks it critical: a receiver that does not know a critical
// option must drop the packet.
type Geneve []byte

const (
	geneveVerOptLen = 0
	geneveFlags     = 1
	geneveProtocol  = 2
	geneveVNI       = 4
	geneveOAMBit    = 0x80
	geneveCritBit   = 0x40
	geneveOptHdrLen = 4
)

const (
	// GenevePort is the IANA UDP port of Geneve.
	GenevePort = 6081
	// GeneveMinSize is the length of a Geneve header without options.
	GeneveMinSize = 8
	// GeneveProtoIPv4 is the protocol type (an EtherType) of an IPv4 payload.
	GeneveProtoIPv4 = 0x0800
	// MaxVNI is the largest 24-bit virtual network identifier.
	MaxVNI = 1<<24 - 1
	// GeneveOptCritical is the bit of an option type that makes the option critical.
	GeneveOptCritical = 0x80
)

// Valid reports whether b holds a version-0 Geneve header with all its options. RFC 8926
// says a packet of unknown version must be dropped.
func (b Geneve) Valid() bool {
	return len(b) >= GeneveMinSize && b.Version() == 0 && b.HeaderLen() <= len(b)
}

// Version returns the version field (0).
func (b Geneve) Version() uint8 { return b[geneveVerOptLen] >> 6 }

// OptLen returns the length of the options in 4-byte words.
func (b Geneve) OptLen() uint8 { return b[geneveVerOptLen] & 0x3f }

// HeaderLen returns the length of the header and its options in bytes.
func (b Geneve) HeaderLen() int { return GeneveMinSize + 4*int(b.OptLen()) }

// OAM reports whether the O bit is set: a control packet, never delivered to an instance.
func (b Geneve) OAM() bool { return b[geneveFlags]&geneveOAMBit != 0 }

// Critical reports whether the C bit is set: at least one option is critical.
func (b Geneve) Critical() bool { return b[geneveFlags]&geneveCritBit != 0 }

// ProtocolType returns the EtherType of the payload (GeneveProtoIPv4).
func (b Geneve) ProtocolType() uint16 { return binary.BigEndian.Uint16(b[geneveProtocol:]) }

// VNI returns the 24-bit virtual network identifier: the destination VPC.
func (b Geneve) VNI() uint32 { return binary.BigEndian.Uint32(b[geneveVNI:]) >> 8 }

// SetVNI sets the VNI, which must fit in 24 bits, keeping the reserved byte.
func (b Geneve) SetVNI(vni uint32) {
	binary.BigEndian.PutUint32(b[geneveVNI:], vni<<8|uint32(b[geneveVNI+3]))
}

// RawOptions returns the options' bytes. It needs Valid.
func (b Geneve) RawOptions() []byte { return b[GeneveMinSize:b.HeaderLen()] }

// Payload returns the bytes after the options: the inner packet. It needs Valid.
func (b Geneve) Payload() []byte { return b[b.HeaderLen():] }

// OptionIter returns an iterator over the options. It needs Valid.
func (b Geneve) OptionIter() GeneveOptionIter { return GeneveOptionIter{rest: b.RawOptions()} }

// GeneveOption is one option; Data is a sub-slice of the packet.
type GeneveOption struct {
	Class uint16
	Type  uint8
	Data  []byte
}

// Critical reports whether the option is critical (the high bit of its type).
func (o GeneveOption) Critical() bool { return o.Type&GeneveOptCritical != 0 }

// GeneveOptionIter walks the options of a Geneve header without allocating:
//
//	it := g.OptionIter()
//	for opt, ok := it.Next(); ok; opt, ok = it.Next() { ... }
//	if it.Malformed() { drop }
type GeneveOptionIter struct {
	rest      []byte
	malformed bool
}

// Next returns the next option, or false at the end or at an option that overruns the
// options area; Malformed tells the two apart.
func (it *GeneveOptionIter) Next() (GeneveOption, bool) {
	if len(it.rest) == 0 {
		return GeneveOption{}, false
	}
	if len(it.rest) < geneveOptHdrLen {
		return it.fail()
	}
	n := geneveOptHdrLen + 4*int(it.rest[3]&0x1f)
	if n > len(it.rest) {
		return it.fail()
	}
	opt := GeneveOption{
		Class: binary.BigEndian.Uint16(it.rest),
		Type:  it.rest[2],
		Data:  it.rest[geneveOptHdrLen:n:n], // capped: appending must not overwrite the next option
	}
	it.rest = it.rest[n:]
	return opt, true
}

func (it *GeneveOptionIter) fail() (GeneveOption, bool) {
	it.rest, it.malformed = nil, true
	return GeneveOption{}, false
}

// Malformed reports whether iteration stopped at an option that overran the options area.
func (it *GeneveOptionIter) Malformed() bool { return it.malformed }
