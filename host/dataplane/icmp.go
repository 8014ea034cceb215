package dataplane

import "github.com/openvpc/openvpc/packet"

// ScratchSize is the room an ICMP error needs (packet.ICMPErrorSize).
const ScratchSize = packet.ICMPErrorSize
