package underlay

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

func memSrcPort(sp uint16) uint16 { return DefaultSourcePortBase + sp%DefaultSourcePorts }

// memPair returns two Conns of a new MemNet, closed when the test ends.
func memPair(t *testing.T) (*MemNet, Conn, Conn) {
	t.Helper()
	n := NewMemNet()
	a, err := n.Listen(hostA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Listen(hostB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return n, a, b
}

func TestMemNet(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, n *MemNet, a, b Conn)
	}{
		{"exchange", func(t *testing.T, _ *MemNet, a, b Conn) { testExchange(t, a, b, memSrcPort, memSrcPort, Port, Port) }},
		{"bad datagrams", func(t *testing.T, _ *MemNet, a, b Conn) { testBadDatagrams(t, a, b, Port) }},
		{"too long for the reader", func(t *testing.T, _ *MemNet, a, b Conn) { testTooLong(t, a, b, Port) }},
		{"concurrent", func(t *testing.T, _ *MemNet, a, b Conn) { testConcurrent(t, a, b, Port) }},
		{"close unblocks read", func(t *testing.T, _ *MemNet, a, _ Conn) { testCloseUnblocks(t, a) }},
		{"no listener", func(t *testing.T, n *MemNet, a, b Conn) {
			ds := makeBatch([]int{10, 20}, netip.MustParseAddrPort("127.0.1.9:6081"), 0)
			ds = append(ds, makeBatch([]int{30}, netip.AddrPortFrom(b.LocalAddr(), 6082), 0)...)
			if k, err := a.WriteBatch(ds); k != 3 || err != nil {
				t.Fatalf("WriteBatch = %d, %v; want 3, nil: UDP does not know", k, err)
			}
			if s := n.Stats(); s.NoListener != 3 {
				t.Errorf("NoListener = %d, want 3", s.NoListener)
			}
			b.Close()
			a.WriteBatch(makeBatch([]int{10}, netip.AddrPortFrom(b.LocalAddr(), Port), 0))
			if s := n.Stats(); s.NoListener != 4 {
				t.Errorf("NoListener after the peer closed = %d, want 4", s.NoListener)
			}
		}},
		{"queue full", func(t *testing.T, n *MemNet, a, b Conn) {
			sizes := make([]int, MemQueueLen+5)
			for i := range sizes {
				sizes[i] = 1 + i%100
			}
			ds := makeBatch(sizes, netip.AddrPortFrom(b.LocalAddr(), Port), 0)
			if k, err := a.WriteBatch(ds); k != len(ds) || err != nil {
				t.Fatalf("WriteBatch = %d, %v", k, err)
			}
			if s := n.Stats(); s.QueueFull != 5 {
				t.Errorf("QueueFull = %d, want 5", s.QueueFull)
			}
			got := readN(t, b, readBuffers(DefaultBatchSize, 100), MemQueueLen)
			for i, g := range got {
				if len(g.payload) != sizes[i] || g.payload[0] != pattern(make([]byte, sizes[i]), i, sizes[i])[0] {
					t.Fatalf("datagram %d out of order or wrong", i)
				}
			}
		}},
		{"address in use", func(t *testing.T, n *MemNet, a, _ Conn) {
			if _, err := n.Listen(a.LocalAddr()); !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("second Listen on %v: %v, want EADDRINUSE", a.LocalAddr(), err)
			}
			a.Close()
			c, err := n.Listen(a.LocalAddr())
			if err != nil {
				t.Fatalf("Listen after Close: %v", err)
			}
			c.Close()
		}},
		{"IPv6 refused", func(t *testing.T, n *MemNet, _, _ Conn) {
			if _, err := n.Listen(netip.IPv6Loopback()); err == nil {
				t.Error("Listen on ::1 succeeded; the underlay is IPv4")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, a, b := memPair(t)
			tc.run(t, n, a, b)
		})
	}
}

func TestMemNetZeroAllocs(t *testing.T) {
	_, a, b := memPair(t)
	ds := makeBatch([]int{1400, 1400, 1400, 100}, netip.AddrPortFrom(b.LocalAddr(), Port), 9)
	rs := readBuffers(len(ds), 1500)
	exchange := func() {
		a.WriteBatch(ds)
		for got := 0; got < len(ds); {
			n, err := b.ReadBatch(rs)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	exchange() // the queue's buffers grow once
	if allocs := testing.AllocsPerRun(100, exchange); allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}
