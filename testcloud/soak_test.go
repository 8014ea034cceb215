package testcloud_test

import (
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/openvpc/openvpc/datapath"
)

// TestSoakRandomBytes throws random datagrams at a host agent's underlay
// socket: the agent stays up, its memory stays flat, and every datagram it
// reads is counted as a verdict.
func TestSoakRandomBytes(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 50_000
	}
	s := newScene(t)
	_, clientNS := s.run(t, "red-a", s.a, s.red)
	web, webNS := s.run(t, "red-a", s.b, s.red)
	serveHTTP(t, webNS, "web")

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1), Port: int(s.c.WirePort())}
	rng := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, 1500)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	counted := s.a.Plane.FromWire.Sum
	start, readStart := counted(), s.a.Wire.Stats().ReadDatagrams
	for i := range n {
		size := 1 + rng.IntN(len(buf))
		for j := 0; j < size; j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < size; k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if i%3 == 0 && size > 8 { // a plausible Geneve header, garbage behind it
			buf[0], buf[1], buf[2], buf[3] = 0, 0, 0x08, 0
		}
		if _, err := conn.WriteToUDP(buf[:size], to); err != nil {
			t.Fatal(err)
		}
		if i%256 == 255 {
			// Pace the sender to the receiver: a UDP socket drops what its
			// buffer cannot hold, and every datagram read must be counted.
			for s.a.Wire.Stats().ReadDatagrams-readStart+2048 < uint64(i) {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	// Every datagram read gets exactly one verdict.
	waitFor(t, func() bool { return s.a.Wire.Stats().ReadDatagrams-readStart == counted()-start })
	read := s.a.Wire.Stats().ReadDatagrams - readStart
	if read < uint64(n)*9/10 {
		t.Fatalf("only %d of %d datagrams reached the agent", read, n)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Fatalf("heap grew by %d MB over the soak", grew>>20)
	}
	// And the host still forwards.
	mustGet(t, clientNS, web.PrivateIp, "hello from web")
	t.Logf("%d datagrams sent, %d read, malformed %d", n, read, s.a.Plane.Counters.Get(datapath.Malformed))
}
