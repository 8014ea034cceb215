package dataplane

import (
	"errors"
	"net/netip"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// maxPacket bounds one packet in a buffer: the largest IPv4 packet.
const maxPacket = 1 << 16

// ServePort runs the egress story for every packet an instance sends,
// until its port is closed: batches are read from the port, encapsulated
// in place, and written to the wire as one batch; packets for this host,
// and ICMP errors for the sender, are written to their ports.
func (p *Plane) ServePort(a *Attachment) error {
	bs := max(1, a.Port.BatchSize())
	bufs, sizes := make([][]byte, bs), make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, packet.Headroom+maxPacket)
	}
	w := newEgressWork(bs)
	w.flows = p.Flows.Table(datapath.Egress)
	defer p.Flows.Release(w.flows)
	var retry datapath.Retry
	for {
		n, err := a.Port.Read(bufs, sizes)
		if err != nil {
			if retry.Again(err) {
				p.ReadErrors.Add(1)
				continue
			}
			return nil // the port was closed: the instance is gone
		}
		retry.Reset()
		p.tick()
		snap := p.tables.Load()
		w.flows.Begin()
		for i := range n {
			p.egressOne(snap, a, bufs[i], sizes[i], w)
		}
		w.flows.End()
		p.flush(w)
	}
}

// egressWork is one egress worker's reusable state.
type egressWork struct {
	out     []underlay.Datagram
	one     [][]byte
	scratch []byte
	r       Result
	flows   *datapath.FlowTable // nil: not recorded
	trace   *datapath.Trace     // set for a packet under openvpc trace --live
}

func newEgressWork(bs int) *egressWork {
	return &egressWork{out: make([]underlay.Datagram, 0, bs), one: make([][]byte, 1), scratch: make([]byte, ScratchSize)}
}

// egressOne runs one packet through the egress story and does what the
// verdict says: queue it for the wire, deliver it here, answer the sender.
func (p *Plane) egressOne(snap *tables.Snapshot, a *Attachment, buf []byte, n int, w *egressWork) datapath.Verdict {
	r := &w.r
	p.egress(snap, a, buf, n, w.scratch, r, w.trace)
	p.Counters.Add(r.Verdict)
	if w.flows != nil {
		w.flows.Record(r.VNI, r.Inner, n, r.Verdict)
	}
	switch r.Verdict {
	case datapath.Forwarded:
		w.out = append(w.out, underlay.Datagram{Buf: buf, Off: r.Start, Len: len(r.Payload),
			Peer: netip.AddrPortFrom(r.Dst, p.cfg.WirePort), SrcPort: r.SrcPort})
	case datapath.Delivered:
		w.one[0] = r.Packet
		_ = r.To.Port.Write(w.one) // a closing port drops, as a dead NIC would
	case datapath.ToHostService:
		w.one[0] = r.Packet
		_ = r.Service.Write(w.one)
	}
	if r.Reply != nil {
		w.one[0] = r.Reply
		_ = a.Port.Write(w.one)
	}
	if p.cache != nil {
		switch {
		case r.Cacheable && r.Reply == nil:
			p.cache.Egress(snap, a, r)
		case r.Inner != nil && replayable(r.Inner):
			p.cache.ForgetEgress(a, r)
		}
	}
	return r.Verdict
}

func (p *Plane) flush(w *egressWork) {
	if len(w.out) > 0 && p.cfg.Wire != nil {
		_, _ = p.cfg.Wire.WriteBatch(w.out) // the underlay counts its own errors
	}
	w.out = w.out[:0]
}

// Send runs the egress story for one packet as if the instance with ENI
// eni had sent it, and returns the verdict: how `openvpc ping --source`
// and tests put a crafted packet on the path an instance's would take.
func (p *Plane) Send(eni uint64, pkt []byte) (datapath.Verdict, error) { return p.send(eni, pkt, 0) }

// SendTraced is Send for `openvpc trace --live`: the packet carries the
// TraceID option id, so every host and edge that handles it reports what
// it did; this host reports its egress (and, for a local destination, its
// ingress) at once.
func (p *Plane) SendTraced(eni uint64, pkt []byte, id uint32) (datapath.Verdict, error) {
	return p.send(eni, pkt, id)
}

