// Package packettest builds packets for tests: valid IPv4 datagrams written
// at packet.Headroom in a caller's buffer, as a port would hand them to a
// data plane.
package packettest

import (
	"net/netip"

	"github.com/openvpc/openvpc/packet"
)

// UDP writes an IPv4/UDP packet from src:40000 to dst:53 with n bytes of
// payload at buf[packet.Headroom:] and returns its length.
func UDP(buf []byte, src, dst string, n int, ttl uint8, df bool) int {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	total := packet.IPv4MinSize + packet.UDPMinSize + n
	b := buf[packet.Headroom : packet.Headroom+total]
	var flags uint8
	if df {
		flags = packet.IPv4FlagDF
	}
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(total), TTL: ttl, Flags: flags, Protocol: packet.ProtoUDP, Src: s, Dst: d})
	u := packet.UDP(b[packet.IPv4MinSize:])
	u.SetSrcPort(40000)
	u.SetDstPort(53)
	u.SetLength(uint16(packet.UDPMinSize + n))
	u.SetChecksum(u.ComputeChecksum(s, d))
	return total
}
