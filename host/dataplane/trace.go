package dataplane

import (
	"fmt"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// quiet is a view of p that raises no security events: a trace explains a
// packet, it is not one.
func (p *Plane) quiet() *Plane {
	q := &Plane{cfg: p.cfg, tables: p.tables}
	q.cfg.Events = func(datapath.Event) {}
	q.attached.Store(p.attached.Load())
	return q
}

// egressSteps are the egress story's checks, in order, and the verdicts
// each can end the story with.
var egressSteps = []struct {
	name  string
	stops []datapath.Verdict
}{
	{"parse", []datapath.Verdict{datapath.Malformed}},
	{"source check", []datapath.Verdict{datapath.SpoofedSource}},
	{"route", []datapath.Verdict{datapath.NoRoute}},
	{"router hop", []datapath.Verdict{datapath.TTLExceeded}},
	{"mapping", []datapath.Verdict{datapath.NoMapping, datapath.NoEdge}},
	{"MTU", []datapath.Verdict{datapath.TooBig}},
	{"encapsulate", nil},
}

// TraceEgress runs the egress story on pkt as if the instance attached as
// from had sent it — the real story, on the live cache, but sending
// nothing and raising no event — and explains each step it took. r is
// the story's result; its Payload (a copy) is what would go on the wire.
func (p *Plane) TraceEgress(from *Attachment, pkt []byte) ([]datapath.Step, Result) {
	snap := p.tables.Load()
	buf := make([]byte, packet.Headroom+len(pkt))
	copy(buf[packet.Headroom:], pkt)
	var r Result
	p.quiet().Egress(snap, from, buf, len(pkt), make([]byte, ScratchSize), &r)
	ip := packet.IPv4(pkt)
	var steps []datapath.Step
	for _, s := range egressSteps {
		stopped := false
		for _, v := range s.stops {
			stopped = stopped || r.Verdict == v
		}
		if r.Verdict == datapath.Delivered && s.name == "encapsulate" {
			// Same host: the ingress story follows, without the wire.
			steps = append(steps, datapath.Step{Name: "deliver on this host", Pass: true, Detail: fmt.Sprintf("to %s, after the receiving host's checks", eniName(r.To))})
			break
		}
		steps = append(steps, datapath.Step{Name: s.name, Pass: !stopped, Detail: explainEgress(snap, p.cfg.Underlay, p.cfg.WirePort, from, ip, s.name, r)})
		if stopped {
			break
		}
	}
	if r.Payload != nil {
		r.Payload = append([]byte(nil), r.Payload...)
	}
	return steps, r
}

// explainEgress says what the cache holds for one egress step.
func explainEgress(snap *tables.Snapshot, self netip.Addr, port uint16, from *Attachment, pkt packet.IPv4, step string, r Result) string {
	if !pkt.Valid() {
		return "not a whole IPv4 packet"
	}
	switch step {
	case "parse":
		return fmt.Sprintf("IPv4 %v → %v, protocol %d, %d bytes", pkt.Src(), pkt.Dst(), pkt.Protocol(), pkt.TotalLen())
	case "source check":
		if r.Verdict == datapath.SpoofedSource {
			return fmt.Sprintf("%v is not the address of %s (%v)", pkt.Src(), eniName(from), from.IP)
		}
		return fmt.Sprintf("%v is %s's address", pkt.Src(), eniName(from))
	case "route":
		vpc, ok := snap.VPC(from.VNI)
		if !ok {
			return fmt.Sprintf("VPC %d is not in this host's cache", from.VNI)
		}
		rt := vpc.Route(from.IP, pkt.Dst())
		if rt == nil {
			return fmt.Sprintf("no route for %v in the route table of %v's subnet", pkt.Dst(), from.IP)
		}
		if r.Verdict == datapath.NoRoute {
			return fmt.Sprintf("route %v → %v leads nowhere from here (a blackhole, or a target that is not active)", rt.Dst, rt.Target)
		}
		return fmt.Sprintf("route %v → %v", rt.Dst, rt.Target)
	case "router hop":
		if from.Subnet.Contains(pkt.Dst()) {
			return "same subnet: no router hop"
		}
		if r.Verdict == datapath.TTLExceeded {
			return fmt.Sprintf("TTL %d runs out at the VPC router: time exceeded goes back", pkt.TTL())
		}
		return fmt.Sprintf("through the VPC router: TTL %d → %d", pkt.TTL(), pkt.TTL()-1)
	case "mapping":
		switch r.Verdict {
		case datapath.NoEdge:
			return "the route leads to an edge, and no edge is healthy"
		case datapath.NoMapping:
			return fmt.Sprintf("no mapping for %v: a miss is a drop", pkt.Dst())
		}
		if h, ok := snap.Host(r.Dst); ok && h.Role == tables.RoleEdge {
			return fmt.Sprintf("to the internet: edge %v, by flow hash among %d healthy edges", r.Dst, len(snap.Edges()))
		}
		return fmt.Sprintf("%v lives on host %v", pkt.Dst(), r.Dst)
	case "MTU":
		return fmt.Sprintf("%d bytes ≤ the instance MTU", pkt.TotalLen())
	case "encapsulate":
		var e packet.Encap
		if packet.ParseGenevePayload(r.Payload, &e) {
			return fmt.Sprintf("outer %v → %v, UDP %d → %d, Geneve VNI %d, SourceVPC %d", self, r.Dst, r.SrcPort, port, e.VNI, e.Options.SourceVNI)
		}
	}
	return ""
}

func eniName(a *Attachment) string {
	if a == nil {
		return "?"
	}
	return fmt.Sprintf("eni-%016x", a.ENI)
}

// ingressSteps are the ingress story's checks, in order.
var ingressSteps = []struct {
	name  string
	stops []datapath.Verdict
}{
	{"parse", []datapath.Verdict{datapath.Malformed}},
	{"known sender", []datapath.Verdict{datapath.UnknownSender}},
	{"destination is local", []datapath.Verdict{datapath.NotLocal}},
	{"peered", []datapath.Verdict{datapath.NotPeered}},
	{"sender owns the source", []datapath.Verdict{datapath.SenderMismatch}},
	{"deliver", []datapath.Verdict{datapath.NoPort}},
}

// TraceIngress runs the ingress story on payload (Geneve onward) as if it
// had come from outerSrc, without delivering it or raising an event, and
// explains each step.
func (p *Plane) TraceIngress(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict) {
	snap := p.tables.Load()
	var r Result
	p.quiet().Ingress(snap, outerSrc, append([]byte(nil), payload...), &r)
	var e packet.Encap
	parsed := packet.ParseGenevePayload(payload, &e)
	var steps []datapath.Step
	for _, s := range ingressSteps {
		stopped := false
		for _, v := range s.stops {
			stopped = stopped || r.Verdict == v
		}
		detail := ""
		if parsed {
			detail = explainIngress(snap, outerSrc, &e, s.name, r)
		}
		steps = append(steps, datapath.Step{Name: s.name, Pass: !stopped, Detail: detail})
		if stopped {
			break
		}
	}
	return steps, r.Verdict
}

func explainIngress(snap *tables.Snapshot, outerSrc netip.Addr, e *packet.Encap, step string, r Result) string {
	in := e.Inner
	switch step {
	case "parse":
		return fmt.Sprintf("Geneve VNI %d, SourceVPC %d, inner %v → %v", e.VNI, e.Options.SourceVNI, in.Src(), in.Dst())
	case "known sender":
		if h, ok := snap.Host(outerSrc); ok {
			return fmt.Sprintf("%v is a registered %s", outerSrc, h.Role)
		}
		return fmt.Sprintf("%v is no host or edge this host knows", outerSrc)
	case "destination is local":
		var m tables.Mapping
		if snap.Lookup(e.VNI, in.Dst(), &m) && m.Local {
			return fmt.Sprintf("%v is eni-%016x, on this host", in.Dst(), m.ENI)
		}
		return fmt.Sprintf("%v in VNI %d is not an ENI on this host", in.Dst(), e.VNI)
	case "peered":
		if e.Options.SourceVNI == e.VNI {
			return "same VPC"
		}
		if r.Verdict == datapath.NotPeered {
			return fmt.Sprintf("VPC %d is not actively peered with VPC %d", e.Options.SourceVNI, e.VNI)
		}
		return fmt.Sprintf("VPC %d is peered with VPC %d", e.Options.SourceVNI, e.VNI)
	case "sender owns the source":
		if h, ok := snap.Host(outerSrc); ok && h.Role == tables.RoleEdge {
			if r.Verdict == datapath.SenderMismatch {
				return fmt.Sprintf("an edge may only bring traffic from outside the VPC, to a VPC with an internet gateway; %v is not that", in.Src())
			}
			return fmt.Sprintf("from the internet (%v), through an edge", in.Src())
		}
		if r.Verdict == datapath.SenderMismatch {
			return fmt.Sprintf("%v in VPC %d does not live on %v", in.Src(), e.Options.SourceVNI, outerSrc)
		}
		return fmt.Sprintf("%v lives on %v", in.Src(), outerSrc)
	case "deliver":
		if r.Verdict == datapath.NoPort {
			return "the ENI is not attached yet"
		}
		return fmt.Sprintf("to %s", eniName(r.To))
	}
	return ""
}
