package underlay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// Host addresses of the tests: loopback, which Linux answers on for all of 127/8.
var (
	hostA = netip.MustParseAddr("127.0.1.1")
	hostB = netip.MustParseAddr("127.0.1.2")
)

// pattern is the payload of test datagram id with n bytes: every byte depends on both, so a
// datagram delivered into the wrong entry, cut, or shifted is caught.
func pattern(b []byte, id, n int) []byte {
	for j := range n {
		b[j] = byte(id*31 + j*7 + n)
	}
	return b[:n]
}

// makeBatch returns datagrams for the given payload sizes, to peer from srcPort, each with
// headroom in front of its payload; the payloads are pattern(id, size) with id its index.
func makeBatch(sizes []int, peer netip.AddrPort, srcPort uint16) []Datagram {
	ds := make([]Datagram, len(sizes))
	for i, n := range sizes {
		off := []int{0, 64, 13}[i%3]
		ds[i] = Datagram{Buf: make([]byte, off+n+i%2), Off: off, Len: n, Peer: peer, SrcPort: srcPort}
		pattern(ds[i].Buf[off:], i, n)
	}
	return ds
}

// readBuffers returns n empty entries for ReadBatch with room for room-byte payloads,
// each after a different headroom.
func readBuffers(n, room int) []Datagram {
	ds := make([]Datagram, n)
	for i := range ds {
		off := []int{64, 0, 5}[i%3]
		ds[i] = Datagram{Buf: make([]byte, off+room), Off: off}
	}
	return ds
}

// received is one datagram as a test saw it.
type received struct {
	payload []byte
	peer    netip.AddrPort
}

// readN reads from c until it has want datagrams, checking that ReadBatch leaves Off
// alone. A read that does not finish in time closes c, which fails the test.
func readN(t *testing.T, c Conn, ds []Datagram, want int) []received {
	t.Helper()
	timer := time.AfterFunc(5*time.Second, func() { c.Close() })
	defer timer.Stop()
	offs := make(map[*byte]int)
	for _, d := range ds {
		offs[&d.Buf[0]] = d.Off
	}
	var got []received
	for len(got) < want {
		n, err := c.ReadBatch(ds)
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d datagrams: %v", len(got), want, err)
		}
		if n < 1 || n > len(ds) {
			t.Fatalf("ReadBatch returned %d for %d entries", n, len(ds))
		}
		for _, d := range ds[:n] {
			if offs[&d.Buf[0]] != d.Off {
				t.Fatalf("ReadBatch moved Off of a buffer from %d to %d", offs[&d.Buf[0]], d.Off)
			}
			got = append(got, received{bytes.Clone(d.Payload()), d.Peer})
		}
	}
	if len(got) != want {
		t.Fatalf("read %d datagrams, want %d", len(got), want)
	}
	return got
}

// sizes1to1500 covers the edges of a Geneve payload's size, with runs of equal sizes that
// GSO sends as one, and runs that end shorter.
var sizes1to1500 = []int{1, 2, 7, 63, 64, 65, 100, 511, 512, 999, 1000, 1000, 1000, 999,
	1399, 1400, 1400, 1400, 1400, 1400, 1401, 1499, 1500, 1500, 1500, 1, 1500, 1200, 1200, 700}

