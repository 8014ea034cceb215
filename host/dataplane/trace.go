package dataplane

import (
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
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

// Redecide runs the egress story on snap for the packet at
// buf[packet.Headroom:packet.Headroom+n] as if from had sent it, quietly:
// no counter, event, flow record or connection-tracking change, nothing
// sent. A flow cache asks it to revalidate an entry after a snapshot swap:
// the Result is the decision the story would make now. It allocates (a
// quiet view of the plane): not for the packet path.
func (p *Plane) Redecide(snap *tables.Snapshot, from *Attachment, buf []byte, n int, r *Result) {
	p.quiet().egress(snap, from, buf, n, make([]byte, ScratchSize), r, nil)
}

// RedecideIngress is Redecide for the ingress story: payload (Geneve
// onward) from outerSrc.
func (p *Plane) RedecideIngress(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *Result) {
	p.quiet().ingress(snap, outerSrc, payload, r, nil)
}
