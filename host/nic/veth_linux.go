package nic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/packet"
)

// VethAvailable reports whether this process can make veth instances:
// it runs as root (namespaces, veth pairs, packet sockets).
func VethAvailable() bool { return os.Geteuid() == 0 }

// VethBackend gives each instance a network namespace named
// NamespaceName(id) holding eth0, one end of a veth pair; the other end
// (VethHostName(id)) stays in the agent's namespace, where the agent reads
// and writes the instance's packets through a packet socket — and where a
// kernel fast path (host/fastpath) can take them instead, since a veth,
// unlike a TUN, is a device the kernel can redirect packets to and from.
//
// The instance never ARPs: eth0 is NOARP and its "broadcast" address is
// VethGatewayMAC, so every frame it sends is addressed to a MAC the host
// end does not have. The host end's kernel then sees the frames as meant
// for another host and never routes or delivers them itself (no IPv4
// forwarding, no local delivery into the agent's namespace); only the
// agent's packet socket, or the fast path in front of it, sees them.
//
// eth0 keeps the veth's offloads (checksum, TSO): the instance's kernel
// hands over TCP super-packets of up to vethGSOMax bytes with checksums
// left to the "NIC". The fast path carries them so, offloaded, to the
// underlay; the packet socket (PACKET_VNET_HDR) tells the agent how each
// one was left, and Read completes the checksums and cuts super-packets
// into segments for the Go story, as a NIC would.
type VethBackend struct {
	ns *Namespaces

	mu   sync.Mutex
	open map[string]*Veth // by namespace name
}

// VethGatewayMAC is the destination MAC of every frame an instance sends
// over its veth: locally administered, owned by no device.
var VethGatewayMAC = net.HardwareAddr{0x02, 0x6f, 0x76, 0x70, 0x63, 0x01}

// NewVethBackend returns a veth backend that records its namespaces in
// stateDir (see Namespaces).
func NewVethBackend(stateDir string) (*VethBackend, error) {
	if !VethAvailable() {
		return nil, errors.New("nic: veth instances need root (network namespaces, veth pairs, packet sockets); run as root or use --nic netstack")
	}
	ns, err := OpenNamespaces(stateDir)
	if err != nil {
		return nil, err
	}
	return &VethBackend{ns: ns, open: map[string]*Veth{}}, nil
}

// Namespaces is the record of the namespaces this backend created.
func (b *VethBackend) Namespaces() *Namespaces { return b.ns }

func (b *VethBackend) String() string { return "veth" }

// VethHostName is the name of the host end of an instance's veth, in the
// agent's namespace: "ovi" and the id's last 12 hex digits (a device name
// has at most 15 characters; ids are random, so 48 bits keep them apart).
func VethHostName(instanceID string) string {
	return "ovi" + instanceID[len(instanceID)-12:]
}

// Open implements Backend: it creates the instance's namespace, or adopts
// the one this agent made before a crash (programs inside keep running and
// see eth0 come back), and a fresh veth pair.
func (b *VethBackend) Open(inst Instance) (NIC, error) {
	if !model.IsID(model.KindInstance, inst.ID) {
		return nil, fmt.Errorf("nic: instance id %q cannot name a namespace: the mapping carries none (is the server older than this agent?)", inst.ID)
	}
	if !inst.Addr.Addr().Is4() || !inst.Gateway.Is4() {
		return nil, fmt.Errorf("nic: instance %s: address %v and gateway %v must be IPv4", inst.ID, inst.Addr, inst.Gateway)
	}
	name := NamespaceName(inst.ID)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.open[name]; ok {
		return nil, fmt.Errorf("nic: instance %s already has a veth NIC", inst.ID)
	}
	if namespaceExists(name) && !b.ns.Owns(name) {
		return nil, fmt.Errorf("nic: namespace %s exists but this agent did not create it (state dir %s): another host agent on this machine runs instance %s, or it was left by an agent whose state dir is gone; remove it with `ip netns delete %s`",
			name, b.ns.Dir(), inst.ID, name)
	}
	if err := b.ns.Claim(name); err != nil {
		return nil, err
	}
	if inst.Resolver.IsValid() {
		if err := writeResolvConf(name, inst.Resolver); err != nil {
			return nil, errors.Join(err, b.ns.Remove(name))
		}
	}
	v, err := newVeth(name, inst)
	if err != nil {
		return nil, errors.Join(err, b.ns.Remove(name))
	}
	v.release = func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.open, name)
		return b.ns.Remove(name) // the veth pair goes with its namespace end
	}
	b.open[name] = v
	return v, nil
}

