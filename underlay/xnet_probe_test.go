package underlay

import (
	"net"
	"testing"

	"golang.org/x/net/ipv4"
)

func TestXNetAllocsProbe(t *testing.T) {
	a, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1)})
	b, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 2)})
	defer a.Close()
	defer b.Close()
	pa, pb := ipv4.NewPacketConn(a), ipv4.NewPacketConn(b)
	to := b.LocalAddr().(*net.UDPAddr)
	ws := make([]ipv4.Message, 8)
	rs := make([]ipv4.Message, 8)
	for i := range ws {
		ws[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 1400)}, Addr: to}
		rs[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 1500)}}
	}
	w := testing.AllocsPerRun(100, func() { pa.WriteBatch(ws, 0) })
	r := testing.AllocsPerRun(100, func() {
		for got := 0; got < 8; {
			n, _ := pb.ReadBatch(rs, 0)
			got += n
		}
	})
	t.Logf("x/net ipv4: %v allocs per WriteBatch of 8, %v per ReadBatch loop of 8", w, r)
}
