package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// The addresses the host answers for an instance, as AWS's Nitro does:
// the VPC resolver at the VPC's base+2 and at 169.254.169.253, the
// instance metadata service at 169.254.169.254.
var (
	ResolverLinkLocal = netip.AddrFrom4([4]byte{169, 254, 169, 253})
	MetadataAddr      = netip.AddrFrom4([4]byte{169, 254, 169, 254})
)

// Ports of the host services.
const (
	DNSPort      = 53
	MetadataPort = 80
)

// AttachServices makes port the host services port of the VPC with VNI
// vni: the host's own stack (host/services) holding the VPC resolver and
// the metadata service. Packets for them from that VPC's instances are
// written to it; what it sends goes to ServeServices.
func (p *Plane) AttachServices(vni uint32, port datapath.Port) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[uint32]datapath.Port{}
	for k, v := range *p.services.Load() {
		next[k] = v
	}
	next[vni] = port
	p.services.Store(&next)
}

// DetachServices takes the host services port of a VPC away.
func (p *Plane) DetachServices(vni uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[uint32]datapath.Port{}
	for k, v := range *p.services.Load() {
		if k != vni {
			next[k] = v
		}
	}
	p.services.Store(&next)
}

// mayBeService is the step's guard, one compare on the common path: only
// a packet to 169.254.0.0/16 or to the VPC's base+2 can be for the host.
func mayBeService(from *Attachment, pkt packet.IPv4) bool {
	d := pkt[16:20]
	return d[0] == 169 && d[1] == 254 || from.resolver != 0 && binary.BigEndian.Uint32(d) == from.resolver
}

// isService reports whether pkt is for one of the host services: DNS
// (UDP or TCP 53) at the VPC's base+2 or 169.254.169.253, HTTP (TCP 80)
// at 169.254.169.254. Anything else to those addresses takes the rest of
// the story (and finds no route or no mapping there).
func isService(from *Attachment, pkt packet.IPv4) bool {
	proto := pkt.Protocol()
	if proto != packet.ProtoUDP && proto != packet.ProtoTCP || pkt.IsFragment() {
		return false
	}
	l4 := pkt[pkt.HeaderLen():]
	if len(l4) < 4 {
		return false
	}
	port := binary.BigEndian.Uint16(l4[2:4])
	switch dst := binary.BigEndian.Uint32(pkt[16:20]); {
	case dst == from.resolver || dst == resolverLinkLocal4:
		return port == DNSPort
	case dst == metadata4:
		return proto == packet.ProtoTCP && port == MetadataPort
	}
	return false
}

var (
	resolverLinkLocal4 = binary.BigEndian.Uint32(ResolverLinkLocal.AsSlice())
	metadata4          = binary.BigEndian.Uint32(MetadataAddr.AsSlice())
)

// hostServices is the egress step "host services": a packet for the
// resolver or the metadata service never leaves the host; it goes to the
// services port of the sender's VPC. It comes after the source check, so
// a spoofed source never reaches them, and before route and firewall, as
// on AWS (security groups and ACLs do not filter the Amazon resolver).
// It reports whether the packet was taken.
func (p *Plane) hostServices(from *Attachment, pkt packet.IPv4, r *Result, t *datapath.Trace) bool {
	if !isService(from, pkt) {
		if t != nil {
			t.Pass("host services", "%v is no service the host answers: on through the VPC", pkt.Dst())
		}
		return false
	}
	if !p.explaining && !p.allowService(from) {
		if t != nil {
			t.Fail("host services", "eni-%016x is over %d packets a second to the host services", from.ENI, p.serviceLimit.Load())
		}
		r.Verdict = datapath.ServiceLimit
		return true
	}
	port, ok := (*p.services.Load())[from.VNI]
	if t != nil {
		t.Step("host services", ok, explainService(pkt, ok))
	}
	if !ok {
		r.Verdict = datapath.NoPort
		return true
	}
	r.Verdict, r.Service, r.Packet = datapath.ToHostService, port, pkt
	return true
}

// allowService counts one packet of from to the host services and
// reports whether it is within the ENI's packets for this second.
func (p *Plane) allowService(from *Attachment) bool {
	now := p.clock.Load()
	if from.svcSecond.Load() != now {
		from.svcSecond.Store(now)
		from.svcCount.Store(0)
	}
	return from.svcCount.Add(1) <= p.serviceLimit.Load()
}

// SetServiceLimit changes how many packets per second each ENI may send to
// the host services (Config.ServiceLimit), from the next packet on.
func (p *Plane) SetServiceLimit(n uint32) { p.serviceLimit.Store(n) }

func explainService(pkt packet.IPv4, ok bool) string {
	what := "the VPC resolver"
	if pkt.Dst() == MetadataAddr {
		what = "the instance metadata service"
	}
	if !ok {
		return fmt.Sprintf("for %s at %v, which this host does not run (yet) for the VPC", what, pkt.Dst())
	}
	return fmt.Sprintf("for %s at %v: answered on this host", what, pkt.Dst())
}

// fromServices is the delivery of what a VPC's services port sent: to the
// local instance of that VPC it is addressed to. The services port is a
// trusted local sender — only this host writes it, from its own stack
// holding the service addresses, never an instance or the wire — so the
// sender checks of the ingress story have nothing to check; what remains
// is that the destination is an ENI of that VPC on this host. The
// firewall is not applied, as AWS's groups do not filter the resolver.
func (p *Plane) fromServices(snap *tables.Snapshot, vni uint32, pkt packet.IPv4, r *Result) {
	*r = Result{}
	if !pkt.Valid() {
		r.Verdict = datapath.Malformed
		return
	}
	pkt = pkt[:pkt.TotalLen()]
	r.VNI, r.Inner = vni, pkt
	var dst tables.Mapping
	if !snap.Lookup(vni, pkt.Dst(), &dst) || !dst.Local {
		r.Verdict = datapath.NotLocal
		return
	}
	to, ok := p.Attachment(dst.ENI)
	if !ok {
		r.Verdict = datapath.NoPort
		return
	}
	r.Verdict, r.To, r.Packet = datapath.Delivered, to, pkt
}

// ServeServices delivers what the services port of the VPC with VNI vni
// sends to that VPC's local instances, until the port is closed.
func (p *Plane) ServeServices(vni uint32, port datapath.Port) error {
	bs := max(1, port.BatchSize())
	bufs, sizes := make([][]byte, bs), make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, packet.Headroom+maxPacket)
	}
	one := make([][]byte, 1)
	var r Result
	var retry datapath.Retry
	for {
		n, err := port.Read(bufs, sizes)
		if err != nil {
			if retry.Again(err) {
				p.ReadErrors.Add(1)
				continue
			}
			return nil
		}
		retry.Reset()
		snap := p.tables.Load()
		for i := range n {
			p.fromServices(snap, vni, packet.IPv4(bufs[i][packet.Headroom:packet.Headroom+sizes[i]]), &r)
			p.Counters.Add(r.Verdict)
			if r.Verdict == datapath.Delivered {
				one[0] = r.Packet
				_ = r.To.Port.Write(one)
			}
		}
	}
}
