package datapath

import "net/netip"

// Port is a batched packet port: an instance's NIC (a netstack, a TUN
// device, …) or an edge's outside (the internet, a tunnel, a VLAN).
type Port interface {
	// Read blocks until at least one packet is available, writes up to
	// len(bufs) packets at bufs[i][packet.Headroom:] and their lengths in
	// sizes, and returns how many it wrote. The headroom is the data
	// plane's, so that encapsulation happens in place.
	Read(bufs [][]byte, sizes []int) (int, error)
	// Write sends packets out of the port. borrowed: pkts and their bytes
	// belong to the caller after Write returns.
	Write(pkts [][]byte) error
	// BatchSize is how many packets Read and Write handle at once.
	BatchSize() int
	Close() error
}

// Event is a packet that indicates an attack.
type Event struct {
	Verdict            Verdict
	OuterSrc, OuterDst netip.Addr
	InnerSrc, InnerDst netip.Addr
	ClaimedVNI         uint32 // the VPC the packet claimed to come from
	ENI                uint64 // egress: the sending ENI
}
