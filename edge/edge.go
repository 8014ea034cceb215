// Package edge is Blackfoot: the edge of the VPC network. An edge is an
// underlay endpoint like a host; instead of instances it owns an outside
// port (the internet). Its first function is the internet gateway: it
// unwraps VPC traffic and translates private addresses to Elastic IPs on
// the way out, and back on the way in, with no per-flow state, so any edge
// can carry any packet and edges scale out.
//
// Two short stories, named after their checks:
//
//	Outbound (wire → outside): parse → known host → sender owns the source →
//	    internet gateway → destination outside the VPC → Elastic IP → translate → out
//	Inbound (outside → wire): parse → Elastic IP → mapping → router hop (TTL) →
//	    translate → encapsulate → to the instance's host
package edge

import (
	"net/netip"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/nat"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// Config is what an edge needs besides its cache.
type Config struct {
	// Underlay is the edge's underlay address.
	Underlay netip.Addr
	// Wire is the underlay the edge exchanges Geneve with hosts on.
	Wire underlay.Conn
	// WirePort is the UDP port hosts receive Geneve on (default 6081).
	WirePort uint16
	// Outside is the internet side: a Linux interface, or a netstack
	// segment in tests and `openvpc up`.
	Outside datapath.Port
	// Events receives one call per packet whose verdict is an attack; it
	// must not block.
	Events func(datapath.Event)
}

// Edge is one edge's data plane.
type Edge struct {
	cfg    Config
	tables *tables.Tables
	// Out and In count the verdicts of the two stories.
	Out, In datapath.Counters
	// Flows holds per-flow records: egress is out (as the instance sent
	// it, before translation), ingress is in (after translation).
	Flows datapath.Flows
	// Traces holds what the edge saw of packets under `openvpc trace --live`.
	Traces datapath.Traces
}

// New returns an edge data plane over the cache t.
func New(t *tables.Tables, cfg Config) *Edge {
	if cfg.WirePort == 0 {
		cfg.WirePort = underlay.Port
	}
	if cfg.Events == nil {
		cfg.Events = func(datapath.Event) {}
	}
	return &Edge{cfg: cfg, tables: t}
}

// Outbound is the story of a datagram from a host, payload being its UDP
// payload (Geneve onward) from outerSrc. When the verdict is Forwarded,
// *out is the translated packet to send to the outside: a sub-slice of
// payload.
func (x *Edge) Outbound(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, out *packet.IPv4) datapath.Verdict {
	var e packet.Encap
	if !packet.ParseGenevePayload(payload, &e) {
		return datapath.Malformed
	}
	return x.outbound(snap, outerSrc, &e, out)
}

// outbound is Outbound after parsing.
func (x *Edge) outbound(snap *tables.Snapshot, outerSrc netip.Addr, e *packet.Encap, out *packet.IPv4) datapath.Verdict {
	inner := e.Inner
	sender, ok := snap.Host(outerSrc)
	if !ok || sender.Role != tables.RoleHost {
		return x.attack(datapath.UnknownSender, outerSrc, inner, e.Options.SourceVNI)
	}
	var src tables.Mapping
	if e.Options.SourceVNI != e.VNI || !snap.Lookup(e.VNI, inner.Src(), &src) || src.Underlay != outerSrc {
		return x.attack(datapath.SenderMismatch, outerSrc, inner, e.Options.SourceVNI)
	}
	vpc, ok := snap.VPC(e.VNI)
	if !ok || vpc.InternetGateway == 0 || vpc.CIDR.Contains(inner.Dst()) {
		return datapath.NoRoute
	}
	pub, ok := snap.PublicIP(e.VNI, inner.Src())
	if !ok {
		return datapath.NoPublicIP
	}
	nat.Outbound(inner, pub)
	*out = inner
	return datapath.Forwarded
}

// InboundResult is where Inbound sends a packet: Payload (Geneve onward)
// starts at Start in the packet's buffer and goes to Dst from SrcPort.
// VNI and Inner name its flow as the instance receives it (translated).
type InboundResult struct {
	Payload []byte
	Start   int
	Dst     netip.Addr
	SrcPort uint16
	VNI     uint32
	Inner   packet.IPv4
}

// Inbound is the story of a packet from the internet, at
// buf[packet.Headroom:packet.Headroom+n]; it is translated and
// encapsulated in place.
func (x *Edge) Inbound(snap *tables.Snapshot, buf []byte, n int, r *InboundResult) datapath.Verdict {
	pkt := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
	if !pkt.Valid() {
		return datapath.Malformed
	}
	pkt = pkt[:pkt.TotalLen()]
	vni, private, ok := snap.ByPublicIP(pkt.Dst())
	if !ok {
		return datapath.NoMapping
	}
	var m tables.Mapping
	if !snap.Lookup(vni, private, &m) || !m.Underlay.IsValid() {
		return datapath.NoMapping
	}
	// The edge is a router hop, like the VPC router on the host.
	ttl := pkt.TTL()
	if ttl <= 1 {
		return datapath.TTLExceeded
	}
	old := uint16(ttl)<<8 | uint16(pkt.Protocol())
	pkt.SetTTL(ttl - 1)
	pkt.SetChecksum(packet.ChecksumUpdate16(pkt.Checksum(), old, old-0x100))
	nat.Inbound(pkt, private)
	start, ok := packet.EncapsulateGeneve(buf, len(pkt), vni, packet.GeneveOptions{SourceVNI: vni})
	if !ok {
		return datapath.Malformed
	}
	*r = InboundResult{Payload: buf[start : packet.Headroom+len(pkt)], Start: start, Dst: m.Underlay, SrcPort: packet.SourcePort(packet.FlowHash(pkt)), VNI: vni, Inner: pkt}
	return datapath.Forwarded
}

// Underlay is the edge's underlay address.
func (x *Edge) Underlay() netip.Addr { return x.cfg.Underlay }

func (x *Edge) attack(v datapath.Verdict, outerSrc netip.Addr, inner packet.IPv4, claimed uint32) datapath.Verdict {
	x.cfg.Events(datapath.Event{Verdict: v, OuterSrc: outerSrc, OuterDst: x.cfg.Underlay, InnerSrc: inner.Src(), InnerDst: inner.Dst(), ClaimedVNI: claimed})
	return v
}

// maxPacket bounds one packet in a buffer: the largest IPv4 packet.
const maxPacket = 1 << 16

// ServeWire runs the outbound story for every datagram from the underlay
// until it is closed, writing translated packets to the outside as one
// batch per read.
func (x *Edge) ServeWire() error {
	wire := x.cfg.Wire
	bs := max(1, wire.BatchSize())
	ds := make([]underlay.Datagram, bs)
	for i := range ds {
		ds[i].Buf = make([]byte, maxPacket)
	}
	out := make([][]byte, 0, bs)
	var pkt packet.IPv4
	var e packet.Encap
	flows := x.Flows.Table(datapath.Egress)
	defer x.Flows.Release(flows)
	for {
		n, err := wire.ReadBatch(ds)
		if err != nil {
			return err
		}
		snap := x.tables.Load()
		flows.Begin()
		for i := range n {
			d := &ds[i]
			v := datapath.Malformed
			if packet.ParseGenevePayload(d.Buf[d.Off:d.Off+d.Len], &e) {
				// Named as the instance sent it: translation rewrites the source.
				id, n := datapath.NewFlowID(e.VNI, e.Inner), len(e.Inner)
				v = x.outbound(snap, d.Peer.Addr(), &e, &pkt)
				flows.RecordID(id, n, v)
				if e.Options.HasTrace {
					x.Traces.Add(datapath.TraceReport{ID: e.Options.TraceID, Story: "edge outbound", Verdict: v, At: time.Now()})
				}
			}
			x.Out.Add(v)
			if v == datapath.Forwarded {
				out = append(out, pkt)
			}
		}
		flows.End()
		if len(out) > 0 {
			_ = x.cfg.Outside.Write(out) // the outside counts its own errors
		}
		clear(out)
		out = out[:0]
	}
}

// ServeOutside runs the inbound story for every packet from the outside
// until it is closed, sending the encapsulated packets as one batch.
func (x *Edge) ServeOutside() error {
	port := x.cfg.Outside
	bs := max(1, port.BatchSize())
	bufs, sizes := make([][]byte, bs), make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, packet.Headroom+maxPacket)
	}
	ds := make([]underlay.Datagram, 0, bs)
	var r InboundResult
	flows := x.Flows.Table(datapath.Ingress)
	defer x.Flows.Release(flows)
	for {
		n, err := port.Read(bufs, sizes)
		if err != nil {
			return err
		}
		snap := x.tables.Load()
		flows.Begin()
		for i := range n {
			v := x.Inbound(snap, bufs[i], sizes[i], &r)
			x.In.Add(v)
			if v == datapath.Forwarded {
				flows.Record(r.VNI, r.Inner, len(r.Inner), v) // as the instance receives it, translated
			} else if p := packet.IPv4(bufs[i][packet.Headroom : packet.Headroom+sizes[i]]); p.Valid() {
				flows.Record(0, p[:p.TotalLen()], sizes[i], v) // no VPC: it never got in
			}
			if v == datapath.Forwarded {
				ds = append(ds, underlay.Datagram{Buf: bufs[i], Off: r.Start, Len: len(r.Payload),
					Peer: netip.AddrPortFrom(r.Dst, x.cfg.WirePort), SrcPort: r.SrcPort})
			}
		}
		flows.End()
		if len(ds) > 0 {
			_, _ = x.cfg.Wire.WriteBatch(ds) // the underlay counts its own errors
		}
		ds = ds[:0]
	}
}
