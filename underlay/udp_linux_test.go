package underlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/packet"
)

// testConfig lets the kernel choose every port, so that the tests never meet another
// program's (or another test process's) sockets on 127.0.1.x.
func testConfig(offload bool) Config {
	cfg := NewConfig()
	cfg.Port, cfg.SourcePortBase, cfg.Offload = 0, 0, offload
	return cfg
}

// udpPair returns UDPConns on hostA and hostB, closed when the test ends.
func udpPair(t *testing.T, cfg Config) (a, b *UDPConn) {
	t.Helper()
	a, err := Listen(hostA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Listen(hostB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// offloadModes are the two read and write paths of a UDPConn.
var offloadModes = []struct {
	name    string
	offload bool
}{{"plain", false}, {"offload", true}}

func TestUDPConn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int
		run   func(t *testing.T, a, b *UDPConn)
	}{
		{"exchange", DefaultBatchSize, func(t *testing.T, a, b *UDPConn) {
			testExchange(t, a, b, a.SourcePort, b.SourcePort, a.LocalAddrPort().Port(), b.LocalAddrPort().Port())
		}},
		{"exchange in batches of 4", 4, func(t *testing.T, a, b *UDPConn) {
			testExchange(t, a, b, a.SourcePort, b.SourcePort, a.LocalAddrPort().Port(), b.LocalAddrPort().Port())
		}},
		{"exchange one at a time", 1, func(t *testing.T, a, b *UDPConn) {
			testExchange(t, a, b, a.SourcePort, b.SourcePort, a.LocalAddrPort().Port(), b.LocalAddrPort().Port())
		}},
		{"bad datagrams", DefaultBatchSize, func(t *testing.T, a, b *UDPConn) {
			testBadDatagrams(t, a, b, b.LocalAddrPort().Port())
		}},
		{"too long for the reader", DefaultBatchSize, func(t *testing.T, a, b *UDPConn) {
			testTooLong(t, a, b, b.LocalAddrPort().Port())
		}},
		{"concurrent", DefaultBatchSize, func(t *testing.T, a, b *UDPConn) {
			testConcurrent(t, a, b, b.LocalAddrPort().Port())
		}},
		{"close unblocks read", DefaultBatchSize, func(t *testing.T, a, _ *UDPConn) { testCloseUnblocks(t, a) }},
		{"geneve round trip", DefaultBatchSize, testGeneveRoundTrip},
		{"coalesced", DefaultBatchSize, testCoalesced},
	} {
		for _, mode := range offloadModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				cfg := testConfig(mode.offload)
				cfg.BatchSize = tc.batch
				a, b := udpPair(t, cfg)
				if gso, gro := a.Offload(); mode.offload && (!gso || !gro) {
					t.Logf("kernel without offload: GSO %v, GRO %v", gso, gro)
				}
				tc.run(t, a, b)
			})
		}
	}
}

// testGeneveRoundTrip sends a Geneve packet encapsulated in place, the way the data plane
// will, and parses what arrives.
func testGeneveRoundTrip(t *testing.T, a, b *UDPConn) {
	buf := make([]byte, packet.Headroom+1500)
	inner := buf[packet.Headroom : packet.Headroom+100]
	packet.IPv4(inner).Encode(&packet.IPv4Fields{TotalLen: 100, TTL: 64, Protocol: packet.ProtoUDP,
		Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("10.0.2.9")})
	start, ok := packet.EncapsulateGeneve(buf, len(inner), 4242, packet.GeneveOptions{SourceVNI: 4141})
	if !ok {
		t.Fatal("EncapsulateGeneve failed")
	}
	d := []Datagram{{Buf: buf, Off: start, Len: packet.Headroom + len(inner) - start,
		Peer: b.LocalAddrPort(), SrcPort: packet.SourcePort(0xdeadbeef)}}
	if n, err := a.WriteBatch(d); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	got := readN(t, b, readBuffers(4, 1500), 1)
	var e packet.Encap
	if !packet.ParseGenevePayload(got[0].payload, &e) || e.VNI != 4242 || e.Options.SourceVNI != 4141 ||
		e.Inner.Dst() != netip.MustParseAddr("10.0.2.9") {
		t.Errorf("received %x, parsed %+v", got[0].payload, e)
	}
	if got[0].peer != netip.AddrPortFrom(hostA, a.SourcePort(d[0].SrcPort)) {
		t.Errorf("from %v, want %v port %d", got[0].peer, hostA, a.SourcePort(d[0].SrcPort))
	}
}

