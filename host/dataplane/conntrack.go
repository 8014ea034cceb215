package dataplane

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"

	"github.com/openvpc/openvpc/packet"
)

// Conntrack remembers the flows security groups let through, so that their
// replies (and ICMP errors about them) pass without a rule, as on AWS. It
// is one fixed-size table per data plane, shared by every worker — an
// ENI's egress worker and the wire's ingress worker see the same flow —
// keyed by ENI and the flow's 5-tuple as the ENI sees it (local address
// and port, remote address and port, protocol), so both directions of a
// flow find one entry. No locks and no allocation: an entry is three key
// words and a word of expiry and key hash, written key first and checked
// by hash on read, so a reader racing a writer sees a miss, never a wrong
// flow; an insert claims a slot (busy) before it writes, so two never
// write one slot (the one that loses the claim tries the next). A lookup
// ignores an expired entry; an insert takes an empty or expired slot in
// its probe window, and sweeps one more slot each time.
// When the window is full of live flows the new flow is refused
// (conntrack-full), as AWS's conntrack allowance does.
type Conntrack struct {
	entries []ctEntry
	mask    uint64
	seed    uint64
	sweep   atomic.Uint64
	// Full counts flows refused because the table was full.
	Full atomic.Uint64
}

type ctEntry struct {
	k0, k1, k2 atomic.Uint64
	// meta is the expiry (unix seconds, high 32 bits) and the key's hash
	// (low 32 bits); 0 is an empty slot.
	meta atomic.Uint64
}

// ctBusy marks a slot an insert has claimed and is writing: expired to a
// reader (its expiry is 0), taken to another insert and to the sweep, so
// two writers never share a slot.
const ctBusy = 1

// ctWindow is how many slots a flow may sit in past its hash's. Linear
// probing clusters: with 8 a table a sixth full already refused a flow in
// a few hundred thousand; with 32, at half full (a million flows in the
// default-sized table's double) about one in a million is refused.
const ctWindow = 32

// DefaultConntrackSize is the entries of a host's table: 32 bytes each.
const DefaultConntrackSize = 1 << 16

// Timeouts are a flow's idle timeouts, in seconds: AWS's defaults.
type Timeouts struct {
	TCPEstablished, UDP, UDPStream, Other uint32
}

// DefaultTimeouts are AWS's conntrack timeouts.
var DefaultTimeouts = Timeouts{TCPEstablished: 432000, UDP: 30, UDPStream: 180, Other: 600}

// tcpClosing is how long a TCP flow is kept after a FIN or RST.
const tcpClosing = 120

// NewConntrack returns a table of at least size entries (a power of two).
func NewConntrack(size int) *Conntrack {
	n := 1
	for n < size {
		n <<= 1
	}
	return &Conntrack{entries: make([]ctEntry, n), mask: uint64(n - 1), seed: rand.Uint64()}
}

// ctKey is a flow as the ENI sees it.
type ctKey struct{ k0, k1, k2 uint64 }

// newCtKey packs (eni, local, remote, ports, proto); addresses as
// big-endian IPv4 words.
func newCtKey(eni uint64, local, remote uint32, lport, rport uint16, proto uint8) ctKey {
	return ctKey{k0: uint64(local)<<32 | uint64(remote), k1: uint64(lport)<<48 | uint64(rport)<<32 | uint64(proto), k2: eni}
}

// hash mixes the key with the table's random seed (so that nobody outside
// can aim flows at one probe window): each word mixed in turn, six
// multiplies, a fraction of maphash's cost on a 24-byte key.
func (c *Conntrack) hash(k ctKey) uint64 {
	return mix(mix(mix(c.seed^k.k0)^k.k1) ^ k.k2)
}

