package packet

import (
	"encoding/binary"
	"net/netip"
)

// ARP is a view of an ARP packet (RFC 826) for IPv4 over Ethernet, the only kind a VPC
// answers (on the host, since the overlay has no broadcast):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      Hardware Type (1)        |     Protocol Type (0x0800)    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  HW Len (6)   | Proto Len (4) |           Operation           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Sender Hardware Address (6 bytes)             |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |   Sender Protocol Address     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    (4 bytes)                  |   Target Hardware Address     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                               (6 bytes)                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Target Protocol Address (4 bytes)              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ARP []byte

const (
	arpHWType    = 0
	arpProtoType = 2
	arpHWLen     = 4
	arpProtoLen  = 5
	arpOp        = 6
	arpSenderHW  = 8
	arpSenderIP  = 14
	arpTargetHW  = 18
	arpTargetIP  = 24
)

const (
	// ARPSize is the length of an Ethernet/IPv4 ARP packet.
	ARPSize = 28
	// ARPRequest and ARPReply are the operations.
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2

	arpHWEthernet = 1
	etherTypeIPv4 = 0x0800
)

// Valid reports whether b holds an Ethernet/IPv4 ARP packet.
func (b ARP) Valid() bool {
	return len(b) >= ARPSize &&
		binary.BigEndian.Uint16(b[arpHWType:]) == arpHWEthernet &&
		binary.BigEndian.Uint16(b[arpProtoType:]) == etherTypeIPv4 &&
		b[arpHWLen] == 6 && b[arpProtoLen] == 4
}

// Op returns the operation (ARPRequest, ARPReply).
func (b ARP) Op() uint16 { return binary.BigEndian.Uint16(b[arpOp:]) }

// SenderHW returns the sender's hardware (MAC) address.
func (b ARP) SenderHW() [6]byte { return [6]byte(b[arpSenderHW:]) }

// SenderIP returns the sender's IPv4 address.
func (b ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(b[arpSenderIP:])) }

// TargetHW returns the target's hardware address (zero in a request).
func (b ARP) TargetHW() [6]byte { return [6]byte(b[arpTargetHW:]) }

// TargetIP returns the target's IPv4 address: in a request, the address asked about.
func (b ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(b[arpTargetIP:])) }

// ARPFields are the fields Encode writes.
type ARPFields struct {
	Op                 uint16
	SenderHW, TargetHW [6]byte
	SenderIP, TargetIP netip.Addr // must be IPv4
}

// Encode writes an Ethernet/IPv4 ARP packet from f at the start of b.
func (b ARP) Encode(f *ARPFields) {
	_ = b[ARPSize-1]
	binary.BigEndian.PutUint16(b[arpHWType:], arpHWEthernet)
	binary.BigEndian.PutUint16(b[arpProtoType:], etherTypeIPv4)
	b[arpHWLen], b[arpProtoLen] = 6, 4
	binary.BigEndian.PutUint16(b[arpOp:], f.Op)
	copy(b[arpSenderHW:], f.SenderHW[:])
	putAddr4(b[arpSenderIP:], f.SenderIP)
	copy(b[arpTargetHW:], f.TargetHW[:])
	putAddr4(b[arpTargetIP:], f.TargetIP)
}

// MakeReply turns a request, in place, into the reply the owner of the requested address
// would send from hardware address hw: the requester becomes the target, and the sender is
// (hw, requested address). The host answers for its instances this way without a copy.
func (b ARP) MakeReply(hw [6]byte) {
	asked := [4]byte(b[arpTargetIP:])
	copy(b[arpTargetHW:arpTargetIP+4], b[arpSenderHW:arpSenderIP+4])
	copy(b[arpSenderHW:], hw[:])
	copy(b[arpSenderIP:], asked[:])
	binary.BigEndian.PutUint16(b[arpOp:], ARPReply)
}

func putAddr4(b []byte, a netip.Addr) {
	a4 := a.As4()
	copy(b[:4], a4[:])
}