// testExchange sends batches both ways between a and b, the way every Conn must carry
// them: payloads, lengths and order intact, each entry's Off kept, the sender's address and
// source port reported. srcPortA and srcPortB map a SrcPort to the port it leaves a's or b's
// host from; aPort and bPort are the ports a and b receive on.
func testExchange(t *testing.T, a, b Conn, srcPortA, srcPortB func(uint16) uint16, aPort, bPort uint16) {
	t.Helper()
	for _, dir := range []struct {
		name     string
		from, to Conn
		toPort   uint16
		srcPort  func(uint16) uint16
		flow     uint16
	}{
		{"a to b", a, b, bPort, srcPortA, 0xc123},
		{"b to a", b, a, aPort, srcPortB, 0xf00d},
	} {
		peer := netip.AddrPortFrom(dir.to.LocalAddr(), dir.toPort)
		ds := makeBatch(sizes1to1500, peer, dir.flow)
		n, err := dir.from.WriteBatch(ds)
		if n != len(ds) || err != nil {
			t.Fatalf("%s: WriteBatch = %d, %v; want %d, nil", dir.name, n, err, len(ds))
		}
		got := readN(t, dir.to, readBuffers(7, 1500), len(ds))
		wantPeer := netip.AddrPortFrom(dir.from.LocalAddr(), dir.srcPort(dir.flow))
		for i, g := range got {
			if g.peer != wantPeer {
				t.Errorf("%s: datagram %d from %v, want %v", dir.name, i, g.peer, wantPeer)
			}
			want := pattern(make([]byte, sizes1to1500[i]), i, sizes1to1500[i])
			if !bytes.Equal(g.payload, want) {
				t.Errorf("%s: datagram %d: got %d bytes %x…, want %d bytes %x…", dir.name, i,
					len(g.payload), g.payload[:min(8, len(g.payload))], len(want), want[:min(8, len(want))])
			}
		}
	}
	for _, c := range []Conn{a, b} {
		s := c.Stats()
		if s.WriteDatagrams != uint64(len(sizes1to1500)) || s.ReadDatagrams != uint64(len(sizes1to1500)) ||
			s.WriteErrors != 0 || s.ReadErrors != 0 || s.ReadDropped != 0 {
			t.Errorf("%v: stats %+v", c.LocalAddr(), s)
		}
		var total uint64
		for _, n := range sizes1to1500 {
			total += uint64(n)
		}
		if s.ReadBytes != total || s.WriteBytes != total {
			t.Errorf("%v: read %d and wrote %d bytes, want %d", c.LocalAddr(), s.ReadBytes, s.WriteBytes, total)
		}
	}
}

