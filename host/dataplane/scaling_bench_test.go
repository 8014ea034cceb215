package dataplane

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// scalingSizes are the cache sizes BenchmarkPipelineScaling steps through,
// from a small host's cache to the P5 goal size.
var scalingSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}}

const (
	scaleVNI   = 1
	scaleHosts = 1000
	scaleBase  = 0x0a000000 // 10.0.0.0/12: room for 1M instances
)

func scaleAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) // scaleBase + i
}

func scaleHostAddr(id uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(id >> 8), byte(id)})
}

// scaleHost places instance i: instance 0 is the one on this host (host
// 1), every other one on one of the other hosts.
func scaleHost(i int) uint64 {
	if i == 0 {
		return 1
	}
	return uint64(i%(scaleHosts-1)) + 2
}

// spread maps the i-th packet to an instance index in [1, n) with no
// locality, as the packets of many flows would; a multiply and a shift,
// so the cost does not depend on n.
func spread(i, n int) int {
	return 1 + int(uint64(uint32(i)*0x9E3779B1)*uint64(n-1)>>32)
}

// scaledPlane is a host whose cache holds one VPC of n instances in one
// subnet (so no router hop), one of them attached here.
func scaledPlane(tb testing.TB, n int) (*Plane, *Attachment, *tables.Snapshot) {
	t := tables.New(1)
	tx := t.Begin(1)
	for id := uint64(1); id <= scaleHosts; id++ {
		must(tb, tx.UpsertHost(tables.Host{ID: id, Underlay: scaleHostAddr(id), Role: tables.RoleHost, Healthy: true}))
	}
	cidr := netip.PrefixFrom(scaleAddr(0), 12)
	must(tb, tx.UpsertVPC(tables.VPC{VNI: scaleVNI, ID: scaleVNI, CIDR: cidr, MainRouteTable: 1,
		RouteTables: []tables.RouteTable{{ID: 1, Routes: []tables.Route{{Dst: cidr, Target: tables.Target{Kind: tables.TargetLocal}}}}},
		Subnets:     []tables.Subnet{{ID: 1, CIDR: cidr}}}))
	for i := range n {
		if err := tx.UpsertMapping(tables.Mapping{VNI: scaleVNI, IP: scaleAddr(i), HostID: scaleHost(i), ENI: uint64(i + 1)}); err != nil {
			tb.Fatal(err) // not must: its t.Helper would dominate the build time
		}
	}
	snap := tx.Commit()
	if snap.Len() != n {
		tb.Fatalf("cache holds %d mappings, want %d", snap.Len(), n)
	}
	p := New(t, Config{Underlay: scaleHostAddr(1)})
	at := &Attachment{ENI: 1, VNI: scaleVNI, IP: scaleAddr(0), Subnet: cidr, Gateway: scaleAddr(1)}
	p.Attach(at)
	return p, at, snap
}

// BenchmarkPipelineScaling is P1 (one 64-byte packet through egress or
// ingress) as the cache grows: each packet to (egress) or from (ingress) a
// different, random instance of the VPC, so that the mapping lookups reach
// all of the cache, as the packets of a host talking to many peers do.
func BenchmarkPipelineScaling(b *testing.B) {
	const payloadLen = 64 - packet.IPv4MinSize - packet.UDPMinSize
	for _, size := range scalingSizes {
		b.Run("mappings="+size.name, func(b *testing.B) {
			p, at, snap := scaledPlane(b, size.n)
			buf := make([]byte, 2048)
			scratch := make([]byte, ScratchSize)
			var r Result
			b.Run("egress", func(b *testing.B) {
				n := udpPacket(buf, scaleAddr(0).String(), scaleAddr(1).String(), payloadLen, 64, false)
				pkt := packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
				i := 0
				for b.Loop() {
					// Only the destination changes: the pipeline neither
					// checks the header checksum nor writes inside the
					// inner packet when it stays in its subnet.
					pkt.SetDst(scaleAddr(spread(i, size.n)))
					p.Egress(snap, at, buf, n, scratch, &r)
					if r.Verdict != datapath.Forwarded {
						b.Fatalf("egress to %s: %s", pkt.Dst(), r.Verdict)
					}
					i++
				}
			})
			b.Run("ingress", func(b *testing.B) {
				n := udpPacket(buf, scaleAddr(1).String(), scaleAddr(0).String(), payloadLen, 64, false)
				payload := append([]byte(nil), wire(buf, n, scaleVNI, scaleVNI)...)
				var e packet.Encap
				if !packet.ParseGenevePayload(payload, &e) {
					b.Fatal("cannot parse the encapsulated packet")
				}
				inner := e.Inner // a view into payload
				i := 0
				for b.Loop() {
					src := spread(i, size.n)
					inner.SetSrc(scaleAddr(src))
					p.Ingress(snap, scaleHostAddr(scaleHost(src)), payload, &r)
					if r.Verdict != datapath.Delivered {
						b.Fatalf("ingress from %s: %s", inner.Src(), r.Verdict)
					}
					i++
				}
			})
		})
	}
}