func (p *Plane) send(eni uint64, pkt []byte, trace uint32) (datapath.Verdict, error) {
	a, ok := p.Attachment(eni)
	if !ok {
		return datapath.NoPort, errors.New("dataplane: no such ENI attached")
	}
	buf := make([]byte, packet.Headroom+len(pkt))
	copy(buf[packet.Headroom:], pkt)
	w := newEgressWork(1)
	// Recorded like an instance's own packet: a forged ping shows in flows.
	w.flows = p.sent
	p.tick()
	w.flows.Begin()
	if trace != 0 {
		w.trace = &datapath.Trace{}
	}
	v := p.egressOne(p.tables.Load(), a, buf, len(pkt), w)
	w.flows.End()
	if trace != 0 {
		p.Traces.Add(datapath.TraceReport{ID: trace, Story: "egress", Verdict: v, At: time.Now(), Steps: w.trace.Steps})
		if v == datapath.Delivered {
			p.Traces.Add(datapath.TraceReport{ID: trace, Story: "ingress", Verdict: v, At: time.Now()})
		}
		if v == datapath.Forwarded && len(w.out) == 1 {
			// Re-encapsulate with the TraceID option in front of the same inner packet.
			d := &w.out[0]
			var e packet.Encap
			if packet.ParseGenevePayload(d.Buf[d.Off:d.Off+d.Len], &e) {
				opts := e.Options
				opts.HasTrace, opts.TraceID = true, trace
				if start, ok := packet.EncapsulateGeneve(buf, len(e.Inner), e.VNI, opts); ok {
					d.Off, d.Len = start, packet.Headroom+len(e.Inner)-start
				}
			}
		}
	}
	p.flush(w)
	return v, nil
}

// traced reports whether a datagram carries the TraceID option: a packet
// with no option beyond SourceVPC (nearly all of them) costs one compare.
func traced(payload []byte) bool {
	g := packet.Geneve(payload)
	if len(g) < packet.GeneveMinSize || g.OptLen() <= 2 {
		return false
	}
	o, ok := packet.ParseGeneveOptions(g)
	return ok && o.HasTrace
}

// ServeWire runs the ingress story for every datagram from the underlay
// until it is closed, delivering to local instances' ports. A transient
// read error is counted (ReadErrors) and the loop reads on; a closed
// underlay ends it with nil.
func (p *Plane) ServeWire() error {
	wire := p.cfg.Wire
	bs := max(1, wire.BatchSize())
	ds := make([]underlay.Datagram, bs)
	for i := range ds {
		ds[i].Buf = make([]byte, maxPacket)
	}
	one := make([][]byte, 1)
	var r Result
	flows := p.Flows.Table(datapath.Ingress)
	defer p.Flows.Release(flows)
	var retry datapath.Retry
	for {
		n, err := wire.ReadBatch(ds)
		if err != nil {
			if retry.Again(err) {
				p.ReadErrors.Add(1)
				continue
			}
			return nil
		}
		retry.Reset()
		p.tick()
		snap := p.tables.Load()
		flows.Begin()
		for i := range n {
			d := &ds[i]
			payload := d.Buf[d.Off : d.Off+d.Len]
			var t *datapath.Trace
			if traced(payload) {
				t = &datapath.Trace{} // only packets under openvpc trace --live pay for it
			}
			p.ingress(snap, d.Peer.Addr(), payload, &r, t)
			p.Counters.Add(r.Verdict)
			p.FromWire.Add(r.Verdict)
			flows.Record(r.VNI, r.Inner, len(r.Inner), r.Verdict)
			if r.Trace != 0 && t != nil {
				p.Traces.Add(datapath.TraceReport{ID: r.Trace, Story: "ingress", Verdict: r.Verdict, At: time.Now(), Steps: t.Steps})
			}
			if r.Verdict == datapath.Delivered {
				one[0] = r.Packet
				_ = r.To.Port.Write(one)
			}
			if p.cache != nil {
				switch {
				case r.Cacheable:
					p.cache.Ingress(snap, d.Peer.Addr(), payload, &r)
				case r.Inner != nil && replayable(r.Inner):
					p.cache.ForgetIngress(d.Peer.Addr(), payload, &r)
				}
			}
		}
		flows.End()
	}
}
