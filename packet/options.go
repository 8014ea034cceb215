package packet

import "encoding/binary"

// openvpc's Geneve options, in the experimental class. Every packet carries SourceVPC;
// EndpointID is critical because a receiver that ignored it would deliver gateway-endpoint
// traffic as if it were ordinary VPC traffic. EdgeTarget is on every packet a host sends
// to an edge: the edge function and target the route chose, so that the edge dispatches
// without deriving the route again; it is critical because an edge that ignored it could
// only guess which function a packet is for.
const (
	GeneveClassOpenVPC  = 0xfff0
	GeneveOptSourceVPC  = 0x01 // 4 bytes: source VNI (24 bits), flags (8 bits)
	GeneveOptEndpointID = 0x82 // 8 bytes, critical
	GeneveOptTraceID    = 0x03 // 4 bytes
	GeneveOptEdgeTarget = 0x84 // 12 bytes, critical: function (8 bits), 24 reserved bits, target id (64 bits)

	sourceVPCDataLen  = 4
	endpointIDDataLen = 8
	traceIDDataLen    = 4
	edgeTargetDataLen = 12
)

// GeneveOptions are the options openvpc puts in a Geneve header.
type GeneveOptions struct {
	SourceVNI   uint32 // VNI of the sending instance's VPC (24 bits)
	SourceFlags uint8
	HasEndpoint bool
	EndpointID  uint64 // a gateway endpoint, for traffic to or from it
	HasTrace    bool
	TraceID     uint32 // set on packets under `openvpc trace`
	// HasTarget marks a packet for an edge function: Function says which
	// (the route target kind, as the data plane numbers it) and Target the
	// id of the gateway, endpoint or interface it is for.
	HasTarget bool
	Function  uint8
	Target    uint64
}

// Len returns the length of the encoded options in bytes.
func (o *GeneveOptions) Len() int {
	n := geneveOptHdrLen + sourceVPCDataLen
	if o.HasEndpoint {
		n += geneveOptHdrLen + endpointIDDataLen
	}
	if o.HasTrace {
		n += geneveOptHdrLen + traceIDDataLen
	}
	if o.HasTarget {
		n += geneveOptHdrLen + edgeTargetDataLen
	}
	return n
}

// Overhead returns the bytes encapsulation with o adds in front of an inner packet:
// outer IPv4, UDP, Geneve and options. It is Overhead with SourceVPC alone.
func (o GeneveOptions) Overhead() int {
	return IPv4MinSize + UDPMinSize + GeneveMinSize + o.Len()
}

// ParseGeneveOptions decodes the options of g. It returns false if g is not Valid, an
// option overruns the options area, one of ours has the wrong length or appears twice,
// SourceVPC is missing, or an option we do not know is critical (RFC 8926 requires
// the drop). Unknown non-critical options are skipped.
func ParseGeneveOptions(g Geneve) (GeneveOptions, bool) {
	var o GeneveOptions
	if !g.Valid() {
		return o, false
	}
	// The common case, SourceVPC alone, read straight: it is byte for byte
	// what the iterator would accept, so the two cannot disagree.
	r := g.RawOptions()
	if len(r) >= geneveOptHdrLen+sourceVPCDataLen && binary.BigEndian.Uint32(r) == sourceVPCHeader {
		o.SourceVNI = binary.BigEndian.Uint32(r[geneveOptHdrLen:]) >> 8
		o.SourceFlags = r[geneveOptHdrLen+3]
		switch r = r[geneveOptHdrLen+sourceVPCDataLen:]; {
		case len(r) == 0:
			return o, true
		case len(r) == geneveOptHdrLen+edgeTargetDataLen && binary.BigEndian.Uint32(r) == edgeTargetHeader:
			// What a host sends an edge: SourceVPC then EdgeTarget, read as straight.
			o.HasTarget, o.Function, o.Target = true, r[geneveOptHdrLen], binary.BigEndian.Uint64(r[geneveOptHdrLen+4:])
			return o, true
		}
	}
	return parseOptions(g)
}

// The headers of SourceVPC and EdgeTarget as 32-bit words: class, type, length.
const (
	sourceVPCHeader  = GeneveClassOpenVPC<<16 | GeneveOptSourceVPC<<8 | sourceVPCDataLen/4
	edgeTargetHeader = GeneveClassOpenVPC<<16 | GeneveOptEdgeTarget<<8 | edgeTargetDataLen/4
)

// parseOptions is ParseGeneveOptions by the iterator, for any options.
func parseOptions(g Geneve) (GeneveOptions, bool) {
	var o GeneveOptions
	var seen uint8
	it := g.OptionIter()
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		if !o.set(opt, &seen) {
			return GeneveOptions{}, false
		}
	}
	if it.Malformed() || seen&seenSource == 0 {
		return GeneveOptions{}, false
	}
	return o, true
}

const (
	seenSource = 1 << iota
	seenEndpoint
	seenTrace
	seenTarget
)