// mix is splitmix64's finalizer: every bit of x reaches every bit out.
func mix(x uint64) uint64 {
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// Lookup reports whether flow k is tracked and alive at now (unix seconds);
// a hit extends its life by ttl.
func (c *Conntrack) Lookup(k ctKey, now, ttl uint32) bool {
	h := c.hash(k)
	tag := uint32(h) | 2 // never 0 (empty) nor 1 (busy) with expiry 0
	for i := range uint64(ctWindow) {
		e := &c.entries[(h+i)&c.mask]
		meta := e.meta.Load()
		if uint32(meta) != tag || e.k0.Load() != k.k0 || e.k1.Load() != k.k1 || e.k2.Load() != k.k2 {
			continue
		}
		if e.meta.Load() != meta || uint32(meta>>32) < now {
			return false // rewritten meanwhile, or expired
		}
		if exp := uint64(now+ttl)<<32 | uint64(tag); exp > meta+1<<32 {
			e.meta.CompareAndSwap(meta, exp) // at most once a second: a hit rarely writes
		}
		return true
	}
	return false
}

// Insert tracks flow k until now+ttl; false means the table is full.
func (c *Conntrack) Insert(k ctKey, now, ttl uint32) bool {
	c.sweepOne(now)
	h := c.hash(k)
	tag := uint32(h) | 2
	for i := range uint64(ctWindow) {
		e := &c.entries[(h+i)&c.mask]
		meta := e.meta.Load()
		if meta == ctBusy {
			continue // another insert is writing it
		}
		same := uint32(meta) == tag && e.k0.Load() == k.k0 && e.k1.Load() == k.k1 && e.k2.Load() == k.k2
		if meta != 0 && !same && uint32(meta>>32) >= now {
			continue // a live flow
		}
		// Claim the slot: busy first, so no reader matches a half-written
		// key and no other writer writes it too.
		if !e.meta.CompareAndSwap(meta, ctBusy) {
			continue
		}
		e.k0.Store(k.k0)
		e.k1.Store(k.k1)
		e.k2.Store(k.k2)
		e.meta.Store(uint64(now+ttl)<<32 | uint64(tag))
		return true
	}
	c.Full.Add(1)
	return false
}

// sweepOne clears one expired slot, moving on through the table.
func (c *Conntrack) sweepOne(now uint32) {
	e := &c.entries[c.sweep.Add(1)&c.mask]
	if meta := e.meta.Load(); meta != 0 && meta != ctBusy && uint32(meta>>32) < now {
		e.meta.CompareAndSwap(meta, 0)
	}
}

// Len counts the live flows at now (for metrics and tests; it reads the
// whole table).
func (c *Conntrack) Len(now uint32) int {
	n := 0
	for i := range c.entries {
		if meta := c.entries[i].meta.Load(); meta != 0 && uint32(meta>>32) >= now {
			n++
		}
	}
	return n
}

// flowOf reads what the firewall and conntrack need of pkt: its protocol,
// ports (ICMP: type, code and the echo identifier as both ports), and, for
// an ICMP error, the packet it quotes, whose flow it belongs to.
func flowOf(pkt packet.IPv4) (f fwFlow) {
	f.Proto = pkt.Protocol()
	if pkt.FragmentOffset() != 0 {
		return f
	}
	p := pkt.Payload()
	switch f.Proto {
	case packet.ProtoTCP:
		if len(p) >= 14 {
			f.SrcPort, f.DstPort = binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
			f.tcpFlags = p[13]
		}
	case packet.ProtoUDP:
		if len(p) >= 4 {
			f.SrcPort, f.DstPort = binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
		}
	case packet.ProtoICMP:
		if len(p) >= 8 {
			f.Type, f.Code = p[0], p[1]
			switch f.Type {
			case packet.ICMPv4EchoRequest, packet.ICMPv4EchoReply:
				id := binary.BigEndian.Uint16(p[4:])
				f.SrcPort, f.DstPort = id, id
			case packet.ICMPv4DstUnreachable, packet.ICMPv4TimeExceeded:
				if q := p[8:]; len(q) >= packet.IPv4MinSize && q[0]>>4 == 4 && len(q) >= int(q[0]&0xf)*4+4 {
					f.quoted = q // the header and at least the ports, as RFC 792 quotes them
				}
			}
		}
	}
	return f
}
