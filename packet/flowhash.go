package packet

import "encoding/binary"

// FlowHash returns a hash of the flow p belongs to: addresses, protocol, and the ports of
// TCP and UDP (the identifier of ICMP echo). It is symmetric, so both directions of a flow
// hash the same and take the same path and the same edge. Fragments hash without ports,
// which only the first one carries, so that a datagram's fragments stay together. The
// hash has no secret seed: every host must compute the same value. It returns 0 for an
// invalid packet.
func FlowHash(p IPv4) uint32 {
	if !p.Valid() {
		return 0
	}
	sport, dport := flowPorts(p)
	a := uint64(binary.BigEndian.Uint32(p[ipv4SrcAddr:]))<<16 | uint64(sport)
	z := uint64(binary.BigEndian.Uint32(p[ipv4DstAddr:]))<<16 | uint64(dport)
	if a > z {
		a, z = z, a // order the endpoints: what makes the hash symmetric
	}
	h := mix64(a ^ mix64(z^uint64(p.Protocol())<<48))
	return uint32(h) ^ uint32(h>>32)
}

// flowPorts returns the ports that identify p's flow, or zeros when there are none.
func flowPorts(p IPv4) (src, dst uint16) {
	if p.IsFragment() {
		return 0, 0
	}
	l4 := p.Payload()
	switch p.Protocol() {
	case ProtoTCP, ProtoUDP:
		if len(l4) >= 4 {
			return binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
	case ProtoICMP:
		// Request and reply share the identifier: use it as both ports.
		if len(l4) >= ICMPv4MinSize && (l4[0] == ICMPv4EchoRequest || l4[0] == ICMPv4EchoReply) {
			id := ICMPv4(l4).Ident()
			return id, id
		}
	}
	return 0, 0
}

// mix64 is the MurmurHash3 finalizer: every input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// SourcePort maps a flow hash into the dynamic port range 49152–65535, for the outer UDP
// source port: ECMP routers hash on it, so distinct flows spread over underlay paths.
func SourcePort(hash uint32) uint16 {
	return 0xc000 | uint16(hash^hash>>16)&0x3fff
}
