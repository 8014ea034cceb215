package packet

import (
	"testing"
)

// TestZeroAllocs proves the hot-path functions allocate nothing: the data plane calls them
// for every packet.
func TestZeroAllocs(t *testing.T) {
	e := Encap{Src: hostA, Dst: hostB, SrcPort: 50000, VNI: 7, Options: GeneveOptions{SourceVNI: 7, HasEndpoint: true, EndpointID: 1, HasTrace: true, TraceID: 2}}
	buf := make([]byte, Headroom+1500)
	in := tcpSegment(buf[Headroom:], instA, instB, 1, 2, TCPFlagSYN, "payload")
	start, _ := Encapsulate(buf, len(in), &e)
	pkt := append([]byte(nil), buf[start:Headroom+len(in)]...)
	g := Geneve(pkt[IPv4MinSize+UDPMinSize:])
	var out Encap
	var sink uint32

	tests := []struct {
		name string
		fn   func()
	}{
		{"Encapsulate", func() { Encapsulate(buf, len(in), &e) }},
		{"EncapsulateGeneve", func() { EncapsulateGeneve(buf, len(in), e.VNI, e.Options) }},
		{"ParseEncap", func() {
			if !ParseEncap(pkt, &out) {
				panic("ParseEncap failed")
			}
		}},
		{"ParseGenevePayload", func() { ParseGenevePayload(g, &out) }},
		{"ParseGeneveOptions", func() { ParseGeneveOptions(g) }},
		{"OptionIter", func() {
			it := g.OptionIter()
			for o, ok := it.Next(); ok; o, ok = it.Next() {
				sink += uint32(len(o.Data))
			}
		}},
		{"WriteGeneve", func() { WriteGeneve(buf, 1, e.Options) }},
		{"Checksum", func() { sink += uint32(Checksum(pkt, 0)) }},
		{"PseudoHeaderChecksum", func() { sink += uint32(PseudoHeaderChecksum(ProtoTCP, instA.As4(), instB.As4(), 20)) }},
		{"ChecksumUpdateAddr", func() { sink += uint32(ChecksumUpdateAddr(1, instA.As4(), instB.As4())) }},
		{"IPv4 accessors", func() {
			ip := IPv4(pkt)
			if ip.Valid() && ip.Src() != ip.Dst() && ip.ChecksumValid() {
				sink += uint32(ip.ComputeChecksum())
			}
		}},
		{"RewriteSrc", func() { in.RewriteSrc(instA) }},
		{"TCP checksum", func() { sink += uint32(TCP(in.Payload()).ComputeChecksum(instA, instB)) }},
		{"FlowHash", func() { sink += FlowHash(in) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
	_ = sink
}