// Sweep implements Backend.
func (b *VethBackend) Sweep(keep map[string]bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs error
	for _, name := range b.ns.Owned() {
		if _, open := b.open[name]; open || keep[name[len(NamespacePrefix):]] {
			continue
		}
		errs = errors.Join(errs, b.ns.Remove(name))
	}
	return errs
}

// Close implements Backend: namespaces of NICs still open stay recorded,
// for the next agent to adopt.
func (b *VethBackend) Close() error { return b.ns.Close() }

// Veth is an instance NIC that is a veth pair: eth0 in the instance's
// namespace, its peer in the agent's, read and written through a packet
// socket bound to the peer.
type Veth struct {
	inst    Instance
	netns   netns.NsHandle
	release func() error

	hostIndex int              // the host end's ifindex, in the agent's namespace
	hostMAC   net.HardwareAddr // the host end's MAC
	instMAC   net.HardwareAddr // eth0's MAC: what frames to the instance are addressed to

	// rsock reads the instance's packets (AF_PACKET, SOCK_RAW, ETH_P_IP,
	// bound to the host end, PACKET_VNET_HDR: virtio header, Ethernet
	// header, packet); wsock writes IPv4 packets to it (SOCK_DGRAM, no
	// virtio header, bound to no protocol: it receives nothing).
	rsock, wsock *os.File
	rraw, wraw   interface {
		Read(func(uintptr) bool) error
		Write(func(uintptr) bool) error
	}
	to unix.SockaddrLinklayer
	// rd and wr are the state of a Read and a Write, and readFn and
	// writeFn the functions the sockets call with it, bound once: a
	// closure made per call would escape to the heap (the packet path
	// allocates nothing). One goroutine reads; writers take wmu.
	rd struct {
		bufs  [][]byte
		sizes []int
		n     int
		err   error
	}
	readFn func(uintptr) bool
	wmu    sync.Mutex
	wr     struct {
		p   []byte
		err error
	}
	writeFn func(uintptr) bool
	// pend holds a super-packet read when the caller's buffers had no room
	// left for its segments: the next Read starts with it.
	pend    []byte
	pendLen int
	pendHdr vnetHdr
	// ReadDrops counts packets the instance sent that could not be made
	// ready (an offload the data plane does not do: not TCP over IPv4).
	ReadDrops atomic.Uint64

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	// WriteDrops counts packets larger than the MTU, dropped.
	WriteDrops atomic.Uint64
}

var _ NIC = (*Veth)(nil)

// newVeth makes namespace name (or opens it), the veth pair and the packet
// socket.
func newVeth(name string, inst Instance) (*Veth, error) {
	h, err := openNamed(name)
	if err != nil {
		return nil, err
	}
	v := &Veth{inst: inst, netns: h}
	if err := v.create(); err != nil {
		h.Close()
		return nil, fmt.Errorf("nic: instance %s in namespace %s: %w", inst.ID, name, err)
	}
	return v, nil
}

