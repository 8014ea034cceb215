package node

import (
	"context"
	"net"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
)

// Observed is a data plane as the node API shows it: its flow records,
// its sightings of live-traced packets, and an explanation of what it does
// with a packet arriving from the wire. A host's data plane is one; an
// edge's is another.
type Observed interface {
	FlowList() []datapath.Flow
	TraceReports(id uint32) []datapath.TraceReport
	TraceArrival(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict, string)
}

// Instances are the instances a host runs, as the node API acts as them
// (ping, connect, forward, trace).
type Instances interface {
	// Instance returns the local instance with private address ip in the
	// VPC with VNI vni.
	Instance(vni uint32, ip netip.Addr) (Instance, bool)
}

// Instance is one local instance: a way to dial from inside it, and its
// place on the egress path.
type Instance interface {
	// DialContext connects from inside the instance.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// DialPing returns a connection that writes ICMP echo requests (the
	// ICMP message, no IP header) from src to dst, and reads ICMP messages
	// from dst.
	DialPing(src, dst netip.Addr) (net.Conn, error)
	// Send puts pkt on the instance's egress path as if the instance had
	// sent it (a forged ping), and returns the verdict.
	Send(pkt []byte) (datapath.Verdict, error)
	// SendTraced is Send with the Geneve TraceID option set to id.
	SendTraced(pkt []byte, id uint32) (datapath.Verdict, error)
	// TraceEgress explains what the egress story does with pkt, sending
	// nothing.
	TraceEgress(pkt []byte) EgressTrace
}

// EgressTrace is the egress story's explanation of one packet.
type EgressTrace struct {
	Steps   []datapath.Step
	Verdict datapath.Verdict
	// NextHop is where a forwarded packet goes (a host's or an edge's
	// underlay address), and Payload what goes on the wire (Geneve onward).
	NextHop netip.Addr
	Payload []byte
}
