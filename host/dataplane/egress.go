package dataplane

import (
	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// Egress is the story of a packet an instance sends: the packet is
// buf[packet.Headroom:packet.Headroom+n], read from from's port.
//
//	parse → source check → route → router hop (TTL) → mapping → MTU → encapsulate
//
// A route to the VPC's internet gateway replaces the mapping step with the
// choice of an edge: the packet goes, still in its own VPC, to the edge
// that the flow hash picks among the healthy ones, which translates it.
//
// A packet for an instance on this same host then takes the ingress story
// without the wire, so it meets exactly the checks a remote one would.
// scratch (at least ScratchSize bytes) holds an ICMP error if one is due.
func (p *Plane) Egress(snap *tables.Snapshot, from *Attachment, buf []byte, n int, scratch []byte, r *Result) {
	*r = Result{}
	pkt, ok := parse(buf[packet.Headroom : packet.Headroom+n])
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	r.VNI, r.Inner = from.VNI, pkt
	if v := p.checkSource(from, pkt); v != datapath.Forwarded {
		r.Verdict = v
		return
	}
	dstVNI, toEdge, v := route(snap, from, pkt)
	if v != datapath.Forwarded {
		r.Verdict = v
		return
	}
	if v := routerHop(from, pkt, scratch, r); v != datapath.Forwarded {
		r.Verdict = v
		return
	}
	if toEdge {
		p.viaEdge(snap, from, pkt, buf, scratch, r)
		return
	}
	var m tables.Mapping
	if !snap.Lookup(dstVNI, pkt.Dst(), &m) || !m.Underlay.IsValid() {
		r.Verdict = datapath.NoMapping
		return
	}
	if v := p.checkMTU(from, pkt, scratch, r); v != datapath.Forwarded {
		r.Verdict = v
		return
	}
	start, ok := packet.EncapsulateGeneve(buf, len(pkt), dstVNI, packet.GeneveOptions{SourceVNI: from.VNI})
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	payload := buf[start : packet.Headroom+len(pkt)]
	if m.Local {
		p.Ingress(snap, p.cfg.Underlay, payload, r)
		return
	}
	r.Verdict, r.Payload, r.Start, r.Dst, r.SrcPort = datapath.Forwarded, payload, start, m.Underlay, packet.SourcePort(packet.FlowHash(pkt))
}

// parse accepts a whole, valid IPv4 packet, trimmed to its total length.
func parse(b []byte) (packet.IPv4, bool) {
	pkt := packet.IPv4(b)
	if !pkt.Valid() {
		return nil, false
	}
	return pkt[:pkt.TotalLen()], true
}

// checkSource: an instance may send only from its own address.
func (p *Plane) checkSource(from *Attachment, pkt packet.IPv4) datapath.Verdict {
	if pkt.Src() == from.IP {
		return datapath.Forwarded
	}
	p.cfg.Events(datapath.Event{Verdict: datapath.SpoofedSource, OuterSrc: p.cfg.Underlay, InnerSrc: pkt.Src(), InnerDst: pkt.Dst(), ClaimedVNI: from.VNI, ENI: from.ENI})
	return datapath.SpoofedSource
}

// route finds where the destination lives: the longest-prefix route of the
// sending subnet's route table says local (this VPC), an active peering
// (the peer's VPC) or the VPC's attached internet gateway (an edge).
// Anything else has no way out from here yet.
func route(snap *tables.Snapshot, from *Attachment, pkt packet.IPv4) (vni uint32, toEdge bool, v datapath.Verdict) {
	vpc, ok := snap.VPC(from.VNI)
	if !ok {
		return 0, false, datapath.NoRoute
	}
	rt := vpc.Route(from.IP, pkt.Dst())
	if rt == nil {
		return 0, false, datapath.NoRoute
	}
	switch rt.Target.Kind {
	case tables.TargetLocal:
		return from.VNI, false, datapath.Forwarded
	case tables.TargetPeering:
		if peer, ok := vpc.PeerVNI(rt.Target.ID); ok {
			return peer, false, datapath.Forwarded
		}
	case tables.TargetInternetGateway:
		if rt.Target.ID == vpc.InternetGateway {
			return from.VNI, true, datapath.Forwarded
		}
	}
	return 0, false, datapath.NoRoute
}

// viaEdge sends an internet-bound packet to an edge: the flow hash picks
// one of the healthy edges, so every packet of a flow takes the same edge
// while flows spread over all of them, and an edge marked unhealthy stops
// getting new packets at once.
func (p *Plane) viaEdge(snap *tables.Snapshot, from *Attachment, pkt packet.IPv4, buf, scratch []byte, r *Result) {
	edges := snap.Edges()
	if len(edges) == 0 {
		r.Verdict = datapath.NoEdge
		return
	}
	hash := packet.FlowHash(pkt)
	edge := edges[uint64(hash)*uint64(len(edges))>>32]
	if v := p.checkMTU(from, pkt, scratch, r); v != datapath.Forwarded {
		r.Verdict = v
		return
	}
	start, ok := packet.EncapsulateGeneve(buf, len(pkt), from.VNI, packet.GeneveOptions{SourceVNI: from.VNI})
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	r.Verdict, r.Payload, r.Start, r.Dst, r.SrcPort = datapath.Forwarded, buf[start:packet.Headroom+len(pkt)], start, edge.Underlay, packet.SourcePort(hash)
}

// routerHop: traffic leaving its subnet crosses the VPC router, which
// decrements the TTL as a router does, and answers "time exceeded" when
// it runs out.
func routerHop(from *Attachment, pkt packet.IPv4, scratch []byte, r *Result) datapath.Verdict {
	if from.Subnet.Contains(pkt.Dst()) {
		return datapath.Forwarded
	}
	ttl := pkt.TTL()
	if ttl <= 1 {
		r.Reply = icmpError(scratch, from.Gateway, pkt, packet.ICMPv4TimeExceeded, packet.ICMPv4TTLExceeded, 0)
		return datapath.TTLExceeded
	}
	// TTL and protocol share a 16-bit word of the checksum.
	old := uint16(ttl)<<8 | uint16(pkt.Protocol())
	pkt.SetTTL(ttl - 1)
	pkt.SetChecksum(packet.ChecksumUpdate16(pkt.Checksum(), old, old-0x100))
	return datapath.Forwarded
}

// checkMTU: a packet too big for the path with DF set gets "fragmentation
// needed" back, so the sender's path MTU discovery works as on any network.
// Without DF it is dropped too: openvpc does not fragment.
func (p *Plane) checkMTU(from *Attachment, pkt packet.IPv4, scratch []byte, r *Result) datapath.Verdict {
	if len(pkt) <= p.cfg.MTU {
		return datapath.Forwarded
	}
	if pkt.DF() {
		r.Reply = icmpError(scratch, from.Gateway, pkt, packet.ICMPv4DstUnreachable, packet.ICMPv4FragNeeded, uint16(p.cfg.MTU))
	}
	return datapath.TooBig
}
