package dataplane

import (
	"fmt"
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
// An edge speaks for what lies beyond it (the internet, a VPN, …): what it
// sends comes from addresses outside the VPC, so for an edge "owns the
// source" means the source is outside the VPC and the edge serves a
// function whose target the VPC has.
//
// The peering check comes before the sender check: a host's cache holds
// no mappings of VPCs that are not peered with its own, so for those the
// sender cannot be verified — the packet is refused for what it is, an
// attempt to cross into a VPC without a peering.
func (p *Plane) Ingress(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *Result) {
	p.ingress(snap, outerSrc, payload, r, nil)
}

// ingress is the story. t, when not nil, records each step as it runs:
// each check is followed by its one line of trace, which costs the packet
// path a predictable branch.
func (p *Plane) ingress(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *Result, t *datapath.Trace) {
	*r = Result{}
	var e packet.Encap
	ok := packet.ParseGenevePayload(payload, &e)
	if t != nil {
		t.Step("parse", ok, explainParse(&e, ok))
	}
	if !ok {
		r.Verdict = datapath.Malformed
		return
	}
	inner := e.Inner
	r.VNI, r.Inner = e.VNI, inner
	if e.Options.HasTrace {
		r.Trace = e.Options.TraceID
	}

	sender, ok := snap.Sender(outerSrc)
	if t != nil {
		t.Step("known sender", ok, explainSender(sender, outerSrc, ok))
	}
	if !ok {
		r.Verdict = p.attack(datapath.UnknownSender, outerSrc, inner, e.Options.SourceVNI)
		return
	}

	var dst tables.Mapping
	ok = snap.Lookup(e.VNI, inner.Dst(), &dst) && dst.Local
	if t != nil {
		t.Step("destination is local", ok, explainLocal(&e, &dst, ok))
	}
	if !ok {
		r.Verdict = datapath.NotLocal
		return
	}

	ok = e.Options.SourceVNI == e.VNI || snap.Peered(e.VNI, e.Options.SourceVNI)
	if t != nil {
		t.Step("peered", ok, explainPeered(&e, ok))
	}
	if !ok {
		r.Verdict = p.attack(datapath.NotPeered, outerSrc, inner, e.Options.SourceVNI)
		return
	}

	var src tables.Mapping
	if sender.Role == tables.RoleEdge {
		ok = fromEdge(snap, sender, &e)
	} else {
		ok = snap.Lookup(e.Options.SourceVNI, inner.Src(), &src) && src.Underlay == outerSrc
	}
	if t != nil {
		t.Step("sender owns the source", ok, explainOwner(sender, outerSrc, &e, ok))
	}
	if !ok {
		r.Verdict = p.attack(datapath.SenderMismatch, outerSrc, inner, e.Options.SourceVNI)
		return
	}

	to, attached := p.Attachment(dst.ENI)
	if vpc, ok := snap.VPC(e.VNI); ok && vpc.Firewalled() {
		tm := &p.cfg.Timeouts
		if attached {
			tm = to.timeoutsOr(tm)
		}
		if r.Verdict = p.ingressFirewall(snap, vpc, &e, &dst, &src, tm, t); r.Verdict != datapath.Forwarded {
			return
		}
	}

	ok = attached
	if t != nil {
		t.Step("deliver", ok, explainDeliver(dst.ENI, ok))
	}
	if !ok {
		r.Verdict = datapath.NoPort
		return
	}
	r.Verdict, r.To, r.Packet = datapath.Delivered, to, inner
}

// ingressFirewall is the receiver's half of the firewall: its subnet's
// network ACL inbound, then its security groups. src is the source's
// mapping (empty from an edge: the internet has no groups).
func (p *Plane) ingressFirewall(snap *tables.Snapshot, vpc *tables.VPC, e *packet.Encap, dst, src *tables.Mapping, tm *Timeouts, t *datapath.Trace) datapath.Verdict {
	f := flowOf(e.Inner)
	if v := networkACL(vpc, dst.IP, &f, true, e.Inner.Src(), t); v != datapath.Forwarded {
		return v
	}
	return p.securityGroups(snap, vpc, dst.ENI, dst.IP, dst, tm, e.Inner, &f, false, e.Inner.Src(), src, e.Options.SourceVNI, t)
}

// fromEdge checks what an edge sent: traffic in the destination's own VPC,
// from a source outside that VPC (an edge never speaks for an instance),
// of a function the edge serves for a target the VPC has. A packet marked
// with its function and target (EdgeTarget) is of that target: an
// internet gateway attached to the VPC, or a target (a VPN connection)
// that the destination's route table routes the packet's source to — so
// a site sends only from the prefixes routed to it. An unmarked packet is
// of the VPC's internet gateway.
func fromEdge(snap *tables.Snapshot, sender *tables.Host, e *packet.Encap) bool {
	vpc, ok := snap.VPC(e.VNI)
	if !ok || e.Options.SourceVNI != e.VNI || vpc.CIDR.Contains(e.Inner.Src()) {
		return false
	}
	t := tables.Target{Kind: tables.TargetInternetGateway, ID: vpc.InternetGateway}
	if e.Options.HasTarget {
		t = tables.Target{Kind: tables.TargetKind(e.Options.Function), ID: e.Options.Target}
	}
	if t.Kind == tables.TargetInternetGateway {
		return vpc.Attached(t) && sender.Serves(t)
	}
	if !t.Kind.Edge() || !sender.Accepts(t) {
		return false
	}
	back := vpc.Route(e.Inner.Dst(), e.Inner.Src())
	return back != nil && back.Target == t
}

// attack reports a verdict that indicates an attack and returns it.
func (p *Plane) attack(v datapath.Verdict, outerSrc netip.Addr, inner packet.IPv4, claimed uint32) datapath.Verdict {
	p.cfg.Events(datapath.Event{Verdict: v, OuterSrc: outerSrc, OuterDst: p.cfg.Underlay, InnerSrc: inner.Src(), InnerDst: inner.Dst(), ClaimedVNI: claimed})
	return v
}

// What each ingress step says in a trace.

func explainParse(e *packet.Encap, ok bool) string {
	if !ok {
		return "not a Geneve packet of ours with a whole IPv4 packet inside"
	}
	return fmt.Sprintf("Geneve VNI %d, SourceVPC %d, inner %v → %v", e.VNI, e.Options.SourceVNI, e.Inner.Src(), e.Inner.Dst())
}

func explainSender(h *tables.Host, outerSrc netip.Addr, ok bool) string {
	if !ok {
		return fmt.Sprintf("%v is no host or edge this host knows", outerSrc)
	}
	return fmt.Sprintf("%v is a registered %s", outerSrc, h.Role)
}

func explainLocal(e *packet.Encap, dst *tables.Mapping, ok bool) string {
	if !ok {
		return fmt.Sprintf("%v in VNI %d is not an ENI on this host", e.Inner.Dst(), e.VNI)
	}
	return fmt.Sprintf("%v is eni-%016x, on this host", e.Inner.Dst(), dst.ENI)
}

func explainPeered(e *packet.Encap, ok bool) string {
	switch {
	case e.Options.SourceVNI == e.VNI:
		return "same VPC"
	case ok:
		return fmt.Sprintf("VPC %d is peered with VPC %d", e.Options.SourceVNI, e.VNI)
	}
	return fmt.Sprintf("VPC %d is not actively peered with VPC %d", e.Options.SourceVNI, e.VNI)
}

func explainOwner(sender *tables.Host, outerSrc netip.Addr, e *packet.Encap, ok bool) string {
	src := e.Inner.Src()
	switch {
	case sender.Role == tables.RoleEdge && ok:
		return fmt.Sprintf("from %v, outside the VPC, through an edge serving it", src)
	case sender.Role == tables.RoleEdge:
		return fmt.Sprintf("an edge may only bring traffic from outside the VPC, for a function it serves for the VPC; %v is not that", src)
	case ok:
		return fmt.Sprintf("%v lives on %v", src, outerSrc)
	}
	return fmt.Sprintf("%v in VPC %d does not live on %v", src, e.Options.SourceVNI, outerSrc)
}

func explainDeliver(eni uint64, ok bool) string {
	if !ok {
		return fmt.Sprintf("eni-%016x is not attached yet", eni)
	}
	return fmt.Sprintf("to eni-%016x", eni)
}
