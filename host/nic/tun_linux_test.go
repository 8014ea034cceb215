package nic

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/packet"
)

func needTUN(t *testing.T) {
	t.Helper()
	if !TUNAvailable() {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but TUN instances cannot be made here: run as root with /dev/net/tun")
		}
		t.Skip("TUN instances need root and /dev/net/tun")
	}
}

func testInstance() Instance {
	return Instance{
		ID:      model.NewID(model.KindInstance),
		Addr:    netip.MustParsePrefix("10.0.1.5/24"),
		Gateway: netip.MustParseAddr("10.0.1.1"),
		MTU:     1456,
	}
}

func openTUN(t *testing.T, b *TUNBackend, inst Instance) *TUN {
	t.Helper()
	n, err := b.Open(inst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n.(*TUN)
}

// portBufs are read buffers as the data plane gives a port.
func portBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, packet.Headroom+65536)
	}
	return bufs, make([]int, n)
}

// echoRequest is an ICMP echo request from src to dst, as the wire would
// deliver it, at buf[off:].
func echoRequest(buf []byte, src, dst netip.Addr, seq uint16) []byte {
	pkt := buf[:packet.IPv4MinSize+packet.ICMPv4MinSize+8]
	packet.IPv4(pkt).Encode(&packet.IPv4Fields{TotalLen: uint16(len(pkt)), TTL: 64, Protocol: packet.ProtoICMP, Src: src, Dst: dst})
	m := packet.ICMPv4(pkt[packet.IPv4MinSize:])
	m.SetType(packet.ICMPv4EchoRequest)
	m.SetCode(0)
	m.SetIdent(7)
	m.SetSeq(seq)
	copy(m.Payload(), "openvpc!")
	m.SetChecksum(m.ComputeChecksum())
	return pkt
}

// TestTUNEcho: a namespace with eth0 configured as the instance; an echo
// request written to the port is answered by the instance's kernel, read
// back from the port, and neither direction allocates.
func TestTUNEcho(t *testing.T) {
	needTUN(t)
	b, err := NewTUNBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inst := testInstance()
	tn := openTUN(t, b, inst)
	if !namespaceExists(tn.Namespace()) {
		t.Fatalf("no namespace %s", tn.Namespace())
	}
	bs := tn.BatchSize()
	if bs < 64 {
		t.Errorf("batch size %d: the device has no offloads", bs)
	}
	echoNoAllocs(t, tn, inst, "the TUN")
}

