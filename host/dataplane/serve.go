package dataplane

import (
	"net/netip"

	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// maxPacket bounds one packet in a buffer: the largest IPv4 packet.
const maxPacket = 1 << 16

// ServePort runs the egress story for every packet an instance sends,
// until its port is closed: batches are read from the port, encapsulated
// in place, and written to the wire as one batch; packets for this host,
// and ICMP errors for the sender, are written to their ports.
func (p *Plane) ServePort(a *Attachment, wire underlay.Conn) error {
	bs := max(1, a.Port.BatchSize())
	bufs, sizes := make([][]byte, bs), make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, packet.Headroom+maxPacket)
	}
	out := make([]underlay.Datagram, 0, bs)
	one := make([][]byte, 1)
	scratch := make([]byte, ScratchSize)
	var r Result
	for {
		n, err := a.Port.Read(bufs, sizes)
		if err != nil {
			return err
		}
		snap := p.tables.Load()
		out = out[:0]
		for i := range n {
			p.Egress(snap, a, bufs[i], sizes[i], scratch, &r)
			p.Counters.Add(r.Verdict)
			switch r.Verdict {
			case Forwarded:
				out = append(out, underlay.Datagram{Buf: bufs[i], Off: r.Start, Len: len(r.Payload),
					Peer: netip.AddrPortFrom(r.Dst, p.cfg.WirePort), SrcPort: r.SrcPort})
			case Delivered:
				one[0] = r.Packet
				_ = r.To.Port.Write(one) // a closing port drops, as a dead NIC would
			}
			if r.Reply != nil {
				one[0] = r.Reply
				_ = a.Port.Write(one)
			}
		}
		if len(out) > 0 {
			_, _ = wire.WriteBatch(out) // the underlay counts its own errors
		}
	}
}

// ServeWire runs the ingress story for every datagram from the underlay
// until it is closed, delivering to local instances' ports.
func (p *Plane) ServeWire(wire underlay.Conn) error {
	bs := max(1, wire.BatchSize())
	ds := make([]underlay.Datagram, bs)
	for i := range ds {
		ds[i].Buf = make([]byte, maxPacket)
	}
	one := make([][]byte, 1)
	var r Result
	for {
		n, err := wire.ReadBatch(ds)
		if err != nil {
			return err
		}
		snap := p.tables.Load()
		for i := range n {
			d := &ds[i]
			p.Ingress(snap, d.Peer.Addr(), d.Buf[d.Off:d.Off+d.Len], &r)
			p.Counters.Add(r.Verdict)
			if r.Verdict == Delivered {
				one[0] = r.Packet
				_ = r.To.Port.Write(one)
			}
		}
	}
}