// testCoalesced sends runs that GSO can send as one datagram and GRO receive as one, and
// reads them with a batch smaller than a run, so that segments wait for the next read.
func testCoalesced(t *testing.T, a, b *UDPConn) {
	var sizes []int
	for range 40 {
		sizes = append(sizes, 1000)
	}
	sizes = append(sizes, 10, 1400, 1400, 1400, 1300, 1400)
	ds := makeBatch(sizes, b.LocalAddrPort(), 1)
	if n, err := a.WriteBatch(ds); n != len(ds) || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	got := readN(t, b, readBuffers(3, 1400), len(ds))
	for i, g := range got {
		if want := pattern(make([]byte, sizes[i]), i, sizes[i]); string(g.payload) != string(want) {
			t.Fatalf("datagram %d: %d bytes, want %d", i, len(g.payload), sizes[i])
		}
	}
	gso, gro := a.Offload()
	sa, sb := a.Stats(), b.Stats()
	t.Logf("sender %+v", sa)
	t.Logf("receiver %+v", sb)
	if gso && sa.WriteSegmented == 0 {
		t.Error("GSO is on but no datagram was sent segmented")
	}
	if !gso && sa.WriteSegmented != 0 {
		t.Errorf("GSO is off but %d datagrams were sent segmented", sa.WriteSegmented)
	}
	if gso && gro && sb.ReadCoalesced == 0 {
		t.Error("GSO and GRO are on but no datagram arrived coalesced")
	}
	if sa.WriteCalls >= uint64(len(ds)) {
		t.Errorf("%d send calls for %d datagrams: no batching", sa.WriteCalls, len(ds))
	}
}

// TestSourcePorts checks the source port pool: a SrcPort always leaves from the same port,
// the one SourcePort reports, and different SrcPorts spread over the pool.
func TestSourcePorts(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			a, b := udpPair(t, testConfig(mode.offload))
			pool := make(map[uint16]bool)
			for _, p := range a.SourcePorts() {
				pool[p] = true
			}
			if len(pool) != DefaultSourcePorts {
				t.Fatalf("pool has %d distinct ports, want %d: %v", len(pool), DefaultSourcePorts, a.SourcePorts())
			}
			// Each flow twice, interleaved, in one batch.
			var srcPorts []uint16
			for h := range uint32(64) {
				srcPorts = append(srcPorts, packet.SourcePort(h*0x9e3779b9))
			}
			srcPorts = append(srcPorts, srcPorts...)
			ds := make([]Datagram, len(srcPorts))
			for i, sp := range srcPorts {
				ds[i] = Datagram{Buf: []byte{byte(i)}, Len: 1, Peer: b.LocalAddrPort(), SrcPort: sp}
			}
			if n, err := a.WriteBatch(ds); n != len(ds) || err != nil {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			seen := make(map[uint16]uint16) // SrcPort → port seen
			for _, g := range readN(t, b, readBuffers(DefaultBatchSize, 10), len(ds)) {
				sp := srcPorts[g.payload[0]]
				if want := a.SourcePort(sp); g.peer.Port() != want {
					t.Errorf("SrcPort %d arrived from port %d, SourcePort says %d", sp, g.peer.Port(), want)
				}
				if p, ok := seen[sp]; ok && p != g.peer.Port() {
					t.Errorf("SrcPort %d arrived from ports %d and %d", sp, p, g.peer.Port())
				}
				seen[sp] = g.peer.Port()
				if !pool[g.peer.Port()] || g.peer.Addr() != hostA {
					t.Errorf("datagram from %v, not from the pool on %v", g.peer, hostA)
				}
			}
			used := make(map[uint16]bool)
			for _, p := range seen {
				used[p] = true
			}
			if len(used) < 2 {
				t.Errorf("64 flows left from %d port(s), want them spread", len(used))
			}
			t.Logf("64 flows over %d of %d source ports", len(used), len(pool))
		})
	}
}