func (v *Veth) create() error {
	hostName := VethHostName(v.inst.ID)
	// An adopted namespace still has its eth0 (and so the host end): the
	// pair is made afresh, as a TUN is, so its state is this agent's.
	err := nsthread.In(v.netns, func() error {
		nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer nl.Close()
		if l, err := nl.LinkByName(DeviceName); err == nil {
			if err := nl.LinkDel(l); err != nil {
				return fmt.Errorf("removing the old %s: %w", DeviceName, err)
			}
		}
		for _, k := range []string{"all", "default"} {
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer nl.Close()
	if l, err := nl.LinkByName(hostName); err == nil {
		_ = nl.LinkDel(l) // a host end whose pair lost its namespace end: cannot be, but costs nothing
	}
	la := netlink.NewLinkAttrs()
	// The host end takes any size: a packet larger than the instance MTU
	// (an instance that raised its own) must reach the Go story, which
	// answers "fragmentation needed" as the VPC router would, rather than
	// be dropped unseen by the veth.
	la.Name, la.MTU = hostName, vethHostMTU
	veth := &netlink.Veth{LinkAttrs: la, PeerName: DeviceName, PeerNamespace: netlink.NsFd(int(v.netns))}
	if err := nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s ↔ %s: %w", hostName, DeviceName, err)
	}
	host, err := nl.LinkByName(hostName)
	if err != nil {
		return err
	}
	v.hostIndex, v.hostMAC = host.Attrs().Index, host.Attrs().HardwareAddr
	// The host end carries no address and no IPv6; its IPv4 forwarding is
	// off, a second guard besides the MAC no frame is addressed to.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+hostName+"/disable_ipv6", []byte("1"), 0)
	_ = os.WriteFile("/proc/sys/net/ipv4/conf/"+hostName+"/forwarding", []byte("0"), 0)
	if err := nl.LinkSetARPOff(host); err != nil {
		return fmt.Errorf("%s noarp: %w", hostName, err)
	}
	if err := nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("%s up: %w", hostName, err)
	}
	err = nsthread.In(v.netns, func() error {
		nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer nl.Close()
		eth, err := nl.LinkByName(DeviceName)
		if err != nil {
			return err
		}
		v.instMAC = eth.Attrs().HardwareAddr
		if err := nl.LinkSetARPOff(eth); err != nil {
			return fmt.Errorf("%s noarp: %w", DeviceName, err)
		}
		if err := setBroadcast(nl, eth, VethGatewayMAC); err != nil {
			return err
		}
		// Room for the outer headers: an encapsulated super-packet must
		// still fit IPv4's 64 KiB.
		if err := nl.LinkSetGSOMaxSize(eth, vethGSOMax); err != nil {
			return fmt.Errorf("%s gso_max_size: %w", DeviceName, err)
		}
		return configure(nl, v.inst)
	})
	if err != nil {
		return err
	}
	return v.openSocket()
}

// setBroadcast sets a link's broadcast address: on a NOARP device, the
// destination of every frame it sends.
// netlink has no call for it, so this is the RTM_NEWLINK request `ip link
// set DEV broadcast MAC` sends, in the calling thread's namespace.
func setBroadcast(_ *netlink.Handle, l netlink.Link, mac net.HardwareAddr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(l.Attrs().Index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_BROADCAST, mac))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("%s broadcast %v: %w", l.Attrs().Name, mac, err)
	}
	return nil
}

// vethGSOMax bounds the instance's TCP super-packets: 64 KiB less room
// for the Geneve encapsulation the fast path adds to them.
const vethGSOMax = 65536 - 512

// vethHostMTU is the host end's MTU: the largest a veth takes.
const vethHostMTU = 65535

// ethHdrLen is the Ethernet header a SOCK_RAW packet socket reads.
const ethHdrLen = 14

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openSocket opens the packet sockets on the host end: SOCK_DGRAM, so the
// agent reads and writes IPv4 packets and the kernel adds and strips the
// Ethernet header.
func (v *Veth) openSocket() error {
	name := VethHostName(v.inst.ID)
	// SOCK_RAW: only it takes PACKET_VNET_HDR; Read skips the Ethernet header.
	rfd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		// What the agent writes goes out on the same device: it must not
		// come back as if the instance had sent it.
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
	} {
		if err := unix.SetsockoptInt(rfd, o.level, o.opt, o.v); err != nil {
			unix.Close(rfd)
			return fmt.Errorf("packet socket on %s: %w", name, err)
		}
	}
	_ = unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(rfd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: v.hostIndex}); err != nil {
		unix.Close(rfd)
		return fmt.Errorf("packet socket on %s: %w", name, err)
	}
	wfd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		unix.Close(rfd)
		return fmt.Errorf("packet socket: %w", err)
	}
	_ = unix.SetsockoptInt(wfd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	v.rsock, v.wsock = os.NewFile(uintptr(rfd), "packet:"+name), os.NewFile(uintptr(wfd), "packet-out:"+name)
	rr, err1 := v.rsock.SyscallConn()
	wr, err2 := v.wsock.SyscallConn()
	if err := errors.Join(err1, err2); err != nil {
		v.rsock.Close()
		v.wsock.Close()
		return err
	}
	v.rraw, v.wraw = rr, wr
	v.to = unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: v.hostIndex, Halen: 6}
	copy(v.to.Addr[:], v.instMAC)
	v.pend = make([]byte, 1<<16+vnetHdrLen)
	v.readFn, v.writeFn = v.readSome, v.writeOne
	return nil
}

// Namespace is the name of the instance's network namespace.
func (v *Veth) Namespace() string { return NamespaceName(v.inst.ID) }

// HostLink is the host end of the veth: its ifindex in the agent's
// namespace and MAC, and the instance's eth0 MAC. A fast path attaches
// there and addresses what it delivers to instMAC.
func (v *Veth) HostLink() (ifindex int, hostMAC, instMAC net.HardwareAddr) {
	return v.hostIndex, v.hostMAC, v.instMAC
}

