package datapath

import "sync/atomic"

// Verdict is what the data plane did with one packet. Its name is stable:
// counters, flow records and security events use it.
type Verdict uint8

const (
	Forwarded     Verdict = iota // egress: encapsulated and sent to another host
	Delivered                    // handed to a local instance (from the wire or the same host)
	ToHostService                // egress: for the VPC resolver or the metadata service, answered on this host

	// Drops.
	Malformed      // not a packet we can parse
	SpoofedSource  // an instance sent with a source address it does not own
	NoRoute        // no route (or a blackhole, or a target this host cannot reach)
	NoMapping      // the route's VPC has no such address: a miss is a drop
	TTLExceeded    // the VPC router hop would take the TTL to zero
	TooBig         // larger than the path MTU with DF set
	UnknownSender  // outer source is not a host or edge this host knows
	NotLocal       // the destination ENI is not on this host
	NotPeered      // source VPC is neither the destination VPC nor actively peered with it
	SenderMismatch // the inner source does not live on the outer source host
	NoPort         // the destination ENI is local but not attached (yet)
	NoEdge         // the route leads to an edge, and no edge is healthy
	NoPublicIP     // edge: the instance has no Elastic IP, so it cannot reach the internet
	SGDenied       // no security group rule allows it (a firewall doing its job, not an attack)
	ACLDenied      // the subnet's network ACL denies it
	ConntrackFull  // a new flow, and the connection-tracking table has no room for it
	ServiceLimit   // over the ENI's packets per second to the host services (AWS's link-local allowance)
	ForgedTarget   // edge: a host named an edge target (a vpce-…) that the packet's VPC does not have

	numVerdicts
)

var verdictNames = [numVerdicts]string{
	Forwarded: "forwarded", Delivered: "delivered", ToHostService: "to-host-service", Malformed: "malformed", SpoofedSource: "spoofed-source",
	NoRoute: "no-route", NoMapping: "no-mapping", TTLExceeded: "ttl-exceeded", TooBig: "too-big",
	UnknownSender: "unknown-sender", NotLocal: "not-local", NotPeered: "not-peered",
	SenderMismatch: "sender-mismatch", NoPort: "no-port", NoEdge: "no-edge", NoPublicIP: "no-public-ip",
	SGDenied: "sg-denied", ACLDenied: "acl-denied", ConntrackFull: "conntrack-full", ServiceLimit: "service-limit",
	ForgedTarget: "forged-target",
}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Dropped reports whether the packet went nowhere.
func (v Verdict) Dropped() bool { return v >= Malformed }

// Attack reports whether the verdict indicates an attack rather than a
// mistake: those raise a security event for a human to look at.
func (v Verdict) Attack() bool {
	switch v {
	case SpoofedSource, UnknownSender, SenderMismatch, NotPeered, ForgedTarget:
		return true
	}
	return false
}

// Verdicts lists every verdict, in order.
func Verdicts() []Verdict {
	out := make([]Verdict, numVerdicts)
	for i := range out {
		out[i] = Verdict(i)
	}
	return out
}

// Counters counts packets per verdict. Each worker owns one; they are
// read (atomically) by the metrics exporter.
type Counters [numVerdicts]atomic.Uint64

// Add counts one packet.
func (c *Counters) Add(v Verdict) { c[v].Add(1) }

// Get returns the count of v.
func (c *Counters) Get(v Verdict) uint64 { return c[v].Load() }

// Sum is the number of packets counted, whatever their verdict.
func (c *Counters) Sum() uint64 {
	var n uint64
	for i := range c {
		n += c[i].Load()
	}
	return n
}
