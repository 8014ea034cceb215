package dataplane

import (
	"net/netip"

	"github.com/openvpc/openvpc/packet"
)

// ScratchSize is the room an ICMP error needs: IPv4 and ICMP headers, then
// the offending packet's header (at most 60 bytes) and 8 bytes of its data.
const ScratchSize = packet.IPv4MinSize + packet.ICMPv4MinSize + 60 + 8

// icmpError writes into scratch an ICMP error from the router address
// `from` back to the sender of orig, quoting orig as RFC 792 asks, and
// returns it. mtu is the next-hop MTU for "fragmentation needed".
func icmpError(scratch []byte, from netip.Addr, orig packet.IPv4, typ, code uint8, mtu uint16) []byte {
	quote := min(len(orig), orig.HeaderLen()+8)
	total := packet.IPv4MinSize + packet.ICMPv4MinSize + quote
	b := scratch[:total]
	packet.IPv4(b).Encode(&packet.IPv4Fields{
		TotalLen: uint16(total), TTL: packet.DefaultTTL, Protocol: packet.ProtoICMP, Src: from, Dst: orig.Src(),
	})
	icmp := packet.ICMPv4(b[packet.IPv4MinSize:])
	clear(icmp[:packet.ICMPv4MinSize])
	icmp.SetType(typ)
	icmp.SetCode(code)
	if typ == packet.ICMPv4DstUnreachable && code == packet.ICMPv4FragNeeded {
		icmp.SetMTU(mtu)
	}
	copy(icmp[packet.ICMPv4MinSize:], orig[:quote])
	icmp.SetChecksum(0)
	icmp.SetChecksum(icmp.ComputeChecksum())
	return b
}