// set stores opt in o, or reports false if the packet must be dropped. A duplicate is
// refused rather than resolved, so that no two readers of a packet can disagree about it.
func (o *GeneveOptions) set(opt GeneveOption, seen *uint8) bool {
	if opt.Class != GeneveClassOpenVPC {
		return !opt.Critical()
	}
	var bit uint8
	switch opt.Type {
	case GeneveOptSourceVPC:
		if len(opt.Data) != sourceVPCDataLen {
			return false
		}
		bit = seenSource
		o.SourceVNI = binary.BigEndian.Uint32(opt.Data) >> 8
		o.SourceFlags = opt.Data[3]
	case GeneveOptEndpointID:
		if len(opt.Data) != endpointIDDataLen {
			return false
		}
		bit = seenEndpoint
		o.HasEndpoint, o.EndpointID = true, binary.BigEndian.Uint64(opt.Data)
	case GeneveOptTraceID:
		if len(opt.Data) != traceIDDataLen {
			return false
		}
		bit = seenTrace
		o.HasTrace, o.TraceID = true, binary.BigEndian.Uint32(opt.Data)
	case GeneveOptEdgeTarget:
		if len(opt.Data) != edgeTargetDataLen {
			return false
		}
		bit = seenTarget
		o.HasTarget, o.Function, o.Target = true, opt.Data[0], binary.BigEndian.Uint64(opt.Data[4:])
	default:
		return !opt.Critical()
	}
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// WriteGeneve writes a Geneve header for an inner IPv4 packet of VPC vni, with options o,
// at the start of b, and returns its length: GeneveMinSize + o.Len(). It returns 0 if b is
// too short or a VNI does not fit in 24 bits.
func WriteGeneve(b []byte, vni uint32, o GeneveOptions) int {
	return writeGeneve(b, vni, &o)
}

func writeGeneve(b []byte, vni uint32, o *GeneveOptions) int {
	if vni > MaxVNI || o.SourceVNI > MaxVNI {
		return 0
	}
	if !o.HasEndpoint && !o.HasTrace && !o.HasTarget {
		// SourceVPC alone, the common case, written straight.
		const n = GeneveMinSize + geneveOptHdrLen + sourceVPCDataLen
		if len(b) < n {
			return 0
		}
		binary.BigEndian.PutUint64(b, uint64((geneveOptHdrLen+sourceVPCDataLen)/4)<<56|uint64(GeneveProtoIPv4)<<32|uint64(vni)<<8)
		binary.BigEndian.PutUint64(b[GeneveMinSize:], uint64(GeneveClassOpenVPC)<<48|uint64(GeneveOptSourceVPC)<<40|
			uint64(sourceVPCDataLen/4)<<32|uint64(o.SourceVNI<<8|uint32(o.SourceFlags)))
		return n
	}
	optLen := o.Len()
	n := GeneveMinSize + optLen
	if len(b) < n {
		return 0
	}
	b[geneveVerOptLen] = uint8(optLen / 4) // version 0
	b[geneveFlags] = 0
	if o.HasEndpoint || o.HasTarget {
		b[geneveFlags] = geneveCritBit
	}
	binary.BigEndian.PutUint16(b[geneveProtocol:], GeneveProtoIPv4)
	binary.BigEndian.PutUint32(b[geneveVNI:], vni<<8)
	o.write(b[GeneveMinSize:n])
	return n
}

// write encodes the options into b, which is exactly o.Len() bytes.
func (o *GeneveOptions) write(b []byte) {
	d := putOptionHeader(b, GeneveOptSourceVPC, sourceVPCDataLen)
	binary.BigEndian.PutUint32(d, o.SourceVNI<<8|uint32(o.SourceFlags))
	b = b[geneveOptHdrLen+sourceVPCDataLen:]
	if o.HasEndpoint {
		d = putOptionHeader(b, GeneveOptEndpointID, endpointIDDataLen)
		binary.BigEndian.PutUint64(d, o.EndpointID)
		b = b[geneveOptHdrLen+endpointIDDataLen:]
	}
	if o.HasTrace {
		d = putOptionHeader(b, GeneveOptTraceID, traceIDDataLen)
		binary.BigEndian.PutUint32(d, o.TraceID)
		b = b[geneveOptHdrLen+traceIDDataLen:]
	}
	if o.HasTarget {
		d = putOptionHeader(b, GeneveOptEdgeTarget, edgeTargetDataLen)
		d[0], d[1], d[2], d[3] = o.Function, 0, 0, 0
		binary.BigEndian.PutUint64(d[4:], o.Target)
	}
}

// putOptionHeader writes the header of one of our options and returns its data area.
func putOptionHeader(b []byte, typ uint8, dataLen int) []byte {
	binary.BigEndian.PutUint16(b, GeneveClassOpenVPC)
	b[2] = typ
	b[3] = uint8(dataLen / 4)
	return b[geneveOptHdrLen : geneveOptHdrLen+dataLen]
}
