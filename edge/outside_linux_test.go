package edge

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/packet"
)

// TestTUNOutsideMerges: consecutive segments of one TCP flow in one Write
// reach the kernel as one packet (the device's GRO), not one system call
// and one trip through the stack each. The device lives in a network
// namespace the test makes; a packet socket on it sees what the kernel
// received.
func TestTUNOutsideMerges(t *testing.T) {
	if _, err := os.Stat("/dev/net/tun"); os.Geteuid() != 0 || err != nil {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but this test needs root and /dev/net/tun")
		}
		t.Skip("needs root and /dev/net/tun")
	}
	var (
		ns   netns.NsHandle
		out  *TUNOutside
		sock int
	)
	if err := nsthread.Run(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		var err error
		if ns, err = netns.Get(); err != nil {
			return err
		}
		if out, err = OpenTUNOutside("ovt0", 1500); err != nil {
			return err
		}
		// Received packets are GSO packets before anything segments
		// them: a packet socket sees a merge as one.
		if sock, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("ovt0")
		if err != nil {
			return err
		}
		return unix.Bind(sock, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer out.Close()
	defer unix.Close(sock)
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		t.Fatal(err)
	}

	const n, payload = 8, 1000
	if err := out.Write(tcpSegments(n, payload)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	got := 0
	buf := make([]byte, 1<<17)
	for deadline := time.Now().Add(3 * time.Second); got < n*payload && time.Now().Before(deadline); {
		m, from, err := unix.Recvfrom(sock, buf, unix.MSG_TRUNC)
		if err != nil {
			continue // the timeout: look again until the deadline
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING || m < packet.IPv4MinSize+packet.TCPMinSize || buf[9] != packet.ProtoTCP {
			continue // the device's own IPv6 chatter, say
		}
		sizes = append(sizes, m)
		got += m - packet.IPv4MinSize - packet.TCPMinSize
	}
	if got != n*payload {
		t.Fatalf("the kernel received %d payload bytes in packets %v, want %d", got, sizes, n*payload)
	}
	if len(sizes) != 1 {
		t.Fatalf("%d segments written in one Write reached the kernel as %d packets %v: the device did not merge them", n, len(sizes), sizes)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// tcpSegments are n consecutive segments of one flow, each with payload
// bytes, valid checksums, ACK only.
func tcpSegments(n, payload int) [][]byte {
	src, dst := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.1")
	var segs [][]byte
	for i := range n {
		total := packet.IPv4MinSize + packet.TCPMinSize + payload
		b := make([]byte, total)
		packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(total), ID: uint16(100 + i), TTL: 64, Flags: packet.IPv4FlagDF, Protocol: packet.ProtoTCP, Src: src, Dst: dst})
		tcp := b[packet.IPv4MinSize:]
		binary.BigEndian.PutUint16(tcp[0:], 40000)
		binary.BigEndian.PutUint16(tcp[2:], 5201)
		binary.BigEndian.PutUint32(tcp[4:], uint32(1000+i*payload)) // seq
		binary.BigEndian.PutUint32(tcp[8:], 1)                      // ack
		tcp[12] = 5 << 4                                            // data offset
		tcp[13] = 0x10                                              // ACK
		binary.BigEndian.PutUint16(tcp[14:], 65535)
		for j := range payload {
			tcp[packet.TCPMinSize+j] = byte(i + j)
		}
		sum := packet.PseudoHeaderChecksum(packet.ProtoTCP, src.As4(), dst.As4(), uint16(len(tcp)))
		binary.BigEndian.PutUint16(tcp[16:], ^packet.Checksum(tcp, sum))
		segs = append(segs, b)
	}
	return segs
}
