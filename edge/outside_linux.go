package edge

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/openvpc/openvpc/packet"
)

// TUNOutside is an edge's outside port on a real machine: a TUN device in
// the edge's network namespace. The kernel routes the Elastic IP pools into
// it (`ip route add POOL dev NAME`) and forwards what comes out of it
// toward the internet, as it would any router's traffic; the offloads of
// the wireguard-go tun package carry large segments in one read.
type TUNOutside struct {
	dev tun.Device
	mtu int

	wmu   sync.Mutex
	wbufs [][]byte // packets copied behind room for the virtio-net header
	wout  [][]byte
}

// writeOffset is the room the device wants in front of a written packet
// (its virtio-net header), rounded up.
const writeOffset = 16

// maxMerged is the largest packet the device's merging makes: an IPv4
// packet's largest total length.
const maxMerged = 65535

// OpenTUNOutside creates TUN device name with the given MTU and brings it up.
func OpenTUNOutside(name string, mtu int) (*TUNOutside, error) {
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("edge: outside TUN %q: %w (run as root, with /dev/net/tun)", name, err)
	}
	if err := linkUp(name); err != nil {
		dev.Close()
		return nil, fmt.Errorf("edge: bring %s up: %w", name, err)
	}
	t := &TUNOutside{dev: dev, mtu: mtu, wbufs: make([][]byte, dev.BatchSize()), wout: make([][]byte, dev.BatchSize())}
	for i := range t.wbufs {
		// Room to grow: the device merges a flow's consecutive TCP
		// segments of one Write into the first one's buffer (GRO), and
		// without the capacity it writes every segment on its own — a
		// system call and a trip through the kernel's stack per packet.
		// Memory is touched only as far as merges reach.
		t.wbufs[i] = make([]byte, writeOffset+mtu, writeOffset+maxMerged)
	}
	return t, nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// Read implements the data plane's Port.
func (t *TUNOutside) Read(bufs [][]byte, sizes []int) (int, error) {
	return t.dev.Read(bufs, sizes, packet.Headroom)
}

// Write implements the data plane's Port. The packets are copied behind
// room for the device's virtio-net header: the caller's buffers are
// borrowed, and the kernel may merge consecutive segments of a flow.
func (t *TUNOutside) Write(pkts [][]byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	var errs error
	for len(pkts) > 0 {
		k := 0
		for _, p := range pkts[:min(len(pkts), len(t.wbufs))] {
			if len(p) <= t.mtu {
				t.wout[k] = t.wbufs[k][:writeOffset+copy(t.wbufs[k][writeOffset:], p)]
				k++
			}
		}
		pkts = pkts[min(len(pkts), len(t.wbufs)):]
		if k > 0 {
			if _, err := t.dev.Write(t.wout[:k], writeOffset); err != nil {
				errs = err
			}
		}
	}
	return errs
}

// BatchSize implements the data plane's Port.
func (t *TUNOutside) BatchSize() int { return t.dev.BatchSize() }

// Close removes the device.
func (t *TUNOutside) Close() error { return t.dev.Close() }
