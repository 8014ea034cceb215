package dataplane

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
)

// Attachment is an instance's ENI on this host, attached to its port.
type Attachment struct {
	ENI     uint64
	VNI     uint32
	IP      netip.Addr
	Subnet  netip.Prefix
	Gateway netip.Addr // the VPC router's address in the subnet: ICMP errors come from it
	// Resolver is the VPC resolver's address in the VPC (its base+2);
	// unset, the resolver is reached at 169.254.169.253 only.
	Resolver netip.Addr
	Port     datapath.Port

	// timeouts are the ENI's own conntrack timeouts, if it has any; set
	// while it is attached (SetTimeouts), read per new flow.
	timeouts atomic.Pointer[Timeouts]

	// subnet is Subnet as a masked address and mask, set by Attach: the
	// per-packet "does it leave the subnet?" is one AND and compare.
	subnetAddr, subnetMask uint32
	// resolver is Resolver as a number, set by Attach (0: none).
	resolver uint32
	// svcSecond and svcCount count the ENI's packets to the host services
	// in the current second (the plane's clock), for ServiceLimit.
	svcSecond, svcCount atomic.Uint32
}

// timeoutsOr returns the ENI's timeouts, or def when it has none.
func (a *Attachment) timeoutsOr(def *Timeouts) *Timeouts {
	if t := a.timeouts.Load(); t != nil {
		return t
	}
	return def
}

// inSubnet reports whether the IPv4 address in b (4 bytes, big endian)
// is in the attachment's subnet.
func (a *Attachment) inSubnet(b []byte) bool {
	if a.subnetMask == 0 { // not attached through Attach: the slow way
		return a.Subnet.Contains(netip.AddrFrom4([4]byte(b)))
	}
	return binary.BigEndian.Uint32(b)&a.subnetMask == a.subnetAddr
}

// Config is what a data plane needs besides its cache.
type Config struct {
	// Underlay is this host's underlay address.
	Underlay netip.Addr
	// MTU is the largest inner packet the data plane carries (the
	// instance MTU: underlay MTU minus packet.Overhead).
	MTU int
	// Events receives one call per packet whose verdict is an attack. It
	// must not block (hand off to a rate-limited reporter).
	Events func(datapath.Event)
	// WirePort is the UDP port other hosts receive on (default 6081; tests
	// running several clouds at once use others).
	WirePort uint16
	// Wire is the underlay this host sends and receives on.
	Wire underlay.Conn
	// Conntrack is how many flows the security groups can track (default
	// DefaultConntrackSize); Timeouts their idle timeouts (default AWS's).
	Conntrack int
	Timeouts  Timeouts
	// ServiceLimit is how many packets per second each ENI may send to
	// the host services, the resolver and metadata together (default
	// DefaultServiceLimit, AWS's); the rest are dropped as service-limit.
	ServiceLimit uint32
}

// DefaultServiceLimit is AWS's limit of packets per second from one ENI
// to the link-local services.
const DefaultServiceLimit = 1024

// DefaultMTU is the instance MTU over a 1500-byte underlay.
const DefaultMTU = 1500 - packet.Overhead

// Plane is one host's data plane: the mapping cache it reads, the
// attachments it serves and its counters. The packet path reads an
// immutable snapshot of each, loaded once per batch: no locks, no calls
// off the host.
type Plane struct {
	cfg    Config
	tables *tables.Tables
	// Counters counts every packet's verdict, both directions; FromWire
	// counts those of datagrams read from the underlay alone.
	Counters, FromWire datapath.Counters
	// Flows holds per-flow records of both stories, like `hubble observe`.
	Flows datapath.Flows
	// Traces holds what this host saw of packets under `openvpc trace --live`.
	Traces datapath.Traces
	// ReadErrors counts transient errors of the wire and the ports: each
	// loop reads on after one.
	ReadErrors atomic.Uint64

	sent *datapath.FlowTable // flows of packets put on the path by Send
	// cache, when set, is told the decisions it may replay (SetFlowCache).
	cache FlowCache

	conntrack *Conntrack
	// serviceLimit is Config.ServiceLimit, changeable while serving.
	serviceLimit atomic.Uint32
	// explaining: a trace's view, which reads conntrack but adds nothing.
	explaining bool
	// clock is the time in unix seconds, set once per batch: what
	// connection tracking reads instead of a clock per packet.
	clock atomic.Uint32

	mu       sync.Mutex // writers of attached and services
	attached atomic.Pointer[map[uint64]*Attachment]
	// services are the VPCs' host services ports, by VNI (services.go).
	services atomic.Pointer[map[uint32]datapath.Port]
}

// New returns a data plane over the cache t.
func New(t *tables.Tables, cfg Config) *Plane {
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Events == nil {
		cfg.Events = func(datapath.Event) {}
	}
	if cfg.WirePort == 0 {
		cfg.WirePort = underlay.Port
	}
	if cfg.Conntrack == 0 {
		cfg.Conntrack = DefaultConntrackSize
	}
	if cfg.ServiceLimit == 0 {
		cfg.ServiceLimit = DefaultServiceLimit
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts
	}
	p := &Plane{cfg: cfg, tables: t, conntrack: NewConntrack(cfg.Conntrack)}
	p.serviceLimit.Store(cfg.ServiceLimit)
	p.tick()
	p.sent = p.Flows.Table(datapath.Egress)
	p.attached.Store(&map[uint64]*Attachment{})
	p.services.Store(&map[uint32]datapath.Port{})
	return p
}

