// Package edge is Blackfoot: the edge of the VPC network. An edge is an
// underlay endpoint like a host; instead of instances it serves functions
// — the internet gateway (edge/igw) first; VPN, Direct Connect and
// endpoints to come — each with its own port to the outside. The edge is
// a dispatcher: it checks every packet's sender as a host does, hands it
// to the function the packet names, and carries what a function lets in
// to the instance's host.
//
// Two short stories, named after their checks:
//
//	Outbound (wire → outside): parse → known host → sender owns the source →
//	    function → (the function's own steps) → out of its outside port
//	Inbound (outside → wire): parse → (the function's own steps) → mapping →
//	    router hop (TTL) → encapsulate → to the instance's host
package edge

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/igw"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// Function is one of Blackfoot's jobs. The edge has verified a packet's
// sender before its function sees it; a function decides only what is its
// own (an Elastic IP, a tunnel, a VLAN) and leaves the packet in place.
// Adding a function is writing one and listing it in Config.Functions.
type Function interface {
	// Kind is the route target kind the function serves.
	Kind() tables.TargetKind
	// Targets are the targets it serves; nil serves every target of the kind.
	Targets() []uint64
	// Outside is its port to what lies beyond the VPC.
	Outside() datapath.Port
	// FromVPC takes a packet an instance sent to target in VPC vni toward
	// the outside, rewriting it in place if it must; Forwarded means write
	// inner to the outside port.
	FromVPC(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4, t *datapath.Trace) datapath.Verdict
	// FromOutside takes a packet from the outside into a VPC: it says which
	// VPC, and leaves pkt addressed to the instance (translated in place if
	// it must).
	FromOutside(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (vni uint32, v datapath.Verdict)
}

// Targeted is a function whose packets to hosts name it and their target
// (the Geneve EdgeTarget option), so that the receiving host accepts them
// only for a target its VPC routes their source to (a VPN connection). A
// function that is not Targeted sends unmarked packets: the internet.
type Targeted interface {
	FromOutsideTo(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (vni uint32, target uint64, v datapath.Verdict)
}

// Runner is a function with work of its own beside the packets (the VPN
// function's tunnels): the edge runs it while it serves.
type Runner interface {
	Run(ctx context.Context) error
}

// Bounded is a function whose outside carries packets of at most MTU
// bytes (a VPN tunnel: kernel-libipsec's ipsec0). A larger packet that may
// not be fragmented is answered by the edge with ICMP "fragmentation
// needed", sent back to the instance as if from the destination — the
// host accepts from the edge only sources routed to the function's target,
// and the destination is one — so the instance's path MTU discovery works
// for every protocol, and a TCP connection that started over a wider path
// (Direct Connect) shrinks its segments when it fails over to the tunnel.
type Bounded interface {
	MTU() int
}

// Relay is a function whose far side is another Geneve hop instead of an
// outside port — the service nodes of gateway endpoints (edge/endpoint):
// packets stay encapsulated and the edge re-heads them in place, so the
// instance's source address travels unchanged.
type Relay interface {
	Function
	// ToNode takes a packet an instance in VPC vni sent to target: the
	// node it goes to, and the options it carries there.
	ToNode(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4, t *datapath.Trace) (node netip.Addr, opts packet.GeneveOptions, v datapath.Verdict)
	// FromNode checks a packet from node (no registered host) and returns
	// the target the edge names toward the instance's host.
	// (What the packet carried is passed by value: a pointer handed to an
	// interface method would escape, and the story allocates nothing.)
	FromNode(snap *tables.Snapshot, node netip.Addr, vni uint32, opts packet.GeneveOptions, inner packet.IPv4, t *datapath.Trace) (target uint64, v datapath.Verdict)
}

// relayed is where a relay sends a packet: re-headed with VNI and Opts,
// to Dst.
type relayed struct {
	Dst  netip.Addr
	VNI  uint32
	Opts packet.GeneveOptions
}

// Config is what an edge needs besides its cache.
type Config struct {
	// Underlay is the edge's underlay address.
	Underlay netip.Addr
	// Wire is the underlay the edge exchanges Geneve with hosts on.
	Wire underlay.Conn
	// WirePort is the UDP port hosts receive Geneve on (default 6081).
	WirePort uint16
	// Functions are what the edge serves, at most one per target kind.
	Functions []Function
	// Outside, when set, is a port to the internet: the edge then serves
	// the internet gateway function on it (shorthand for igw.New(Outside)
	// in Functions).
	Outside datapath.Port
	// Events receives one call per packet whose verdict is an attack; it
	// must not block.
	Events func(datapath.Event)
}

// Edge is one edge's data plane.
type Edge struct {
	cfg    Config
	tables *tables.Tables
	fns    [numKinds]Function // by the target kind they serve
	// targets are each function's Targets, asked once.
	targets [numKinds][]uint64
	// Out and In count the verdicts of the two stories.
	Out, In datapath.Counters
	// Received counts the packets hosts sent, by the target kind they
	// named, served here or not: an edge that does not serve a function
	// should see none for it.
	Received [numKinds]atomic.Uint64
	// ReadErrors counts transient errors of the wire and outside ports:
	// each loop reads on after one.
	ReadErrors atomic.Uint64
	// Flows holds per-flow records: egress is out (as the instance sent
	// it, before translation), ingress is in (after translation).
	Flows datapath.Flows
	// Traces holds what the edge saw of packets under `openvpc trace --live`.
	Traces datapath.Traces
}

// numKinds bounds the target kinds (tables.TargetKind fits in a byte and
// the kinds are few).
const numKinds = 16

// New returns an edge data plane over the cache t. It refuses two
// functions of one kind, or a kind that is not an edge's.
func New(t *tables.Tables, cfg Config) (*Edge, error) {
	if cfg.WirePort == 0 {
		cfg.WirePort = underlay.Port
	}
	if cfg.Events == nil {
		cfg.Events = func(datapath.Event) {}
	}
	if cfg.Outside != nil {
		cfg.Functions = append(cfg.Functions, igw.New(cfg.Outside))
	}
	cfg.Functions = withEndpoints(cfg.Functions)
	x := &Edge{cfg: cfg, tables: t}
	for _, f := range cfg.Functions {
		k := f.Kind()
		if !k.Edge() || int(k) >= numKinds {
			return nil, fmt.Errorf("edge: %v is not an edge function", k)
		}
		if x.fns[k] != nil {
			return nil, fmt.Errorf("edge: two %v functions; serve each kind once", k)
		}
		x.fns[k], x.targets[k] = f, f.Targets()
	}
	return x, nil
}

// Functions are the functions the edge serves.
func (x *Edge) Functions() []Function { return x.cfg.Functions }

// Outbound is the story of a datagram from a host, payload being its UDP
// payload (Geneve onward) from outerSrc. When the verdict is Forwarded,
// *out is the packet to write to fn's outside port: a sub-slice of
// payload.
func (x *Edge) Outbound(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, out *packet.IPv4) datapath.Verdict {
	var e packet.Encap
	var rel relayed
	v, _ := x.outbound(snap, outerSrc, payload, &e, out, &rel, nil, nil)
	return v
}

// Relayed is the story of a datagram for a relay function (gateway
// endpoints): it returns the verdict and, when Forwarded, where the
// inner packet goes next (dst), in which VNI and with which options.
func (x *Edge) Relayed(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte) (v datapath.Verdict, dst netip.Addr, vni uint32, opts packet.GeneveOptions) {
	var e packet.Encap
	var rel relayed
	var out packet.IPv4
	v, _ = x.outbound(snap, outerSrc, payload, &e, &out, &rel, nil, nil)
	return v, rel.Dst, rel.VNI, rel.Opts
}

// outbound is the story; t, when not nil, records each step. It returns
// the function that takes the packet out, when the verdict is Forwarded.
// id, when not nil, gets the packet's flow as the instance sent it, before
// a function rewrites it. A relay's packet (Forwarded with rel.Dst set)
// stays where it is, to be re-headed for rel.
func (x *Edge) outbound(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, e *packet.Encap, out *packet.IPv4, rel *relayed, id *datapath.FlowID, t *datapath.Trace) (datapath.Verdict, Function) {
	*rel = relayed{}
	ok := packet.ParseGenevePayload(payload, e)
	if t != nil {
		t.Step("parse", ok, explainParse(e, ok))
	}
	if !ok {
		return datapath.Malformed, nil
	}
	inner := e.Inner
	if id != nil {
		*id = datapath.NewFlowID(e.VNI, inner)
	}

	sender, ok := snap.Sender(outerSrc)
	ok = ok && sender.Role == tables.RoleHost
	if r := x.relay(); !ok && r != nil && e.Options.HasEndpoint {
		// No host: maybe a service node replying through an endpoint.
		return x.fromNode(snap, r, outerSrc, e, rel, t), r
	}
	if t != nil {
		t.Step("known host", ok, explainSender(snap, outerSrc, ok))
	}
	if !ok {
		return x.attack(datapath.UnknownSender, outerSrc, inner, e.Options.SourceVNI), nil
	}

	var src tables.Mapping
	ok = e.Options.SourceVNI == e.VNI && snap.Lookup(e.VNI, inner.Src(), &src) && src.Underlay == outerSrc
	if t != nil {
		t.Step("sender owns the source", ok, explainOwner(e, outerSrc, ok))
	}
	if !ok {
		return x.attack(datapath.SenderMismatch, outerSrc, inner, e.Options.SourceVNI), nil
	}

	fn := x.function(e)
	if t != nil {
		t.Step("function", fn != nil, explainFunction(e, fn))
	}
	if fn == nil {
		return datapath.NoRoute, nil
	}
	if r, ok := fn.(Relay); ok {
		node, opts, v := r.ToNode(snap, e.VNI, e.Options.Target, inner, t)
		if v.Attack() {
			return x.attack(v, outerSrc, inner, e.Options.SourceVNI), fn
		}
		if v == datapath.Forwarded {
			*rel = relayed{Dst: node, VNI: e.VNI, Opts: opts}
		}
		return v, fn
	}
	if b, ok := fn.(Bounded); ok && len(inner) > b.MTU() && inner.DF() {
		return x.tooBig(e, outerSrc, fn, b.MTU(), rel, t), fn
	}
	v := fn.FromVPC(snap, e.VNI, e.Options.Target, inner, t)
	if v == datapath.Forwarded {
		*out = inner
	}
	return v, fn
}

// tooBig answers a packet larger than fn's outside carries with ICMP
// "fragmentation needed" back to its sender's host: the error replaces
// the packet in its buffer (it is shorter, and built aside first, since
// it quotes the packet) and goes back re-headed like a relay's packet,
// marked with the function and target the host routed the packet to.
func (x *Edge) tooBig(e *packet.Encap, host netip.Addr, fn Function, mtu int, rel *relayed, t *datapath.Trace) datapath.Verdict {
	if t != nil {
		t.Fail("MTU", "%d bytes with DF set; %v's outside carries at most %d: ICMP fragmentation needed back to %v", len(e.Inner), fn.Kind(), mtu, e.Inner.Src())
	}
	var scratch [packet.ICMPErrorSize]byte
	icmp := packet.ICMPError(scratch[:], e.Inner.Dst(), e.Inner, packet.ICMPv4DstUnreachable, packet.ICMPv4FragNeeded, uint16(mtu))
	e.Inner = e.Inner[:copy(e.Inner, icmp)]
	*rel = relayed{Dst: host, VNI: e.VNI, Opts: packet.GeneveOptions{SourceVNI: e.VNI, HasTarget: true, Function: e.Options.Function, Target: e.Options.Target}}
	return datapath.TooBig
}

// relay is the edge's gateway-endpoint relay, if it serves endpoints.
func (x *Edge) relay() Relay {
	r, _ := x.fns[tables.TargetEndpoint].(Relay)
	return r
}

// fromNode is the story of a service node's reply: the relay checks the
// node and the endpoint, then it goes to the instance's host as the
// internet gateway's inbound packets do (mapping, router hop), naming the
// endpoint as its target.
func (x *Edge) fromNode(snap *tables.Snapshot, r Relay, node netip.Addr, e *packet.Encap, rel *relayed, t *datapath.Trace) datapath.Verdict {
	target, v := r.FromNode(snap, node, e.VNI, e.Options, e.Inner, t)
	if v.Attack() {
		return x.attack(v, node, e.Inner, e.Options.SourceVNI)
	}
	if v != datapath.Forwarded {
		return v
	}
	var m tables.Mapping
	ok := snap.Lookup(e.VNI, e.Inner.Dst(), &m) && m.Underlay.IsValid()
	if t != nil {
		t.Step("mapping", ok, fmt.Sprintf("%v in VPC %d lives on %v", e.Inner.Dst(), e.VNI, m.Underlay))
	}
	if !ok {
		return datapath.NoMapping
	}
	pkt := e.Inner
	ttl := pkt.TTL()
	if ttl <= 1 {
		return datapath.TTLExceeded
	}
	old := uint16(ttl)<<8 | uint16(pkt.Protocol())
	pkt.SetTTL(ttl - 1)
	pkt.SetChecksum(packet.ChecksumUpdate16(pkt.Checksum(), old, old-0x100))
	*rel = relayed{Dst: m.Underlay, VNI: e.VNI, Opts: packet.GeneveOptions{SourceVNI: e.VNI, HasTarget: true, Function: uint8(tables.TargetEndpoint), Target: target}}
	return datapath.Forwarded
}

// function is the function the packet names, if the edge serves it for
// the packet's target.
func (x *Edge) function(e *packet.Encap) Function {
	k := e.Options.Function
	if !e.Options.HasTarget || int(k) >= numKinds || x.fns[k] == nil {
		return nil
	}
	if ts := x.targets[k]; ts != nil {
		for _, id := range ts {
			if id == e.Options.Target {
				return x.fns[k]
			}
		}
		return nil
	}
	return x.fns[k]
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

// Inbound is the story of a packet from fn's outside, at
// buf[packet.Headroom:packet.Headroom+n]; it is translated and
// encapsulated in place.
func (x *Edge) Inbound(snap *tables.Snapshot, fn Function, buf []byte, n int, r *InboundResult) datapath.Verdict {
	return x.inbound(snap, fn, buf, n, r, nil)
}

func (x *Edge) inbound(snap *tables.Snapshot, fn Function, buf []byte, n int, r *InboundResult, t *datapath.Trace) datapath.Verdict {
	pkt := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
	ok := pkt.Valid()
	if t != nil {
		t.Step("parse", ok, "an IPv4 packet from the outside")
	}
	if !ok {
		return datapath.Malformed
	}
	pkt = pkt[:pkt.TotalLen()]
	var vni uint32
	var v datapath.Verdict
	opts := packet.GeneveOptions{}
	if tf, ok := fn.(Targeted); ok {
		var target uint64
		vni, target, v = tf.FromOutsideTo(snap, pkt, t)
		opts = packet.GeneveOptions{HasTarget: true, Function: uint8(fn.Kind()), Target: target}
	} else {
		vni, v = fn.FromOutside(snap, pkt, t)
	}
	if v.Attack() {
		// A site sending from addresses not routed to it, or from a VPC's own.
		return x.attack(v, netip.Addr{}, pkt, vni)
	}
	if v != datapath.Forwarded {
		return v
	}
	var m tables.Mapping
	ok = snap.Lookup(vni, pkt.Dst(), &m) && m.Underlay.IsValid()
	if t != nil {
		t.Step("mapping", ok, fmt.Sprintf("%v in VPC %d lives on %v", pkt.Dst(), vni, m.Underlay))
	}
	if !ok {
		return datapath.NoMapping
	}
	// The edge is a router hop, like the VPC router on the host.
	ttl := pkt.TTL()
	if t != nil {
		t.Step("router hop", ttl > 1, fmt.Sprintf("TTL %d", ttl))
	}
	if ttl <= 1 {
		return datapath.TTLExceeded
	}
	old := uint16(ttl)<<8 | uint16(pkt.Protocol())
	pkt.SetTTL(ttl - 1)
	pkt.SetChecksum(packet.ChecksumUpdate16(pkt.Checksum(), old, old-0x100))
	opts.SourceVNI = vni
	start, ok := packet.EncapsulateGeneve(buf, len(pkt), vni, opts)
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
// until it is closed, writing each function's packets to its outside as
// one batch per read. A transient read error is counted and the loop reads
// on; a closed underlay ends it with nil.
func (x *Edge) ServeWire() error {
	wire := x.cfg.Wire
	bs := max(1, wire.BatchSize())
	ds := make([]underlay.Datagram, bs)
	for i := range ds {
		// Headroom in front: a relay re-heads the inner packet in place.
		ds[i].Buf = make([]byte, packet.Headroom+maxPacket)
		ds[i].Off = packet.Headroom
	}
	relays := make([]underlay.Datagram, 0, bs)
	var rel relayed
	var out [numKinds][][]byte
	for _, f := range x.cfg.Functions {
		out[f.Kind()] = make([][]byte, 0, bs)
	}
	var pkt packet.IPv4
	var e packet.Encap
	flows := x.Flows.Table(datapath.Egress)
	defer x.Flows.Release(flows)
	var retry datapath.Retry
	for {
		n, err := wire.ReadBatch(ds)
		if err != nil {
			if retry.Again(err) {
				x.ReadErrors.Add(1)
				continue
			}
			return nil
		}
		retry.Reset()
		snap := x.tables.Load()
		flows.Begin()
		for i := range n {
			d := &ds[i]
			var id datapath.FlowID // named as the instance sent it: translation rewrites the source
			payload := d.Buf[d.Off : d.Off+d.Len]
			var t *datapath.Trace
			if g := packet.Geneve(payload); len(g) >= packet.GeneveMinSize && g.OptLen() > 2+4 {
				// More options than SourceVPC and EdgeTarget: maybe TraceID, under openvpc trace --live.
				if o, ok := packet.ParseGeneveOptions(g); ok && o.HasTrace {
					t = &datapath.Trace{}
				}
			}
			v, fn := x.outbound(snap, d.Peer.Addr(), payload, &e, &pkt, &rel, &id, t)
			x.Out.Add(v)
			if k := e.Options.Function; v != datapath.Malformed && e.Options.HasTarget && int(k) < numKinds {
				x.Received[k].Add(1)
			}
			if v != datapath.Malformed {
				flows.RecordID(id, len(e.Inner), v)
				if e.Options.HasTrace && t != nil {
					x.Traces.Add(datapath.TraceReport{ID: e.Options.TraceID, Story: "edge outbound", Verdict: v, At: time.Now(), Steps: t.Steps})
				}
			}
			switch {
			case (v == datapath.Forwarded || v == datapath.TooBig) && rel.Dst.IsValid():
				if dg, ok := reHead(d, payload, e.Inner, &rel, x.cfg.WirePort); ok {
					relays = append(relays, dg)
				}
			case v == datapath.Forwarded:
				out[fn.Kind()] = append(out[fn.Kind()], pkt)
			}
		}
		flows.End()
		if len(relays) > 0 {
			_, _ = wire.WriteBatch(relays) // the underlay counts its own errors
			clear(relays)
			relays = relays[:0]
		}
		for _, f := range x.cfg.Functions {
			o := out[f.Kind()]
			if len(o) > 0 && f.Outside() != nil {
				_ = f.Outside().Write(o) // the outside counts its own errors
			}
			clear(o)
			out[f.Kind()] = o[:0]
		}
	}
}

// reHead writes a new Geneve header for rel in front of inner, which
// lies in d's buffer after payload's old header, and returns the datagram
// to send: the inner packet is not copied.
func reHead(d *underlay.Datagram, payload []byte, inner packet.IPv4, rel *relayed, port uint16) (underlay.Datagram, bool) {
	innerAt := d.Off + packet.Geneve(payload).HeaderLen()
	if innerAt < packet.Headroom {
		return underlay.Datagram{}, false
	}
	base := innerAt - packet.Headroom
	start, ok := packet.EncapsulateGeneve(d.Buf[base:], len(inner), rel.VNI, rel.Opts)
	if !ok {
		return underlay.Datagram{}, false
	}
	return underlay.Datagram{Buf: d.Buf, Off: base + start, Len: packet.Headroom + len(inner) - start,
		Peer: netip.AddrPortFrom(rel.Dst, port), SrcPort: packet.SourcePort(packet.FlowHash(inner))}, true
}

// ServeOutside runs the inbound story of every function, one loop per
// outside port, until the ports are closed; it returns when all loops
// have ended, with the first error.
func (x *Edge) ServeOutside() error {
	var wg sync.WaitGroup
	errs := make([]error, len(x.cfg.Functions))
	for i, f := range x.cfg.Functions {
		if f.Outside() == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = x.serveOutside(f)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serveOutside runs the inbound story for every packet from fn's outside
// until it is closed, sending the encapsulated packets as one batch.
func (x *Edge) serveOutside(fn Function) error {
	port := fn.Outside()
	bs := max(1, port.BatchSize())
	bufs, sizes := make([][]byte, bs), make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, packet.Headroom+maxPacket)
	}
	ds := make([]underlay.Datagram, 0, bs)
	var r InboundResult
	flows := x.Flows.Table(datapath.Ingress)
	defer x.Flows.Release(flows)
	var retry datapath.Retry
	for {
		n, err := port.Read(bufs, sizes)
		if err != nil {
			if retry.Again(err) {
				x.ReadErrors.Add(1)
				continue
			}
			return nil
		}
		retry.Reset()
		snap := x.tables.Load()
		flows.Begin()
		for i := range n {
			v := x.Inbound(snap, fn, bufs[i], sizes[i], &r)
			x.In.Add(v)
			if v == datapath.Forwarded {
				flows.Record(r.VNI, r.Inner, len(r.Inner), v) // as the instance receives it, translated
				ds = append(ds, underlay.Datagram{Buf: bufs[i], Off: r.Start, Len: len(r.Payload),
					Peer: netip.AddrPortFrom(r.Dst, x.cfg.WirePort), SrcPort: r.SrcPort})
			} else if p := packet.IPv4(bufs[i][packet.Headroom : packet.Headroom+sizes[i]]); p.Valid() {
				flows.Record(0, p[:p.TotalLen()], sizes[i], v) // no VPC: it never got in
			}
		}
		flows.End()
		if len(ds) > 0 {
			_, _ = x.cfg.Wire.WriteBatch(ds) // the underlay counts its own errors
		}
		ds = ds[:0]
	}
}