// echoNoAllocs writes echo requests to port for the instance's address
// and reads each reply back, checking that a round trip allocates
// nothing.
func echoNoAllocs(t *testing.T, port NIC, inst Instance, what string) {
	t.Helper()
	bufs, sizes := portBufs(port.BatchSize())
	peer := netip.MustParseAddr("10.0.2.9") // off-subnet: the reply goes via the gateway, still eth0
	req := echoRequest(make([]byte, 64), peer, inst.Addr.Addr(), 1)
	one := [][]byte{req}
	roundTrip := func(seq uint16) {
		m := packet.ICMPv4(req[packet.IPv4MinSize:])
		m.SetSeq(seq)
		m.SetChecksum(m.ComputeChecksum())
		if err := port.Write(one); err != nil {
			t.Error(err)
			return
		}
		for {
			n, err := port.Read(bufs, sizes)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range n {
				p := packet.IPv4(bufs[i][packet.Headroom : packet.Headroom+sizes[i]])
				if p.Protocol() == packet.ProtoICMP && p.Dst() == peer && packet.ICMPv4(p.Payload()).Seq() == seq {
					return
				}
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		roundTrip(1)
		seq := uint16(2)
		if a := testing.AllocsPerRun(50, func() { roundTrip(seq); seq++ }); a != 0 {
			t.Errorf("%v allocations per echo through %s, want 0", a, what)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no echo reply from the instance's kernel")
	}
}

// TestTUNDial: the agent dials as the instance; the SYN leaves through
// the port with the instance's address.
func TestTUNDial(t *testing.T) {
	needTUN(t)
	b, err := NewTUNBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inst := testInstance()
	tn := openTUN(t, b, inst)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go tn.DialContext(ctx, "tcp", "10.0.1.9:80")
	bufs, sizes := portBufs(tn.BatchSize())
	n, err := tn.Read(bufs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	p := packet.IPv4(bufs[0][packet.Headroom : packet.Headroom+sizes[0]])
	if n < 1 || p.Protocol() != packet.ProtoTCP || p.Src() != inst.Addr.Addr() || p.Dst() != netip.MustParseAddr("10.0.1.9") {
		t.Fatalf("read %d packets, first %v → %v proto %d; want the SYN from the instance", n, p.Src(), p.Dst(), p.Protocol())
	}
}

// TestTUNCrashAdoptSweep: an agent killed with its NICs open leaves its
// namespaces recorded; the next agent on the same state directory adopts
// the one whose instance is still here and removes the other.
func TestTUNCrashAdoptSweep(t *testing.T) {
	needTUN(t)
	dir := t.TempDir()
	b1, err := NewTUNBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	kept, gone := testInstance(), testInstance()
	t1, t2 := openTUN(t, b1, kept), openTUN(t, b1, gone)
	if _, err := NewTUNBackend(dir); err == nil {
		t.Fatal("a second agent could lock the same state directory")
	}
	// What kill -9 does: the devices die with their descriptors, the lock
	// is released, the namespaces stay.
	t1.release, t2.release = nil, nil
	t1.Close()
	t2.Close()
	b1.Close()

	// A namespace nobody recorded is not ours to adopt.
	foreign := testInstance()
	h, err := openNamed(NamespaceName(foreign.ID))
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	defer deleteNamed(NamespaceName(foreign.ID))

	b2, err := NewTUNBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if got := b2.Namespaces().Owned(); len(got) != 2 {
		t.Fatalf("after the crash the record lists %v, want both namespaces", got)
	}
	if _, err := b2.Open(foreign); err == nil {
		t.Fatal("opened an instance in a namespace another agent made")
	}
	t3 := openTUN(t, b2, kept)
	if err := b2.Sweep(map[string]bool{kept.ID: true}); err != nil {
		t.Fatal(err)
	}
	if namespaceExists(NamespaceName(gone.ID)) {
		t.Error("the terminated instance's namespace survived the sweep")
	}
	if !namespaceExists(t3.Namespace()) {
		t.Error("the adopted namespace was removed")
	}
	// The adopted instance works: it dials out through its new eth0.
	c, err := t3.DialPing(kept.Addr.Addr(), netip.MustParseAddr("10.0.1.7"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := t3.Close(); err != nil {
		t.Fatal(err)
	}
	if namespaceExists(t3.Namespace()) {
		t.Error("Close left the namespace")
	}
	if got := b2.Namespaces().Owned(); len(got) != 0 {
		t.Errorf("record lists %v after every NIC closed", got)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
		t.Error(err)
	}
}

// TestTUNWriteMerges: segments of one TCP flow written together reach the
// instance's kernel merged (GRO), as far fewer, larger packets.
func TestTUNWriteMerges(t *testing.T) {
	needTUN(t)
	b, err := NewTUNBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inst := testInstance()
	tn := openTUN(t, b, inst)
	peer := netip.MustParseAddr("10.0.1.9")
	const segments, size = 32, 1000
	pkts := make([][]byte, segments)
	for i := range pkts {
		p := make([]byte, packet.IPv4MinSize+packet.TCPMinSize+size)
		packet.IPv4(p).Encode(&packet.IPv4Fields{TotalLen: uint16(len(p)), ID: uint16(i), TTL: 64, Protocol: packet.ProtoTCP, Src: peer, Dst: inst.Addr.Addr()})
		seg := packet.TCP(p[packet.IPv4MinSize:])
		seg.Encode(&packet.TCPFields{SrcPort: 40000, DstPort: 5001, Seq: 1 + uint32(i*size), Ack: 1, Flags: packet.TCPFlagACK, Window: 1024})
		seg.SetChecksum(seg.ComputeChecksum(peer, inst.Addr.Addr()))
		pkts[i] = p
	}
	before := rxPackets(t, tn)
	if err := tn.Write(pkts); err != nil {
		t.Fatal(err)
	}
	var got uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got = rxPackets(t, tn) - before; got > 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d segments arrived as %d packets", segments, got)
	if got == 0 || got > 2 {
		t.Errorf("%d segments of one flow arrived as %d packets; want them merged into one or two", segments, got)
	}
}

func rxPackets(t *testing.T, tn *TUN) uint64 {
	t.Helper()
	var n uint64
	err := nsthread.In(tn.netns, func() error {
		l, err := netlink.LinkByName(DeviceName)
		if err != nil {
			return err
		}
		n = l.Attrs().Statistics.RxPackets
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTUNResolvConf: a TUN instance's namespace gets a resolv.conf naming
// the VPC resolver, which `ip netns exec` shows its programs as
// /etc/resolv.conf, and which goes with the namespace.
func TestTUNResolvConf(t *testing.T) {
	needTUN(t)
	b, err := NewTUNBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inst := testInstance()
	inst.Resolver = netip.MustParseAddr("10.0.0.2")
	tn := openTUN(t, b, inst)
	path := filepath.Join(EtcNetnsDir, tn.Namespace(), "resolv.conf")
	if got, err := os.ReadFile(path); err != nil || !strings.Contains(string(got), "nameserver 10.0.0.2\n") {
		t.Fatalf("%s: %q, %v", path, got, err)
	}
	out, err := exec.Command("ip", "netns", "exec", tn.Namespace(), "cat", "/etc/resolv.conf").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nameserver 10.0.0.2\n") {
		t.Fatalf("ip netns exec %s cat /etc/resolv.conf: %q, %v", tn.Namespace(), out, err)
	}
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("%s outlived its namespace: %v", filepath.Dir(path), err)
	}
}
