package dataplane

import (
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/packet"
)

// quiet is a view of p that raises no security events and tracks no flow:
// a trace explains a packet, it is not one.
func (p *Plane) quiet() *Plane {
	q := &Plane{cfg: p.cfg, tables: p.tables, conntrack: p.conntrack, explaining: true}
	q.clock.Store(p.clock.Load())
	q.serviceLimit.Store(p.serviceLimit.Load())
	q.cfg.Events = func(datapath.Event) {}
	q.attached.Store(p.attached.Load())
	q.services.Store(p.services.Load())
	return q
}

// TraceEgress runs the egress story on pkt as if the instance attached as
// from had sent it — the real story, on the live cache, with a tracer
// attached, sending nothing and raising no event — and returns the steps
// it took. r is the story's result; its Payload (a copy) is what would go
// on the wire.
func (p *Plane) TraceEgress(from *Attachment, pkt []byte) ([]datapath.Step, Result) {
	buf := make([]byte, packet.Headroom+len(pkt))
	copy(buf[packet.Headroom:], pkt)
	var r Result
	var t datapath.Trace
	p.quiet().egress(p.tables.Load(), from, buf, len(pkt), make([]byte, ScratchSize), &r, &t)
	if r.Payload != nil {
		r.Payload = append([]byte(nil), r.Payload...)
	}
	return t.Steps, r
}

// TraceIngress runs the ingress story on payload (Geneve onward) as if it
// had come from outerSrc, without delivering it or raising an event, and
// returns the steps it took.
func (p *Plane) TraceIngress(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict) {
	var r Result
	var t datapath.Trace
	p.quiet().ingress(p.tables.Load(), outerSrc, append([]byte(nil), payload...), &r, &t)
	return t.Steps, r.Verdict
}