// TestSourcePortInUse: a pool port taken by someone else is skipped, and the pool takes the
// next free ports, in order.
func TestSourcePortInUse(t *testing.T) {
	addr := netip.MustParseAddr("127.0.1.3")
	blocker, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	taken := uint16(blocker.LocalAddr().(*net.UDPAddr).Port)
	if taken > 65535-100 {
		t.Skipf("kernel chose port %d, too near the top for a pool above it", taken)
	}
	cfg := testConfig(false)
	cfg.SourcePortBase, cfg.SourcePorts = taken, 4
	c, err := Listen(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ports := c.SourcePorts()
	if ports[0] <= taken {
		t.Errorf("pool %v starts at or below port %d, which was taken", ports, taken)
	}
	for i := 1; i < len(ports); i++ {
		if ports[i] <= ports[i-1] {
			t.Errorf("pool %v not ascending", ports)
		}
	}
	// Every pool port is taken now: a second host on the same address with a pool that
	// could only use them fails, and says why.
	cfg.SourcePortBase = 65535
	cfg.SourcePorts = 1
	blocker2, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 65535)))
	if err != nil {
		t.Skipf("port 65535 on %v is in use: %v", addr, err)
	}
	defer blocker2.Close()
	if c2, err := Listen(addr, cfg); err == nil {
		c2.Close()
		t.Error("Listen succeeded with its only source port taken")
	} else {
		t.Logf("as expected: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	a, err := Listen(hostA, testConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	inUse := testConfig(false)
	inUse.Port = a.LocalAddrPort().Port()
	for _, tc := range []struct {
		name string
		addr netip.Addr
		cfg  Config
		want error
	}{
		{"IPv6", netip.IPv6Loopback(), testConfig(false), nil},
		{"invalid config", hostA, Config{}, nil},
		{"receive port in use", hostA, inUse, syscall.EADDRINUSE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Listen(tc.addr, tc.cfg)
			if err == nil {
				c.Close()
				t.Fatal("Listen succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Listen: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestListenDefaults binds the production ports, on an address of its own.
func TestListenDefaults(t *testing.T) {
	c, err := Listen(netip.MustParseAddr("127.0.1.250"), NewConfig())
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("ports in use: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.LocalAddrPort().Port() != Port || c.BatchSize() != DefaultBatchSize {
		t.Errorf("listening on %v with batches of %d", c.LocalAddrPort(), c.BatchSize())
	}
	ports := c.SourcePorts()
	if len(ports) != DefaultSourcePorts || ports[0] < DefaultSourcePortBase {
		t.Errorf("source ports %v", ports)
	}
	gso, gro := c.Offload()
	t.Logf("source ports %v; GSO %v, GRO %v", ports, gso, gro)
}

// TestZeroAllocs proves the hot path allocates nothing: a steady exchange of batches over
// loopback, in both modes and with flows spread over the pool.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, mode := range offloadModes {
		for _, flows := range []int{1, 8} {
			t.Run(fmt.Sprintf("%s/%d flows", mode.name, flows), func(t *testing.T) {
				a, b := udpPair(t, testConfig(mode.offload))
				sizes := []int{1400, 1400, 1400, 1400, 1400, 1400, 600, 100}
				ds := makeBatch(sizes, b.LocalAddrPort(), 0)
				for i := range ds {
					ds[i].SrcPort = uint16(i % flows)
				}
				rs := readBuffers(DefaultBatchSize, 1500)
				exchange := func() {
					if n, err := a.WriteBatch(ds); n != len(ds) || err != nil {
						t.Fatalf("WriteBatch = %d, %v", n, err)
					}
					for got := 0; got < len(ds); {
						n, err := b.ReadBatch(rs)
						if err != nil {
							t.Fatal(err)
						}
						got += n
					}
				}
				exchange()
				if allocs := testing.AllocsPerRun(200, exchange); allocs != 0 {
					t.Errorf("%v allocations per batch, want 0", allocs)
				}
			})
		}
	}
}

// poison marks a test datagram that the fake kernel below refuses.
const poison = 0xee

// failingSendmmsg sends like the kernel, except that it refuses a datagram whose payload
// starts with poison with EPERM (a firewall's answer), and a GSO message with gsoErr, the
// way sendmmsg reports a failure: the messages before the failed one are sent and counted.
func failingSendmmsg(gsoErr syscall.Errno) func(uintptr, []unix.Mmsghdr) (int, syscall.Errno) {
	return func(fd uintptr, hs []unix.Mmsghdr) (int, syscall.Errno) {
		for i := range hs {
			h := &hs[i].Hdr
			iovs := unsafe.Slice(h.Iov, h.Iovlen)
			var err syscall.Errno
			switch {
			case h.Controllen > 0:
				err = gsoErr
			case iovs[0].Len > 0 && *iovs[0].Base == poison:
				err = syscall.EPERM
			}
			if err == 0 {
				if _, err = sendmmsg(fd, hs[i:i+1]); err == 0 {
					continue
				}
			}
			if i == 0 {
				return 0, err
			}
			return i, 0
		}
		return len(hs), 0
	}
}

// TestWriteFailures checks how WriteBatch meets errors from the kernel: a refused datagram
// is counted and skipped and the rest go, in order; a GSO message the kernel refuses is sent
// again one datagram at a time, and EIO (no GSO in the kernel or NIC) turns GSO off.
func TestWriteFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offload bool
		gsoErr  syscall.Errno
		gsoOn   bool // after the batch
	}{
		{"plain", false, 0, false},
		{"GSO refused for this message", true, syscall.EINVAL, true},
		{"GSO unsupported", true, syscall.EIO, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := udpPair(t, testConfig(tc.offload))
			if gso, _ := a.Offload(); gso != tc.offload {
				t.Skipf("GSO is %v", gso)
			}
			a.w.sendmmsg = failingSendmmsg(tc.gsoErr)
			sizes := []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 500, 1000}
			bad := map[int]bool{1: true, 4: true, 5: true}
			ds := makeBatch(sizes, b.LocalAddrPort(), 3)
			for i := range bad {
				ds[i].Payload()[0] = poison
			}
			n, err := a.WriteBatch(ds)
			if n != len(ds)-len(bad) || !errors.Is(err, syscall.EPERM) {
				t.Errorf("WriteBatch = %d, %v; want %d, EPERM", n, err, len(ds)-len(bad))
			}
			got := readN(t, b, readBuffers(DefaultBatchSize, 1500), n)
			var want []int
			for i := range ds {
				if !bad[i] {
					want = append(want, i)
				}
			}
			for j, g := range got {
				i := want[j]
				if string(g.payload) != string(pattern(make([]byte, sizes[i]), i, sizes[i])) {
					t.Errorf("datagram %d arrived as number %d or damaged", i, j)
				}
			}
			s := a.Stats()
			if s.WriteErrors != uint64(len(bad)) || s.WriteSegmented != 0 || s.WriteDatagrams != uint64(n) {
				t.Errorf("stats %+v", s)
			}
			if gso, _ := a.Offload(); gso != tc.gsoOn {
				t.Errorf("GSO on = %v after the batch, want %v", gso, tc.gsoOn)
			}
		})
	}
}

func TestGROSegment(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	seg1400 := binary.NativeEndian.AppendUint32(nil, 1400)
	gro := cmsg(unix.SOL_UDP, unix.UDP_GRO, seg1400)
	bad := cmsg(unix.SOL_UDP, unix.UDP_GRO, seg1400)
	bad[0] = 200 // a length past the buffer
	for _, tc := range []struct {
		name string
		ctrl []byte
		want int
	}{
		{"none", nil, 0},
		{"GRO", gro, 1400},
		{"after another", append(cmsg(unix.SOL_IP, unix.IP_TOS, []byte{1}), gro...), 1400},
		{"only another", cmsg(unix.SOL_IP, unix.IP_TOS, []byte{1}), 0},
		{"bad length", bad, 0},
		{"short", gro[:8], 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := groSegment(tc.ctrl); got != tc.want {
				t.Errorf("groSegment = %d, want %d", got, tc.want)
			}
		})
	}
}
