package fastpath

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// MaxRevalidate bounds the entries one Revalidate re-decides; beyond it,
// entries simply miss and the Go story decides their next packet.
const MaxRevalidate = 4096

// idleAfter: an entry whose expiry passed this long ago (no packet came to
// push it on) belongs to a flow that ended; Revalidate removes it.
const idleAfter = 2 * DefaultLifetime

// Revalidate re-decides, with the Go story on snap (the snapshot about to
// be published), every entry of another generation. An entry snap decides
// the same way is stamped with snap's generation, which the programs
// accept as "next" while this runs (Publisher): its decision holds under
// the snapshot in force and the new one alike, so its flow stays in the
// kernel across the swap. Any other entry is removed: the Go story decides
// the flow's next packet, on whichever snapshot is in force by then. An
// entry keeps its expiry: revalidation is quiet (connection tracking sees
// nothing), so the flow's next expiry still sends one packet through the
// real story.
//
// It returns how many entries it kept and removed.
func (f *FastPath) Revalidate(p *dataplane.Plane, snap *tables.Snapshot) (kept, removed int) {
	gen := snap.Generation()
	ports := *f.ports.Load()
	eniOf := make(map[uint32]uint64, len(ports))
	for eni, pt := range ports {
		eniOf[pt.ifindex] = eni
	}
	now := monotonic()
	buf := make([]byte, packet.Headroom+64)
	var r dataplane.Result

	type egress struct {
		k fastpathEgressKey
		e fastpathEgressEntry
	}
	var egs []egress
	var ek fastpathEgressKey
	var ee fastpathEgressEntry
	for it := f.objs.EgressFlows.Iterate(); it.Next(&ek, &ee) && len(egs) < MaxRevalidate; {
		if ee.Gen != gen {
			egs = append(egs, egress{ek, ee})
		}
	}
	for _, x := range egs {
		att, ok := p.Attachment(eniOf[x.k.Ifindex])
		if !ok || now > x.e.Expires+uint64(idleAfter) {
			_ = f.objs.EgressFlows.Delete(&x.k)
			removed++
			continue
		}
		n := synthetic(buf[packet.Headroom:], x.k.Saddr, x.k.Daddr, x.k.Sport, x.k.Dport, x.k.Proto)
		p.Redecide(snap, att, buf, n, &r)
		k, e, ok := f.egressEntry(snap, att, &r)
		if !r.Cacheable || !ok || k != x.k || !sameEgress(e, x.e) {
			_ = f.objs.EgressFlows.Delete(&x.k)
			removed++
			continue
		}
		e.Expires, e.Packets, e.Bytes = x.e.Expires, x.e.Packets, x.e.Bytes
		if f.objs.EgressFlows.Update(&k, &e, ebpf.UpdateAny) == nil {
			kept++
		}
	}

	type ingress struct {
		k fastpathIngressKey
		e fastpathIngressEntry
	}
	var ins []ingress
	var ik fastpathIngressKey
	var ie fastpathIngressEntry
	for it := f.objs.IngressFlows.Iterate(); it.Next(&ik, &ie) && len(ins) < MaxRevalidate; {
		if ie.Gen != gen {
			ins = append(ins, ingress{ik, ie})
		}
	}
	payload := make([]byte, geneveLen+64)
	for _, x := range ins {
		if now > x.e.Expires+uint64(idleAfter) {
			_ = f.objs.IngressFlows.Delete(&x.k)
			removed++
			continue
		}
		copy(payload, x.e.Geneve[:])
		n := synthetic(payload[geneveLen:], x.k.Saddr, x.k.Daddr, x.k.Sport, x.k.Dport, x.k.Proto)
		var src [4]byte
		binary.NativeEndian.PutUint32(src[:], x.k.OuterSrc)
		outer := netip.AddrFrom4(src)
		p.RedecideIngress(snap, outer, payload[:geneveLen+n], &r)
		k, e, ok := f.ingressEntry(snap, outer, payload[:geneveLen+n], &r)
		if !r.Cacheable || !ok || k != x.k || !sameIngress(e, x.e) {
			_ = f.objs.IngressFlows.Delete(&x.k)
			removed++
			continue
		}
		e.Expires, e.Packets, e.Bytes = x.e.Expires, x.e.Packets, x.e.Bytes
		if f.objs.IngressFlows.Update(&k, &e, ebpf.UpdateAny) == nil {
			kept++
		}
	}
	f.Revalidated.Add(uint64(kept))
	f.Invalidated.Add(uint64(removed))
	return kept, removed
}

// synthetic writes into b a packet of the flow an entry's key names — a
// TCP segment with only ACK, or an empty UDP datagram — for the story to
// decide, and returns its length. Addresses and ports are as the key holds
// them (network order in memory).
func synthetic(b []byte, saddr, daddr uint32, sport, dport uint16, proto uint8) int {
	n := packet.IPv4MinSize + packet.UDPMinSize
	if proto == packet.ProtoTCP {
		n = packet.IPv4MinSize + 20
	}
	clear(b[:n])
	var s, d [4]byte
	binary.NativeEndian.PutUint32(s[:], saddr)
	binary.NativeEndian.PutUint32(d[:], daddr)
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: proto, Src: netip.AddrFrom4(s), Dst: netip.AddrFrom4(d)})
	l4 := b[packet.IPv4MinSize:n]
	binary.NativeEndian.PutUint16(l4[0:], sport)
	binary.NativeEndian.PutUint16(l4[2:], dport)
	if proto == packet.ProtoTCP {
		l4[12], l4[13] = 5<<4, 0x10 // ACK
	} else {
		binary.BigEndian.PutUint16(l4[4:], packet.UDPMinSize)
	}
	return n
}

// sameEgress reports whether two entries replay the same decision.
func sameEgress(a, b fastpathEgressEntry) bool {
	a.Gen, a.Expires, a.Packets, a.Bytes = 0, 0, 0, 0
	b.Gen, b.Expires, b.Packets, b.Bytes = 0, 0, 0, 0
	return a == b
}

func sameIngress(a, b fastpathIngressEntry) bool {
	a.Gen, a.Expires, a.Packets, a.Bytes = 0, 0, 0, 0
	b.Gen, b.Expires, b.Packets, b.Bytes = 0, 0, 0, 0
	return a == b
}
