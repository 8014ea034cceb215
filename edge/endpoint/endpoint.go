// Package endpoint is Blackfoot's gateway-endpoint function: it relays
// what instances send to a service's prefix list on to one of the
// service's nodes, still encapsulated, with the EndpointID option and the
// instance's private source unchanged — so the service knows which
// endpoint, and which address, each packet came from — and relays the
// nodes' replies back to the instances' hosts.
//
// It has no outside port: its far side is another Geneve hop, so the edge
// re-heads packets in place (edge.Relay).
package endpoint

import (
	"fmt"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// Function relays gateway-endpoint traffic. The zero value is ready.
type Function struct{}

// New returns the endpoint function.
func New() *Function { return &Function{} }

// Kind implements edge.Function.
func (*Function) Kind() tables.TargetKind { return tables.TargetEndpoint }

// Targets implements edge.Function: every endpoint; which VPC has which
// is the snapshot's to say.
func (*Function) Targets() []uint64 { return nil }

// Outside implements edge.Function: none, the far side is the wire.
func (*Function) Outside() datapath.Port { return nil }

// FromVPC implements edge.Function; the edge calls ToNode instead.
func (*Function) FromVPC(*tables.Snapshot, uint32, uint64, packet.IPv4, *datapath.Trace) datapath.Verdict {
	return datapath.NoRoute
}

// FromOutside implements edge.Function; nothing comes from an outside.
func (*Function) FromOutside(*tables.Snapshot, packet.IPv4, *datapath.Trace) (uint32, datapath.Verdict) {
	return 0, datapath.NoRoute
}

// ToNode takes a packet an instance in VPC vni sent to endpoint target:
// the VPC must have that endpoint (a host sends only targets its VPC
// routes to, so another is forged: an attack), the destination must be
// one of the service's addresses, and the flow hash picks the node.
func (*Function) ToNode(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4, t *datapath.Trace) (netip.Addr, packet.GeneveOptions, datapath.Verdict) {
	vpc, ok := snap.VPC(vni)
	var ep *tables.Endpoint
	if ok {
		ep, ok = vpc.Endpoint(target)
	}
	if t != nil {
		t.Step("the VPC has the endpoint", ok, explainHas(vni, target, ok))
	}
	if !ok {
		return netip.Addr{}, packet.GeneveOptions{}, datapath.ForgedTarget
	}
	ok = ep.Serves(inner.Dst())
	if t != nil {
		t.Step("service address", ok, fmt.Sprintf("%v in the prefix list of vpce-%016x: %v", inner.Dst(), target, ok))
	}
	if !ok {
		return netip.Addr{}, packet.GeneveOptions{}, datapath.NoRoute
	}
	if len(ep.Nodes) == 0 {
		if t != nil {
			t.Fail("service node", "no service node serves vpce-%016x", target)
		}
		return netip.Addr{}, packet.GeneveOptions{}, datapath.NoEdge
	}
	node := ep.Nodes[uint64(packet.FlowHash(inner))*uint64(len(ep.Nodes))>>32]
	if t != nil {
		t.Pass("service node", "%v, by flow hash among %d; source %v kept, EndpointID vpce-%016x", node, len(ep.Nodes), inner.Src(), target)
	}
	return node, packet.GeneveOptions{SourceVNI: vni, HasEndpoint: true, EndpointID: target}, datapath.Forwarded
}

// FromNode checks a packet service node sent: it names an endpoint of
// its VPC that the node serves, comes from one of the service's
// addresses and goes into the VPC. It returns the endpoint, the target
// the edge names toward the instance's host.
func (*Function) FromNode(snap *tables.Snapshot, node netip.Addr, vni uint32, opts packet.GeneveOptions, inner packet.IPv4, t *datapath.Trace) (uint64, datapath.Verdict) {
	var ep *tables.Endpoint
	vpc, ok := snap.VPC(vni)
	if ok && opts.HasEndpoint && opts.SourceVNI == vni {
		ep, ok = vpc.Endpoint(opts.EndpointID)
		ok = ok && ep.HasNode(node)
	} else {
		ok = false
	}
	if t != nil {
		t.Step("known service node", ok, fmt.Sprintf("%v serves endpoint vpce-%016x of VPC %d: %v", node, opts.EndpointID, vni, ok))
	}
	if !ok {
		return 0, datapath.UnknownSender
	}
	ok = ep.Serves(inner.Src()) && vpc.CIDR.Contains(inner.Dst())
	if t != nil {
		t.Step("from the service into the VPC", ok, fmt.Sprintf("%v → %v", inner.Src(), inner.Dst()))
	}
	if !ok {
		return 0, datapath.SenderMismatch
	}
	return ep.ID, datapath.Forwarded
}

func explainHas(vni uint32, target uint64, ok bool) string {
	if !ok {
		return fmt.Sprintf("VPC %d has no endpoint vpce-%016x: a forged target, dropped", vni, target)
	}
	return fmt.Sprintf("VPC %d has endpoint vpce-%016x", vni, target)
}
