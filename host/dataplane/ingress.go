package dataplane

import (
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// Ingress is the story of a packet from the wire: payload is the UDP
// payload (Geneve header onward) that arrived from outerSrc.
//
//	parse → known sender → destination is local → peered → sender owns the source → deliver
//
// An edge speaks for the internet: what it sends comes from addresses
// outside the VPC, so for an edge "owns the source" means the source is
// outside the VPC and the VPC has an internet gateway.
//
// The peering check comes before the sender check: a host's cache holds
// no mappings of VPCs that are not peered with its own, so for those the
// sender cannot be verified — the packet is refused for what it is, an
// attempt to cross into a VPC without a peering.
func (p *Plane) Ingress(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *Result) {
	*r = Result{}
	var e packet.Encap
	if !packet.ParseGenevePayload(payload, &e) {
		r.Verdict = datapath.Malformed
		return
	}
	inner := e.Inner
	r.VNI, r.Inner = e.VNI, inner
	if e.Options.HasTrace {
		r.Trace = e.Options.TraceID
	}
	sender, ok := snap.Host(outerSrc)
	if !ok {
		r.Verdict = p.attack(datapath.UnknownSender, outerSrc, inner, e.Options.SourceVNI)
		return
	}
	var dst tables.Mapping
	if !snap.Lookup(e.VNI, inner.Dst(), &dst) || !dst.Local {
		r.Verdict = datapath.NotLocal
		return
	}
	if e.Options.SourceVNI != e.VNI && !snap.Peered(e.VNI, e.Options.SourceVNI) {
		r.Verdict = p.attack(datapath.NotPeered, outerSrc, inner, e.Options.SourceVNI)
		return
	}
	if sender.Role == tables.RoleEdge {
		if !fromInternet(snap, &e) {
			r.Verdict = p.attack(datapath.SenderMismatch, outerSrc, inner, e.Options.SourceVNI)
			return
		}
	} else {
		var src tables.Mapping
		if !snap.Lookup(e.Options.SourceVNI, inner.Src(), &src) || src.Underlay != outerSrc {
			r.Verdict = p.attack(datapath.SenderMismatch, outerSrc, inner, e.Options.SourceVNI)
			return
		}
	}
	to, ok := p.Attachment(dst.ENI)
	if !ok {
		r.Verdict = datapath.NoPort
		return
	}
	r.Verdict, r.To, r.Packet = datapath.Delivered, to, inner
}

// fromInternet checks what an edge sent: translated internet traffic, in
// the destination's own VPC, which has an internet gateway, from a source
// outside that VPC (an edge never speaks for an instance).
func fromInternet(snap *tables.Snapshot, e *packet.Encap) bool {
	vpc, ok := snap.VPC(e.VNI)
	return ok && e.Options.SourceVNI == e.VNI && vpc.InternetGateway != 0 && !vpc.CIDR.Contains(e.Inner.Src())
}

// attack reports a verdict that indicates an attack and returns it.
func (p *Plane) attack(v datapath.Verdict, outerSrc netip.Addr, inner packet.IPv4, claimed uint32) datapath.Verdict {
	p.cfg.Events(datapath.Event{Verdict: v, OuterSrc: outerSrc, OuterDst: p.cfg.Underlay, InnerSrc: inner.Src(), InnerDst: inner.Dst(), ClaimedVNI: claimed})
	return v
}