// vethBatch is how many packets one Read returns at most: room for a
// super-packet's segments (64 KiB of 1400-byte ones) and then some.
const vethBatch = 128

// Read implements datapath.Port: it waits for one packet, then takes what
// else is queued without waiting, while the buffers last. Super-packets
// come out as their segments, checksums complete.
func (v *Veth) Read(bufs [][]byte, sizes []int) (int, error) {
	n := 0
	if v.pendLen > 0 {
		k, err := offloaded(v.pendHdr, v.pend[:v.pendLen], bufs, sizes)
		v.pendLen = 0
		if err != nil {
			v.ReadDrops.Add(1)
		}
		n = k
	}
	v.rd.bufs, v.rd.sizes, v.rd.n, v.rd.err = bufs, sizes, n, nil
	err := v.rraw.Read(v.readFn)
	n, rerr := v.rd.n, v.rd.err
	v.rd.bufs, v.rd.sizes = nil, nil
	if v.closed.Load() {
		return 0, os.ErrClosed
	}
	if err != nil {
		return 0, err
	}
	if n == 0 && rerr != nil {
		return 0, rerr
	}
	return n, nil
}

// Write implements datapath.Port: each packet goes to eth0 as one frame.
func (v *Veth) Write(pkts [][]byte) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	for _, p := range pkts {
		if len(p) > v.inst.MTU {
			v.WriteDrops.Add(1)
			continue
		}
		v.wr.p = p
		err := v.wraw.Write(v.writeFn)
		v.wr.p = nil
		if err != nil {
			return err
		}
		// ENOBUFS and the like lose the packet, as on a wire.
	}
	return nil
}

// readSome reads packets from the socket into v.rd until its buffers are
// full or the socket has none left; false: wait for the socket.
func (v *Veth) readSome(fd uintptr) bool {
	n := v.rd.n
	for n < len(v.rd.bufs) {
		b := v.rd.bufs[n][packet.Headroom-vnetHdrLen-ethHdrLen:]
		m, err := recvTrunc(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err != unix.EAGAIN {
				v.rd.err = err
			}
			break
		}
		if m > len(b) || m <= vnetHdrLen+ethHdrLen {
			v.ReadDrops.Add(1) // larger than any IPv4 packet, or empty: cannot be
			continue
		}
		h, pkt := decodeVnetHdr(b), b[vnetHdrLen+ethHdrLen:m]
		if h.csumStart < ethHdrLen {
			h.flags &^= vnetNeedsCsum // cannot be: nothing to complete in an Ethernet header
		}
		h.csumStart -= ethHdrLen // the kernel counts from the Ethernet header
		if segs := segments(h, pkt); segs > 1 {
			// Segments are written over the buffers the packet is in:
			// split from a copy, now or at the next Read.
			copy(v.pend, pkt)
			if segs > len(v.rd.bufs)-n {
				v.pendHdr, v.pendLen = h, len(pkt)
				break
			}
			pkt = v.pend[:len(pkt)]
		}
		k, err := offloaded(h, pkt, v.rd.bufs[n:], v.rd.sizes[n:])
		if err != nil {
			v.ReadDrops.Add(1)
			continue
		}
		n += k
	}
	v.rd.n = n
	return n > 0 || v.rd.err != nil // false: wait for the socket
}

// writeOne sends v.wr.p; false: wait for room in the socket.
func (v *Veth) writeOne(fd uintptr) bool {
	v.wr.err = unix.Sendto(int(fd), v.wr.p, 0, &v.to)
	return v.wr.err != unix.EAGAIN
}

// recvTrunc is recvfrom(2) with MSG_TRUNC and no sender's address, which
// unix.Recvfrom would allocate: n is the packet's whole length.
func recvTrunc(fd uintptr, b []byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), unix.MSG_TRUNC, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// BatchSize implements datapath.Port.
func (v *Veth) BatchSize() int { return vethBatch }

// Close removes the namespace, and with it the veth pair.
func (v *Veth) Close() error {
	v.closeOnce.Do(func() {
		v.closed.Store(true)
		err := errors.Join(v.rsock.Close(), v.wsock.Close())
		v.netns.Close()
		if v.release != nil {
			err = errors.Join(err, v.release())
		}
		v.closeErr = err
	})
	return v.closeErr
}

// DialContext implements NIC inside the instance's namespace.
func (v *Veth) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(v.netns, ctx, network, addr)
}

// DialPing implements NIC with a raw ICMP socket inside the namespace.
func (v *Veth) DialPing(src, dst netip.Addr) (net.Conn, error) {
	return dialPingIn(v.netns, src, dst)
}
