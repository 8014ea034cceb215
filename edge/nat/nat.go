// Package nat is Blackfoot's stateless 1:1 NAT: it swaps an instance's
// private address for its Elastic IP on the way out and back on the way
// in, updating every checksum incrementally (RFC 1624) instead of
// recomputing it, so the cost does not grow with the packet.
//
// Stateless means any edge can translate any packet of any flow: edges
// scale out and one can die without the flows through it noticing more
// than a few lost packets.
package nat

import (
	"encoding/binary"
	"net/netip"

	"github.com/openvpc/openvpc/packet"
)

// Outbound rewrites the source of pkt (an instance's packet leaving for the
// internet) to public. In an ICMP error the instance sends about a packet
// it received (say, "port unreachable"), the quoted packet's destination
// is that same private address: it is rewritten too, or the remote end
// could not match the error to its flow. pkt must be Valid.
func Outbound(pkt packet.IPv4, public netip.Addr) {
	old := [4]byte(pkt[12:16])
	pkt.RewriteSrc(public)
	quoted(pkt, 16, old, public.As4())
}

// Inbound rewrites the destination of pkt (a packet from the internet to
// an Elastic IP) to private, and in an ICMP error the quoted packet's
// source (the Elastic IP the instance's packet left with). pkt must be
// Valid.
func Inbound(pkt packet.IPv4, private netip.Addr) {
	old := [4]byte(pkt[16:20])
	pkt.RewriteDst(private)
	quoted(pkt, 12, old, private.As4())
}

// quoted rewrites, in an ICMP error, the address at offset off of the
// quoted IPv4 header from old to nw, if it is old, and keeps the quoted
// header's checksum, the quoted UDP checksum (when present in the quote)
// and the ICMP checksum right.
func quoted(pkt packet.IPv4, off int, old, nw [4]byte) {
	if pkt.Protocol() != packet.ProtoICMP || pkt.IsFragment() {
		return
	}
	icmp := packet.ICMPv4(pkt.Payload())
	if !icmp.Valid() || !isError(icmp.Type()) {
		return
	}
	q := icmp.Payload()
	if len(q) < packet.IPv4MinSize || q[0]>>4 != 4 {
		return
	}
	hl := int(q[0]&0xf) * 4
	if hl < packet.IPv4MinSize || len(q) < hl || [4]byte(q[off:off+4]) != old {
		return
	}
	check := icmp.Checksum()
	copy(q[off:off+4], nw[:])
	check = packet.ChecksumUpdateAddr(check, old, nw)
	oldQC := binary.BigEndian.Uint16(q[10:])
	newQC := packet.ChecksumUpdateAddr(oldQC, old, nw)
	binary.BigEndian.PutUint16(q[10:], newQC)
	check = packet.ChecksumUpdate16(check, oldQC, newQC)
	// The quote holds at least 8 bytes of the transport header: a UDP
	// checksum (bytes 6–7) is in it, a TCP one is not.
	// Only a first fragment quotes the UDP header; the quoted header says
	// which by its fragment offset (bytes 6–7, low 13 bits).
	if q[9] == packet.ProtoUDP && len(q) >= hl+packet.UDPMinSize && binary.BigEndian.Uint16(q[6:])&0x1fff == 0 {
		u := q[hl:]
		if oldUC := binary.BigEndian.Uint16(u[6:]); oldUC != 0 {
			newUC := packet.ChecksumUpdateAddr(oldUC, old, nw)
			if newUC == 0 {
				newUC = 0xffff
			}
			binary.BigEndian.PutUint16(u[6:], newUC)
			check = packet.ChecksumUpdate16(check, oldUC, newUC)
		}
	}
	icmp.SetChecksum(check)
}

// isError reports whether an ICMP type quotes the packet that caused it.
func isError(t uint8) bool {
	switch t {
	case packet.ICMPv4DstUnreachable, 4 /* source quench */, 5 /* redirect */, packet.ICMPv4TimeExceeded, 12 /* parameter problem */ :
		return true
	}
	return false
}
