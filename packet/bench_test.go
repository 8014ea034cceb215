package packet

import (
	"fmt"
	"testing"
)

var benchSizes = []int{64, 1400}

// benchInner builds a UDP packet with an inner payload of n bytes at Headroom.
func benchInner(n int) ([]byte, IPv4) {
	buf := make([]byte, Headroom+IPv4MinSize+UDPMinSize+n)
	in := udpDatagram(buf[Headroom:], instA, instB, 40000, 443, string(make([]byte, n)))
	return buf, in
}

func BenchmarkEncapsulate(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			buf, in := benchInner(n)
			e := Encap{Src: hostA, Dst: hostB, VNI: 7, Options: GeneveOptions{SourceVNI: 7}}
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				e.SrcPort = SourcePort(FlowHash(in))
				if _, ok := Encapsulate(buf, len(in), &e); !ok {
					b.Fatal("Encapsulate failed")
				}
			}
		})
	}
}

func BenchmarkParseEncap(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			buf, in := benchInner(n)
			e := Encap{Src: hostA, Dst: hostB, VNI: 7, Options: GeneveOptions{SourceVNI: 7}}
			start, _ := Encapsulate(buf, len(in), &e)
			pkt := buf[start:]
			var out Encap
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if !ParseEncap(pkt, &out) {
					b.Fatal("ParseEncap failed")
				}
			}
		})
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 1400} {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var s uint16
			for b.Loop() {
				s += Checksum(data, 0)
			}
			_ = s
		})
	}
}

func BenchmarkRewriteSrc(b *testing.B) {
	buf := make([]byte, 100)
	ip := tcpSegment(buf, instA, instB, 40000, 443, TCPFlagACK, "0123456789")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i&1 == 0 {
			ip.RewriteSrc(hostA)
		} else {
			ip.RewriteSrc(instA)
		}
	}
}

func BenchmarkFlowHash(b *testing.B) {
	buf := make([]byte, 100)
	ip := tcpSegment(buf, instA, instB, 40000, 443, TCPFlagACK, "")
	b.ReportAllocs()
	var s uint32
	for b.Loop() {
		s += FlowHash(ip)
	}
	_ = s
}
