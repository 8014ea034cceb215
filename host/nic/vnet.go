package nic

import (
	"encoding/binary"
	"errors"

	"github.com/openvpc/openvpc/packet"
)

// What a packet socket with PACKET_VNET_HDR (and a TUN with IFF_VNET_HDR)
// puts in front of each packet: struct virtio_net_hdr, in the machine's
// byte order. It says how the sender's kernel left the packet: a checksum
// still to be completed (the NIC's job, offloaded), a TCP super-packet
// still to be cut into segments (TSO).
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

const (
	vnetHdrLen        = 10
	vnetNeedsCsum     = 1    // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSONone       = 0    // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4      = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOECN        = 0x80 // VIRTIO_NET_HDR_GSO_ECN
	tcpFlagFIN        = 0x01
	tcpFlagPSH        = 0x08
	tcpFlagCWR        = 0x80
	maxSegmentsPerGSO = 64
)

func decodeVnetHdr(b []byte) vnetHdr {
	return vnetHdr{flags: b[0], gsoType: b[1], hdrLen: binary.NativeEndian.Uint16(b[2:]), gsoSize: binary.NativeEndian.Uint16(b[4:]),
		csumStart: binary.NativeEndian.Uint16(b[6:]), csumOffset: binary.NativeEndian.Uint16(b[8:])}
}

var (
	errVnetGSOType = errors.New("nic: offloaded packet of a kind other than TCP over IPv4")
	errVnetBad     = errors.New("nic: offloaded packet whose headers do not add up")
)

// completeChecksum finishes a checksum the sender left to the NIC: the
// field at start+offset holds the pseudo-header's sum, and the sum from
// start to the end of the packet goes in its place.
func completeChecksum(pkt []byte, start, offset int) error {
	if start+offset+2 > len(pkt) || start < packet.IPv4MinSize {
		return errVnetBad
	}
	c := ^packet.Checksum(pkt[start:], 0)
	if c == 0 && pkt[9] == packet.ProtoUDP {
		c = 0xffff // UDP's 0 means "no checksum"
	}
	binary.BigEndian.PutUint16(pkt[start+offset:], c)
	return nil
}

// segments reports how many segments splitTCP makes of in.
func segments(h vnetHdr, in []byte) int {
	if h.gsoType&^vnetGSOECN == vnetGSONone {
		return 1
	}
	hl, ok := tcpHeaders(in)
	if !ok || h.gsoSize == 0 {
		return 1 // splitTCP refuses it
	}
	return (len(in) - hl + int(h.gsoSize) - 1) / int(h.gsoSize)
}

// tcpHeaders returns the length of the IPv4 and TCP headers of in.
func tcpHeaders(in []byte) (int, bool) {
	ip := packet.IPv4(in)
	if !ip.Valid() || ip.Protocol() != packet.ProtoTCP {
		return 0, false
	}
	ihl := int(in[0]&0xf) * 4
	if len(in) < ihl+20 {
		return 0, false
	}
	hl := ihl + int(in[ihl+12]>>4)*4
	if hl < ihl+20 || hl > len(in) {
		return 0, false
	}
	return hl, true
}

// offloaded turns one packet read with its virtio header h into packets
// ready for the data plane, at bufs[i][packet.Headroom:] with their sizes:
// a partial checksum completed, a TCP super-packet cut into segments of
// h.gsoSize payload bytes, each with its own IPv4 and TCP header and
// checksums, as the NIC would have done. in may be bufs[0]'s own packet
// only when it is not a super-packet (it is then fixed in place).
func offloaded(h vnetHdr, in []byte, bufs [][]byte, sizes []int) (int, error) {
	switch h.gsoType &^ vnetGSOECN {
	case vnetGSONone:
		if h.flags&vnetNeedsCsum != 0 {
			if err := completeChecksum(in, int(h.csumStart), int(h.csumOffset)); err != nil {
				return 0, err
			}
		}
		if &in[0] != &bufs[0][packet.Headroom] {
			copy(bufs[0][packet.Headroom:], in)
		}
		sizes[0] = len(in)
		return 1, nil
	case vnetGSOTCPv4:
		return splitTCP(in, int(h.gsoSize), bufs, sizes)
	}
	return 0, errVnetGSOType
}

// splitTCP cuts a TCP/IPv4 super-packet into segments of mss payload bytes.
func splitTCP(in []byte, mss int, bufs [][]byte, sizes []int) (int, error) {
	hl, ok := tcpHeaders(in)
	if !ok || mss == 0 {
		return 0, errVnetBad
	}
	ihl := int(in[0]&0xf) * 4
	payload := in[hl:]
	n := (len(payload) + mss - 1) / mss
	if n > len(bufs) || n == 0 {
		return 0, errVnetBad
	}
	seq := binary.BigEndian.Uint32(in[ihl+4:])
	id := binary.BigEndian.Uint16(in[4:])
	flags := in[ihl+13]
	src, dst := [4]byte(in[12:16]), [4]byte(in[16:20])
	for i := range n {
		chunk := payload[i*mss : min((i+1)*mss, len(payload))]
		b := bufs[i][packet.Headroom:]
		if len(b) < hl+len(chunk) {
			return 0, errVnetBad
		}
		seg := b[:hl+len(chunk)]
		copy(seg, in[:hl])
		copy(seg[hl:], chunk)
		binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
		binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
		binary.BigEndian.PutUint16(seg[10:], 0)
		binary.BigEndian.PutUint16(seg[10:], packet.InternetChecksum(seg[:ihl]))
		tcp := seg[ihl:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(i*mss))
		f := flags
		if i > 0 {
			f &^= tcpFlagCWR // congestion window reduced: said once
		}
		if i < n-1 {
			f &^= tcpFlagFIN | tcpFlagPSH // only the last segment ends the write
		}
		tcp[13] = f
		binary.BigEndian.PutUint16(tcp[16:], 0)
		binary.BigEndian.PutUint16(tcp[16:], ^packet.Checksum(tcp, packet.PseudoHeaderChecksum(packet.ProtoTCP, src, dst, uint16(len(tcp)))))
		sizes[i] = len(seg)
	}
	return n, nil
}