// SetTimeouts gives an attached ENI its own connection-tracking timeouts;
// a zero field keeps the data plane's. It takes effect for the next packet.
func (p *Plane) SetTimeouts(a *Attachment, t Timeouts) {
	d := p.cfg.Timeouts
	for _, f := range []struct{ own, def *uint32 }{{&t.TCPEstablished, &d.TCPEstablished}, {&t.UDP, &d.UDP}, {&t.UDPStream, &d.UDPStream}, {&t.Other, &d.Other}} {
		if *f.own == 0 {
			*f.own = *f.def
		}
	}
	a.timeouts.Store(&t)
}

// tick sets the clock connection tracking reads.
func (p *Plane) tick() { p.clock.Store(uint32(time.Now().Unix())) }

// Conntrack is the data plane's connection-tracking table.
func (p *Plane) Conntrack() *Conntrack { return p.conntrack }

// Attach serves a local ENI on port a.Port.
func (p *Plane) Attach(a *Attachment) {
	if a.Subnet.Addr().Is4() && a.Subnet.Bits() > 0 {
		a.subnetMask = ^uint32(0) << (32 - a.Subnet.Bits())
		a.subnetAddr = binary.BigEndian.Uint32(a.Subnet.Addr().AsSlice()) & a.subnetMask
	}
	if a.Resolver.Is4() {
		a.resolver = binary.BigEndian.Uint32(a.Resolver.AsSlice())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[uint64]*Attachment{}
	for k, v := range *p.attached.Load() {
		next[k] = v
	}
	next[a.ENI] = a
	p.attached.Store(&next)
}

// Detach stops serving an ENI.
func (p *Plane) Detach(eni uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[uint64]*Attachment{}
	for k, v := range *p.attached.Load() {
		if k != eni {
			next[k] = v
		}
	}
	p.attached.Store(&next)
}

// Attachment returns the attachment of a local ENI.
func (p *Plane) Attachment(eni uint64) (*Attachment, bool) {
	a, ok := (*p.attached.Load())[eni]
	return a, ok
}

// Result is what the pipeline decided for one packet and what the worker
// must do about it. Byte slices in it are borrowed from the packet's
// buffer or the worker's scratch space: valid until the next packet.
type Result struct {
	Verdict datapath.Verdict
	// VNI and Inner name the packet's flow, once it parsed: the sender's
	// VPC on egress, the destination's on ingress.
	VNI   uint32
	Inner packet.IPv4
	// Trace is the packet's TraceID option, 0 without one.
	Trace uint32
	// Forwarded: send Payload (Geneve header onward), which starts at
	// Start in the packet's buffer, to Dst:6081 from SrcPort.
	Payload []byte
	Start   int
	Dst     netip.Addr
	SrcPort uint16
	// Delivered: write Packet to To's port. ToHostService: write Packet
	// to the Service port.
	To      *Attachment
	Service datapath.Port
	Packet  []byte
	// Reply, when set, is an ICMP error for the sending instance.
	Reply []byte
	// Cacheable: the decision is one a flow cache (SetFlowCache) may
	// replay for the rest of the flow's packets while the snapshot lasts;
	// RouterHop: it crossed the VPC router (the TTL went down by one).
	Cacheable, RouterHop bool
}

// FlowCache is a cache in front of the stories that replays their
// decisions (host/fastpath, in the kernel). It is told every decision
// whose Result is Cacheable, with the snapshot it was made on; it must not
// block (the packet path calls it).
//
// A packet the cache could have replayed (replayable) whose decision is
// not Cacheable — a drop now, say, where the entry said forward — is told
// to Forget, so an entry found past its expiry is not replayed again.
type FlowCache interface {
	Egress(snap *tables.Snapshot, from *Attachment, r *Result)
	Ingress(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *Result)
	ForgetEgress(from *Attachment, r *Result)
	ForgetIngress(outerSrc netip.Addr, payload []byte, r *Result)
}

// SetFlowCache has c told the decisions it may replay; call it before
// serving.
func (p *Plane) SetFlowCache(c FlowCache) { p.cache = c }

// replayable reports whether a flow cache can replay the decision for pkt:
// a plain IPv4 header, no fragment, UDP or a TCP segment that changes no
// connection state (SYN, FIN and RST always take the stories, so
// connection tracking sees them). It mirrors what the fast path matches.
func replayable(pkt packet.IPv4) bool {
	if len(pkt) < packet.IPv4MinSize+8 || pkt[0] != 0x45 || pkt.IsFragment() {
		return false
	}
	switch pkt.Protocol() {
	case packet.ProtoUDP:
		return true
	case packet.ProtoTCP:
		return len(pkt) >= packet.IPv4MinSize+20 && pkt[packet.IPv4MinSize+13]&0x07 == 0 // FIN, SYN, RST
	}
	return false
}
