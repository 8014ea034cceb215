package underlay

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

const (
	benchBatch   = 32
	benchPayload = 1400
	// benchWindow bounds the datagrams in flight, well under what the socket buffers hold,
	// so that the benchmark measures throughput rather than drops.
	benchWindow = 16 * benchBatch
)

// BenchmarkLoopback measures datagrams per second from one host to another over loopback,
// in batches of 32 with 1400-byte payloads, next to a baseline measured in the same run:
// plain net.UDPConn, one datagram per system call (WriteToUDPAddrPort, ReadFromUDPAddrPort).
// One op is one batch each way (baseline, then UDPConn); the metrics are what to read.
func BenchmarkLoopback(b *testing.B) {
	for _, tc := range []struct {
		offload bool
		flows   int
	}{{false, 1}, {true, 1}, {false, 16}, {true, 16}} {
		mode := "plain"
		if tc.offload {
			mode = "offload"
		}
		b.Run(fmt.Sprintf("%s/%dflows", mode, tc.flows), func(b *testing.B) {
			base := benchBaseline(b)
			batched := benchUDPConn(b, tc.offload, tc.flows)
			b.ReportMetric(base, "baseline-dgram/s")
			b.ReportMetric(batched, "dgram/s")
			b.ReportMetric(batched/base, "x-baseline")
		})
	}
}

// benchBaseline sends b.N batches one datagram at a time and returns datagrams/s received.
func benchBaseline(b *testing.B) float64 {
	listen := func(a netip.Addr) *net.UDPConn {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadBuffer(DefaultSocketBuffer)
		c.SetWriteBuffer(DefaultSocketBuffer)
		return c
	}
	tx, rx := listen(hostA), listen(hostB)
	defer tx.Close()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	payload := make([]byte, benchPayload)
	buf := make([]byte, 2048)
	return transfer(b,
		func() {
			for range benchBatch {
				if _, err := tx.WriteToUDPAddrPort(payload, to); err != nil {
					b.Error(err)
				}
			}
		},
		func() (int, error) {
			_, _, err := rx.ReadFromUDPAddrPort(buf)
			return 1, err
		},
		rx.Close)
}

// benchUDPConn sends b.N batches with WriteBatch and returns datagrams/s received.
func benchUDPConn(b *testing.B, offload bool, flows int) float64 {
	cfg := testConfig(offload)
	tx, err := Listen(hostA, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	rx, err := Listen(hostB, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ds := make([]Datagram, benchBatch)
	for i := range ds {
		ds[i] = Datagram{Buf: make([]byte, 64+benchPayload), Off: 64, Len: benchPayload,
			Peer: rx.LocalAddrPort(), SrcPort: uint16(i % flows)}
	}
	rs := readBuffers(benchBatch, 1500)
	return transfer(b,
		func() {
			if _, err := tx.WriteBatch(ds); err != nil {
				b.Error(err)
			}
		},
		func() (int, error) { return rx.ReadBatch(rs) },
		rx.Close)
}

// transfer runs send b.N times against a receiver goroutine calling recv, keeping at most
// benchWindow datagrams in flight, and returns the datagrams received per second. A
// datagram lost on the way is waited for briefly and then given up.
func transfer(b *testing.B, send func(), recv func() (int, error), closeRecv func() error) float64 {
	var got atomic.Int64
	var last atomic.Int64 // when the last datagram arrived, in ns since start
	progress := make(chan struct{}, 1)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for {
			n, err := recv()
			if err != nil {
				return
			}
			got.Add(int64(n))
			last.Store(int64(time.Since(start)))
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	wait := func(until int64) {
		for got.Load() < until {
			select {
			case <-progress:
			case <-time.After(20 * time.Millisecond):
				return // lost: the receiver will not catch up
			}
		}
	}
	sent := int64(0)
	for range b.N {
		wait(sent + benchBatch - benchWindow)
		send()
		sent += benchBatch
	}
	wait(sent)
	closeRecv()
	<-done
	if lost := sent - got.Load(); lost > 0 {
		b.Logf("%d of %d datagrams lost", lost, sent)
	}
	return float64(got.Load()) / time.Duration(last.Load()).Seconds()
}