// testCloseUnblocks checks that Close ends a ReadBatch waiting for data, and that later calls
// fail with net.ErrClosed.
func testCloseUnblocks(t *testing.T, c Conn) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(readBuffers(4, 1500))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("ReadBatch returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked 5s after Close")
	}
	if _, err := c.ReadBatch(readBuffers(1, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch on a closed Conn: %v, want net.ErrClosed", err)
	}
	ds := makeBatch([]int{10}, netip.AddrPortFrom(hostB, Port), 0)
	if _, err := c.WriteBatch(ds); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteBatch on a closed Conn: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

// testBadDatagrams checks that WriteBatch skips and counts bad datagrams and still sends the
// good ones, and that ReadBatch refuses an entry with no room.
func testBadDatagrams(t *testing.T, a, b Conn, bPort uint16) {
	t.Helper()
	to := netip.AddrPortFrom(b.LocalAddr(), bPort)
	good := func(n int) Datagram { return Datagram{Buf: make([]byte, n), Len: n, Peer: to} }
	bad := []Datagram{
		{Buf: make([]byte, 10), Len: 11, Peer: to},
		{Buf: make([]byte, 10), Off: 5, Len: 6, Peer: to},
		{Buf: make([]byte, 10), Off: -1, Len: 1, Peer: to},
		{Buf: make([]byte, 10), Len: -1, Peer: to},
		{Buf: make([]byte, MaxPayload+1), Len: MaxPayload + 1, Peer: to},
		{Buf: make([]byte, 10), Len: 10, Peer: netip.MustParseAddrPort("[::1]:6081")},
		{Buf: make([]byte, 10), Len: 10, Peer: netip.AddrPortFrom(b.LocalAddr(), 0)},
		{Buf: make([]byte, 10), Len: 10},
	}
	var ds []Datagram
	for _, d := range bad {
		ds = append(ds, good(20), d)
	}
	before := a.Stats().WriteErrors
	n, err := a.WriteBatch(ds)
	if n != len(bad) || !errors.Is(err, ErrBadDatagram) {
		t.Errorf("WriteBatch = %d, %v; want %d, ErrBadDatagram", n, err, len(bad))
	}
	if e := a.Stats().WriteErrors - before; e != uint64(len(bad)) {
		t.Errorf("WriteErrors grew by %d, want %d", e, len(bad))
	}
	readN(t, b, readBuffers(4, 100), len(bad))

	for _, d := range []Datagram{{}, {Buf: make([]byte, 4), Off: 4}, {Buf: make([]byte, 4), Off: -1}} {
		if _, err := b.ReadBatch([]Datagram{{Buf: make([]byte, 10)}, d}); !errors.Is(err, ErrBadDatagram) {
			t.Errorf("ReadBatch with Off %d in a %d-byte Buf: %v, want ErrBadDatagram", d.Off, len(d.Buf), err)
		}
	}
}

// testTooLong checks that a datagram longer than the reader's buffer is dropped and counted,
// and the ones around it are delivered.
func testTooLong(t *testing.T, a, b Conn, bPort uint16) {
	t.Helper()
	ds := makeBatch([]int{100, 1500, 200, 1500, 1500, 300}, netip.AddrPortFrom(b.LocalAddr(), bPort), 7)
	if n, err := a.WriteBatch(ds); n != len(ds) || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	before := b.Stats().ReadDropped
	got := readN(t, b, readBuffers(8, 1000), 3)
	for i, want := range []int{100, 200, 300} {
		if len(got[i].payload) != want {
			t.Errorf("datagram %d has %d bytes, want %d", i, len(got[i].payload), want)
		}
	}
	if d := b.Stats().ReadDropped - before; d != 3 {
		t.Errorf("ReadDropped grew by %d, want 3", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"kernel-chosen ports", func(c *Config) { c.Port, c.SourcePortBase = 0, 0 }, true},
		{"one source port", func(c *Config) { c.SourcePorts = 1 }, true},
		{"no source ports", func(c *Config) { c.SourcePorts = 0 }, false},
		{"too many source ports", func(c *Config) { c.SourcePorts = 257 }, false},
		{"pool past 65535", func(c *Config) { c.SourcePortBase = 65530 }, false},
		{"pool up to 65535", func(c *Config) { c.SourcePortBase = 65520 }, true},
		{"batch 0", func(c *Config) { c.BatchSize = 0 }, false},
		{"batch 1024", func(c *Config) { c.BatchSize = 1024 }, true},
		{"batch 1025", func(c *Config) { c.BatchSize = 1025 }, false},
		{"negative buffer", func(c *Config) { c.SocketBuffer = -1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	var zero Config
	if zero.Validate() == nil {
		t.Error("the zero Config validated; Listen needs NewConfig's defaults")
	}
}

// testConcurrent has several goroutines write to b through a at once while two read, as the
// data plane does (one writer per instance port); every datagram must arrive once, and each
// writer's flow in order within each reader.
func testConcurrent(t *testing.T, a, b Conn, bPort uint16) {
	t.Helper()
	const writers, batches, perBatch = 4, 30, 8 // fewer than MemQueueLen in all: no drops
	to := netip.AddrPortFrom(b.LocalAddr(), bPort)
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			ds := make([]Datagram, perBatch)
			for i := range ds {
				ds[i] = Datagram{Buf: make([]byte, 64), Off: 16, Len: 3, Peer: to, SrcPort: uint16(w)}
			}
			for k := range batches {
				for i := range ds {
					seq := k*perBatch + i
					ds[i].Payload()[0], ds[i].Payload()[1], ds[i].Payload()[2] = byte(w), byte(seq>>8), byte(seq)
				}
				if n, err := a.WriteBatch(ds); n != perBatch || err != nil {
					errs <- fmt.Errorf("writer %d: WriteBatch = %d, %v", w, n, err)
					return
				}
			}
			errs <- nil
		}()
	}
	const total = writers * batches * perBatch
	var count atomic.Int64
	seen := make([][batches * perBatch]atomic.Bool, writers)
	readErrs := make(chan error, 2)
	for range 2 {
		go func() {
			ds := readBuffers(5, 100)
			last := make([]int, writers)
			for i := range last {
				last[i] = -1
			}
			for count.Load() < total {
				n, err := b.ReadBatch(ds)
				if err != nil {
					readErrs <- nil // closed: the other reader got the rest, or the test timed out
					return
				}
				for _, d := range ds[:n] {
					p := d.Payload()
					w, seq := int(p[0]), int(p[1])<<8|int(p[2])
					if seq <= last[w] {
						readErrs <- fmt.Errorf("writer %d: datagram %d after %d", w, seq, last[w])
						return
					}
					last[w] = seq
					if seen[w][seq].Swap(true) {
						readErrs <- fmt.Errorf("writer %d: datagram %d twice", w, seq)
						return
					}
				}
				count.Add(int64(n))
			}
			readErrs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for count.Load() < total && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.Close() // releases the reader still waiting
	for range 2 {
		if err := <-readErrs; err != nil {
			t.Error(err)
		}
	}
	if got := count.Load(); got != total {
		t.Errorf("received %d of %d datagrams", got, total)
	}
}
