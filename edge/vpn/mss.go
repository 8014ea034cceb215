package vpn

import (
	"encoding/binary"

	"github.com/openvpc/openvpc/packet"
)

// tunnelMTU is the largest packet a tunnel carries: kernel-libipsec's
// ipsec0 has MTU 1400. The "fragmentation needed" of the tunnel's own
// namespace cannot enter the VPC (its source is no site address), so the
// edge answers a larger packet itself (edge.Bounded, MTU below); TCP's
// segments are also kept small enough from the SYN on, as AWS asks of
// customer gateways, so a connection made over the tunnel never probes.
const tunnelMTU = 1400

// maxMSS is the TCP MSS that fits tunnelMTU with IPv4 and TCP headers.
const maxMSS = tunnelMTU - packet.IPv4MinSize - packet.TCPMinSize

// clampMSS lowers the MSS option of a TCP SYN to maxMSS, updating the
// checksum incrementally; anything else is left alone. Allocation-free.
func clampMSS(p packet.IPv4) {
	if p.Protocol() != 6 || p.FragmentOffset() != 0 {
		return
	}
	tcp := packet.TCP(p.Payload())
	if !tcp.Valid() || tcp.Flags()&packet.TCPFlagSYN == 0 {
		return
	}
	opts := tcp[packet.TCPMinSize:tcp.DataOffset()]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return
		case 1: // no-op
			i++
			continue
		case 2: // MSS
			if i+4 > len(opts) || opts[i+1] != 4 {
				return
			}
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old <= maxMSS {
				return
			}
			binary.BigEndian.PutUint16(opts[i+2:], maxMSS)
			tcp.SetChecksum(packet.ChecksumUpdate16(tcp.Checksum(), old, maxMSS))
			return
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return
		}
		i += int(opts[i+1])
	}
}
