package packet

import "net/netip"

const (
	// Overhead is what encapsulation adds to an inner packet that carries only the SourceVPC
	// option: outer IPv4 20 + UDP 8 + Geneve 8 + SourceVPC 8 bytes. Instance MTU is underlay
	// MTU minus Overhead; see GeneveOptions.Overhead for packets with more options.
	Overhead = IPv4MinSize + UDPMinSize + GeneveMinSize + geneveOptHdrLen + sourceVPCDataLen

	// Headroom is where the inner packet starts in a buffer that will be encapsulated in
	// place: room for the outer headers with every option we have (20+8+8+8+12+8+16 = 80).
	Headroom = 80
)

// Encap holds the outer headers of an encapsulated packet: what ParseEncap reads and
// Encapsulate writes.
type Encap struct {
	Src, Dst netip.Addr // underlay addresses of the sending and receiving hosts
	SrcPort  uint16     // flow entropy; see SourcePort
	DstPort  uint16     // filled by ParseEncap; Encapsulate always writes GenevePort
	VNI      uint32     // the destination VPC
	Options  GeneveOptions

	// Inner is the inner packet, trimmed to its total length. ParseEncap sets it;
	// borrowed: it is a sub-slice of the parsed buffer and lives only as long as it.
	Inner IPv4
}

// Encapsulate writes the outer IPv4, UDP and Geneve headers for e in front of the inner
// packet at buf[Headroom:Headroom+innerLen], and returns where the outer packet starts;
// the packet to send is buf[start:Headroom+innerLen]. It returns false if the buffer is too
// short, the result would exceed 65535 bytes, an address is not IPv4 or a VNI does not fit.
//
// The outer header has TTL 64, DF set, ID 0 (RFC 6864: an atomic datagram needs none), TOS 0
// (the underlay does not honour a tenant's DSCP, and copying ECN would need the decapsulator
// to propagate CE, RFC 6040). The UDP checksum is 0, which RFC 768 allows over IPv4: the
// inner packet carries its own end-to-end checksums and the outer addresses are covered by
// the IPv4 header checksum, so summing the whole packet again on every send buys nothing.
func Encapsulate(buf []byte, innerLen int, e *Encap) (start int, ok bool) {
	start, ok = EncapsulateGeneve(buf, innerLen, e.VNI, e.Options)
	if !ok || !e.Src.Is4() || !e.Dst.Is4() {
		return 0, false
	}
	udpStart := start - UDPMinSize
	start = udpStart - IPv4MinSize
	total := Headroom + innerLen - start
	if total > 0xffff {
		return 0, false
	}
	u := UDP(buf[udpStart : start+total])
	u.SetSrcPort(e.SrcPort)
	u.SetDstPort(GenevePort)
	u.SetLength(uint16(len(u)))
	u.SetChecksum(0)
	IPv4(buf[start:]).Encode(&IPv4Fields{
		TotalLen: uint16(total),
		Flags:    IPv4FlagDF,
		TTL:      DefaultTTL,
		Protocol: ProtoUDP,
		Src:      e.Src,
		Dst:      e.Dst,
	})
	return start, true
}

// EncapsulateGeneve writes only the Geneve header and options in front of the inner packet
// at buf[Headroom:Headroom+innerLen], for a sender whose UDP socket adds the outer headers,
// and returns where the Geneve header starts: the UDP payload is buf[start:Headroom+innerLen].
func EncapsulateGeneve(buf []byte, innerLen int, vni uint32, o GeneveOptions) (start int, ok bool) {
	if innerLen < 0 || innerLen > len(buf)-Headroom {
		return 0, false
	}
	start = Headroom - GeneveMinSize - o.Len()
	if writeGeneve(buf[start:Headroom], vni, &o) == 0 {
		return 0, false
	}
	return start, true
}

// ParseEncap decodes an encapsulated packet, outer IPv4 header first, into out. It returns
// false, leaving out in an unspecified state, unless: the outer header is valid with a
// correct checksum, is not a fragment and carries UDP; the UDP length fits; and
// ParseGenevePayload accepts the UDP payload. The UDP checksum is not verified: the kernel
// or NIC checks it on receive, and the inner packet has its own. The destination port is
// reported, not checked: which port the underlay listens on is the caller's business.
func ParseEncap(b []byte, out *Encap) bool {
	ip := IPv4(b)
	if !ip.Valid() || ip.Protocol() != ProtoUDP || ip.IsFragment() || !ip.ChecksumValid() {
		return false
	}
	u := UDP(ip.Payload())
	if !u.Valid() {
		return false
	}
	out.Src, out.Dst = ip.Src(), ip.Dst()
	out.SrcPort, out.DstPort = u.SrcPort(), u.DstPort()
	return ParseGenevePayload(u.Payload(), out)
}

// ParseGenevePayload decodes a UDP payload, Geneve header first, into out's VNI, Options
// and Inner, for a receiver whose UDP socket has already stripped the outer headers (it
// leaves out's addresses and ports alone). It returns false unless the header is version 0,
// not OAM (openvpc sends none), carries IPv4, has options ParseGeneveOptions accepts, and
// is followed by a valid IPv4 packet.
func ParseGenevePayload(b []byte, out *Encap) bool {
	g := Geneve(b)
	if !g.Valid() || g.OAM() || g.ProtocolType() != GeneveProtoIPv4 {
		return false
	}
	opts, ok := ParseGeneveOptions(g)
	inner := IPv4(g.Payload())
	if !ok || !inner.Valid() {
		return false
	}
	out.VNI, out.Options, out.Inner = g.VNI(), opts, inner[:inner.TotalLen()]
	return true
}
