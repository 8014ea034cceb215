package dataplane

import (
	"encoding/binary"

	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// RouterMAC is the hardware address of the VPC router, the subnet
// gateway every instance sends off-subnet traffic to.
var RouterMAC = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}

const (
	etherHeaderLen = 14
	etherTypeARP   = 0x0806
)

// AnswerARP answers, in place, an ARP request an instance with an L2 NIC
// broadcast: the VPC is an L3 overlay, so nothing is broadcast on the wire
// — the host replies for the subnet gateway (RouterMAC) and for every
// address of the VPC it knows (its mapping's MAC), as a proxy. frame is an
// Ethernet frame; ok is false (and frame untouched) when no answer is due.
func AnswerARP(snap *tables.Snapshot, from *Attachment, frame []byte) (ok bool) {
	if len(frame) < etherHeaderLen+packet.ARPSize || binary.BigEndian.Uint16(frame[12:]) != etherTypeARP {
		return false
	}
	arp := packet.ARP(frame[etherHeaderLen:])
	if !arp.Valid() || arp.Op() != packet.ARPRequest || arp.SenderIP() != from.IP {
		return false
	}
	target := arp.TargetIP()
	hw := RouterMAC
	if target != from.Gateway {
		var m tables.Mapping
		if !from.Subnet.Contains(target) || target == from.IP || !snap.Lookup(from.VNI, target, &m) {
			return false
		}
		hw = m.MAC
	}
	requester := arp.SenderHW()
	arp.MakeReply(hw)
	copy(frame[0:6], requester[:])
	copy(frame[6:12], hw[:])
	return true
}
