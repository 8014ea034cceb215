package dataplane

import (
	"fmt"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// Egress is the story of a packet an instance sends: the packet is
// buf[packet.Headroom:packet.Headroom+n], read from from's port.
//
//	parse → source check → host services → route → router hop (TTL) → mapping → MTU → encapsulate
//
// Host services (services.go) takes a packet for the VPC resolver or the
// metadata service off the path to the host's own stack; the guard in
// front of it is one compare, so other packets pay nothing more.
//
// The route step returns a typed next hop. For an edge function (the
// internet gateway; later VPN, Direct Connect, endpoints) the mapping step
// becomes the choice of an edge: the packet goes, still in its own VPC and
// marked with its function and target, to the edge that the flow hash
// picks among the healthy ones serving that target.
//
// A packet for an instance on this same host then takes the ingress story
// without the wire, so it meets exactly the checks a remote one would.
// scratch (at least ScratchSize bytes) holds an ICMP error if one is due.
func (p *Plane) Egress(snap *tables.Snapshot, from *Attachment, buf []byte, n int, scratch []byte, r *Result) {
	p.egress(snap, from, buf, n, scratch, r, nil)
}

// egress is the story. t, when not nil, records each step as it runs:
// each check is followed by its one line of trace, which costs the packet
// path a predictable branch.
func (p *Plane) egress(snap *tables.Snapshot, from *Attachment, buf []byte, n int, scratch []byte, r *Result, t *datapath.Trace) {
	*r = Result{}
	pkt := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
	ok := pkt.Valid()
	if t != nil {
		t.Step("parse", ok, explainIPv4(pkt, ok))
	}
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	pkt = pkt[:pkt.TotalLen()]
	r.VNI, r.Inner = from.VNI, pkt

	ok = pkt.Src() == from.IP
	if t != nil {
		t.Step("source check", ok, explainSource(from, pkt, ok))
	}
	if !ok {
		r.Verdict = p.spoofed(from, pkt)
		return
	}

	if mayBeService(from, pkt) && p.hostServices(from, pkt, r, t) {
		return
	}

	hop, rt, vpc := route(snap, from, pkt)
	if t != nil {
		t.Step("route", hop.Kind != 0, explainRoute(from, pkt, rt, hop))
	}
	if hop.Kind == 0 {
		r.Verdict = datapath.NoRoute
		return
	}

	if t != nil {
		t.Step("router hop", !crossesRouter(from, pkt) || pkt.TTL() > 1, explainRouterHop(from, pkt))
	}
	if r.Verdict = routerHop(from, pkt, scratch, r); r.Verdict != datapath.Forwarded {
		return
	}

	var m tables.Mapping
	if hop.Kind != HopEdge {
		ok = snap.Lookup(hop.VNI, pkt.Dst(), &m) && m.Underlay.IsValid()
		if t != nil {
			t.Step("mapping", ok, explainMapping(pkt, &m, ok))
		}
		if !ok {
			r.Verdict = datapath.NoMapping
			return
		}
	}

	if vpc.Firewalled() {
		if r.Verdict = p.egressFirewall(snap, vpc, from, pkt, hop, &m, t); r.Verdict != datapath.Forwarded {
			return
		}
	}

	if hop.Kind == HopEdge {
		p.viaEdge(snap, from, pkt, hop.Target, buf, scratch, r, t)
		return
	}

	if t != nil {
		t.Step("MTU", len(pkt) <= p.cfg.MTU, explainMTU(pkt, p.cfg.MTU))
	}
	if r.Verdict = p.checkMTU(from, pkt, p.cfg.MTU, scratch, r); r.Verdict != datapath.Forwarded {
		return
	}

	start, ok := packet.EncapsulateGeneve(buf, len(pkt), hop.VNI, packet.GeneveOptions{SourceVNI: from.VNI})
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	payload := buf[start : packet.Headroom+len(pkt)]
	if m.Local {
		if t != nil {
			t.Pass("deliver on this host", "to eni-%016x, after the receiving host's checks", m.ENI)
		}
		p.ingress(snap, p.cfg.Underlay, payload, r, t)
		r.RouterHop = crossesRouter(from, pkt)
		return
	}
	r.Verdict, r.Payload, r.Start, r.Dst, r.SrcPort = datapath.Forwarded, payload, start, m.Underlay, packet.SourcePort(packet.FlowHash(pkt))
	r.Cacheable, r.RouterHop = t == nil && replayable(pkt), crossesRouter(from, pkt)
	if t != nil {
		t.Pass("encapsulate", "outer %v → %v, UDP %d → %d, Geneve VNI %d, SourceVPC %d", p.cfg.Underlay, m.Underlay, r.SrcPort, p.cfg.WirePort, hop.VNI, from.VNI)
	}
}

// spoofed reports an instance sending from an address it does not own.
func (p *Plane) spoofed(from *Attachment, pkt packet.IPv4) datapath.Verdict {
	p.cfg.Events(datapath.Event{Verdict: datapath.SpoofedSource, OuterSrc: p.cfg.Underlay, InnerSrc: pkt.Src(), InnerDst: pkt.Dst(), ClaimedVNI: from.VNI, ENI: from.ENI})
	return datapath.SpoofedSource
}

// HopKind is what kind of place a route leads to.
type HopKind uint8

const (
	HopLocal   HopKind = 1 + iota // inside the sender's VPC
	HopPeering                    // into an actively peered VPC
	HopEdge                       // to an edge function: internet gateway, VPN, Direct Connect, endpoint
)

// NextHop is what the route step decided: the VPC whose mapping the
// destination is looked up in (local and peering), or the edge function
// and target the packet goes to (edge).
type NextHop struct {
	Kind   HopKind
	VNI    uint32
	Target tables.Target // the route's target: pcx-…, igw-…, vgw-…, …
}

// route finds where the destination lives: the longest-prefix route of the
// sending subnet's route table, as a typed next hop (Kind 0: no route). A
// target this host does not know — a peering that is not active, a gateway
// that is not the VPC's, a kind the cache holds no facts of — is no route:
// nothing is guessed. The route found, if any, is returned for the trace.
func route(snap *tables.Snapshot, from *Attachment, pkt packet.IPv4) (NextHop, *tables.Route, *tables.VPC) {
	vpc, ok := snap.VPC(from.VNI)
	if !ok {
		return NextHop{}, nil, nil
	}
	rt := vpc.Route(from.IP, pkt.Dst())
	if rt == nil {
		return NextHop{}, nil, vpc
	}
	switch k := rt.Target.Kind; {
	case k == tables.TargetLocal:
		return NextHop{Kind: HopLocal, VNI: from.VNI, Target: rt.Target}, rt, vpc
	case k == tables.TargetPeering:
		if peer, ok := vpc.PeerVNI(rt.Target.ID); ok {
			return NextHop{Kind: HopPeering, VNI: peer, Target: rt.Target}, rt, vpc
		}
	case k.Edge():
		if vpc.Attached(rt.Target) {
			return NextHop{Kind: HopEdge, VNI: from.VNI, Target: rt.Target}, rt, vpc
		}
	}
	return NextHop{}, rt, vpc
}

// egressFirewall is the sender's half of the firewall: its security
// groups, then its subnet's network ACL outbound. dst is the destination's
// mapping (empty for an edge: the internet has no groups).
func (p *Plane) egressFirewall(snap *tables.Snapshot, vpc *tables.VPC, from *Attachment, pkt packet.IPv4, hop NextHop, dst *tables.Mapping, t *datapath.Trace) datapath.Verdict {
	f := flowOf(pkt)
	if v := p.securityGroups(snap, vpc, from.ENI, from.IP, nil, from.timeoutsOr(&p.cfg.Timeouts), pkt, &f, true, pkt.Dst(), dst, hop.VNI, t); v != datapath.Forwarded {
		return v
	}
	if from.inSubnet(pkt[16:20]) {
		if t != nil {
			t.Pass("network ACL", "no ACL inside subnet %v", from.Subnet)
		}
		return datapath.Forwarded
	}
	return networkACL(vpc, from.IP, &f, false, pkt.Dst(), t)
}

// edgeMTUCost is what the EdgeTarget option adds to packets for an edge:
// the path to an edge carries that much less, so PMTUD sees a smaller MTU.
const edgeMTUCost = 16

// viaEdge sends a packet to an edge serving its route's target: the flow
// hash picks one of the healthy edges serving it, so every packet of a
// flow takes the same edge while flows spread over all of them, and an
// edge marked unhealthy stops getting new packets at once. The packet
// names its function and target, so the edge need not derive the route.
func (p *Plane) viaEdge(snap *tables.Snapshot, from *Attachment, pkt packet.IPv4, target tables.Target, buf, scratch []byte, r *Result, t *datapath.Trace) {
	edges := snap.EdgesFor(target)
	if len(edges) == 0 {
		if t != nil {
			t.Fail("edge", "no healthy edge serves %v", target)
		}
		r.Verdict = datapath.NoEdge
		return
	}
	hash := packet.FlowHash(pkt)
	edge := edges[uint64(hash)*uint64(len(edges))>>32]
	if t != nil {
		t.Pass("edge", "%v is served by edge %v, by flow hash among %d healthy edges", target, edge.Underlay, len(edges))
	}
	if t != nil {
		t.Step("MTU", len(pkt) <= p.cfg.MTU-edgeMTUCost, explainMTU(pkt, p.cfg.MTU-edgeMTUCost))
	}
	if r.Verdict = p.checkMTU(from, pkt, p.cfg.MTU-edgeMTUCost, scratch, r); r.Verdict != datapath.Forwarded {
		return
	}
	opts := packet.GeneveOptions{SourceVNI: from.VNI, HasTarget: true, Function: uint8(target.Kind), Target: target.ID}
	start, ok := packet.EncapsulateGeneve(buf, len(pkt), from.VNI, opts)
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	r.Verdict, r.Payload, r.Start, r.Dst, r.SrcPort = datapath.Forwarded, buf[start:packet.Headroom+len(pkt)], start, edge.Underlay, packet.SourcePort(hash)
	if t != nil {
		t.Pass("encapsulate", "outer %v → %v, UDP %d → %d, Geneve VNI %d, SourceVPC %d, for %v", p.cfg.Underlay, edge.Underlay, r.SrcPort, p.cfg.WirePort, from.VNI, from.VNI, target)
	}
}

// routerHop: traffic leaving its subnet crosses the VPC router, which
// decrements the TTL as a router does, and answers "time exceeded" when
// it runs out.
func routerHop(from *Attachment, pkt packet.IPv4, scratch []byte, r *Result) datapath.Verdict {
	if !crossesRouter(from, pkt) {
		return datapath.Forwarded
	}
	ttl := pkt.TTL()
	if ttl <= 1 {
		r.Reply = packet.ICMPError(scratch, from.Gateway, pkt, packet.ICMPv4TimeExceeded, packet.ICMPv4TTLExceeded, 0)
		return datapath.TTLExceeded
	}
	// TTL and protocol share a 16-bit word of the checksum.
	old := uint16(ttl)<<8 | uint16(pkt.Protocol())
	pkt.SetTTL(ttl - 1)
	pkt.SetChecksum(packet.ChecksumUpdate16(pkt.Checksum(), old, old-0x100))
	return datapath.Forwarded
}

// crossesRouter reports whether the packet leaves its subnet.
func crossesRouter(from *Attachment, pkt packet.IPv4) bool { return !from.inSubnet(pkt[16:20]) }

// checkMTU: a packet too big for the path (mtu) with DF set gets
// "fragmentation needed" back, so the sender's path MTU discovery works as
// on any network. Without DF it is dropped too: openvpc does not fragment.
func (p *Plane) checkMTU(from *Attachment, pkt packet.IPv4, mtu int, scratch []byte, r *Result) datapath.Verdict {
	if len(pkt) <= mtu {
		return datapath.Forwarded
	}
	if pkt.DF() {
		r.Reply = packet.ICMPError(scratch, from.Gateway, pkt, packet.ICMPv4DstUnreachable, packet.ICMPv4FragNeeded, uint16(mtu))
	}
	return datapath.TooBig
}

// What each egress step says in a trace.

func explainIPv4(pkt packet.IPv4, ok bool) string {
	if !ok {
		return "not a whole IPv4 packet"
	}
	return fmt.Sprintf("IPv4 %v → %v, protocol %d, %d bytes", pkt.Src(), pkt.Dst(), pkt.Protocol(), pkt.TotalLen())
}

func explainSource(from *Attachment, pkt packet.IPv4, ok bool) string {
	if !ok {
		return fmt.Sprintf("%v is not the address of eni-%016x (%v)", pkt.Src(), from.ENI, from.IP)
	}
	return fmt.Sprintf("%v is eni-%016x's address", pkt.Src(), from.ENI)
}

func explainRoute(from *Attachment, pkt packet.IPv4, rt *tables.Route, hop NextHop) string {
	switch {
	case rt == nil:
		return fmt.Sprintf("no route for %v in the route table of %v's subnet", pkt.Dst(), from.IP)
	case hop.Kind == 0:
		return fmt.Sprintf("route %v → %v leads nowhere from here (a blackhole, or a target that is not active): no route", rt.Dst, rt.Target)
	}
	return fmt.Sprintf("route %v → %v", rt.Dst, rt.Target)
}

func explainRouterHop(from *Attachment, pkt packet.IPv4) string {
	switch ttl := pkt.TTL(); {
	case !crossesRouter(from, pkt):
		return "same subnet: no router hop"
	case ttl <= 1:
		return fmt.Sprintf("TTL %d runs out at the VPC router: time exceeded goes back", ttl)
	default:
		return fmt.Sprintf("through the VPC router: TTL %d → %d", ttl, ttl-1)
	}
}

func explainMapping(pkt packet.IPv4, m *tables.Mapping, ok bool) string {
	if !ok {
		return fmt.Sprintf("no mapping for %v: a miss is a drop", pkt.Dst())
	}
	return fmt.Sprintf("%v lives on host %v", pkt.Dst(), m.Underlay)
}

func explainMTU(pkt packet.IPv4, mtu int) string {
	if len(pkt) > mtu {
		return fmt.Sprintf("%d bytes > the path MTU %d: dropped (fragmentation needed goes back when DF is set)", len(pkt), mtu)
	}
	return fmt.Sprintf("%d bytes ≤ the path MTU %d", len(pkt), mtu)
}
