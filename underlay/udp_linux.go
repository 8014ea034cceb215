package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// UDPConn is a Conn over real UDP sockets: one bound to addr:Port that receives, and
// Config.SourcePorts sender sockets bound to addr and the ports of the source port pool.
//
// It calls recvmmsg and sendmmsg itself, through syscall.RawConn, on message arrays it
// allocated once, with callbacks bound once. golang.org/x/net/ipv4's PacketConn.ReadBatch
// would allocate two objects per datagram (a *net.UDPAddr and its IP: measured, 16 per
// batch of 8) and offers no UDP_SEGMENT or UDP_GRO.
type UDPConn struct {
	cfg    Config
	local  netip.AddrPort
	rconn  *net.UDPConn   // receives on Port
	sconns []*net.UDPConn // the source port pool
	ports  []uint16       // ports[k] is sconns[k]'s port
	r      *reader
	w      *writer
	// spare holds clones of w for writers that find w busy: instance
	// ports write concurrently, and none should wait for another's send.
	spare  sync.Pool
	closed atomic.Bool
	stats  counters
}

var _ Conn = (*UDPConn)(nil)

// Listen opens a host's underlay sockets on addr, an IPv4 address of this host. The receive
// socket takes UDP GRO and the sender sockets UDP GSO when cfg.Offload is set and the kernel
// has them; without them everything works the same, one datagram per segment.
func Listen(addr netip.Addr, cfg Config) (*UDPConn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addr = addr.Unmap()
	if !addr.Is4() {
		return nil, fmt.Errorf("underlay: listen on %v: the underlay is IPv4, give an IPv4 address of this host", addr)
	}
	c := &UDPConn{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			c.closeSockets()
		}
	}()
	rc, err := listenUDP(netip.AddrPortFrom(addr, cfg.Port), cfg.SocketBuffer, true)
	if err != nil {
		return nil, err
	}
	c.rconn = rc
	c.local = rc.LocalAddr().(*net.UDPAddr).AddrPort()
	c.local = netip.AddrPortFrom(c.local.Addr().Unmap(), c.local.Port())
	if err := c.listenPool(addr); err != nil {
		return nil, err
	}
	gro := cfg.Offload && setGRO(rc)
	gso := cfg.Offload && hasGSO(c.sconns[0])
	if c.r, err = newReader(rc, cfg.BatchSize, gro); err != nil {
		return nil, err
	}
	if c.w, err = newWriter(c.sconns, cfg.BatchSize, gso); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// listenPool binds the sender sockets to the first free ports at or above SourcePortBase.
func (c *UDPConn) listenPool(addr netip.Addr) error {
	next := int(c.cfg.SourcePortBase)
	for len(c.sconns) < c.cfg.SourcePorts {
		if c.cfg.SourcePortBase != 0 && next > 65535 {
			return fmt.Errorf("underlay: only %d of %d source ports free at or above %d on %v",
				len(c.sconns), c.cfg.SourcePorts, c.cfg.SourcePortBase, addr)
		}
		sc, err := listenUDP(netip.AddrPortFrom(addr, uint16(next)), c.cfg.SocketBuffer, false)
		if errors.Is(err, syscall.EADDRINUSE) && c.cfg.SourcePortBase != 0 {
			next++
			continue
		}
		if err != nil {
			return err
		}
		port := uint16(sc.LocalAddr().(*net.UDPAddr).Port)
		c.sconns, c.ports = append(c.sconns, sc), append(c.ports, port)
		if c.cfg.SourcePortBase != 0 {
			next = int(port) + 1
		}
	}
	return nil
}

// listenUDP binds one socket. A receive socket gets the large receive buffer; a sender
// socket gets the large send buffer and the smallest receive buffer, since nothing reads
// what arrives on it.
func listenUDP(ap netip.AddrPort, bufSize int, receive bool) (*net.UDPConn, error) {
	uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("underlay: listen %v: %w", ap, err)
	}
	if bufSize > 0 {
		if receive {
			err = uc.SetReadBuffer(bufSize)
		} else {
			err = errors.Join(uc.SetWriteBuffer(bufSize), uc.SetReadBuffer(1))
		}
		if err != nil {
			uc.Close()
			return nil, fmt.Errorf("underlay: socket buffers of %v: %w", ap, err)
		}
	}
	return uc, nil
}

// setGRO asks the kernel to hand the socket coalesced datagrams, and reports whether it will.
func setGRO(uc *net.UDPConn) bool {
	return sockopt(uc, func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1) })
}

// hasGSO reports whether the kernel knows UDP_SEGMENT.
func hasGSO(uc *net.UDPConn) bool {
	return sockopt(uc, func(fd int) error {
		_, err := unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT)
		return err
	})
}

func sockopt(uc *net.UDPConn, f func(fd int) error) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return false
	}
	return ferr == nil
}

// ReadBatch implements Conn.
func (c *UDPConn) ReadBatch(ds []Datagram) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	var b batchCounts
	n, err := c.r.readBatch(ds, &b)
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, ErrBadDatagram) {
		b.errors++
	}
	c.stats.addRead(&b)
	return n, err
}

// WriteBatch implements Conn.
func (c *UDPConn) WriteBatch(ds []Datagram) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	var b batchCounts
	w := c.w
	if !w.mu.TryLock() {
		w = c.spareWriter()
		w.mu.Lock()
	}
	n, err := w.writeBatchLocked(ds, &b)
	w.mu.Unlock()
	if w != c.w {
		c.spare.Put(w)
	}
	c.stats.addWrite(&b)
	return n, err
}

func (c *UDPConn) spareWriter() *writer {
	if w, ok := c.spare.Get().(*writer); ok {
		return w
	}
	return c.w.clone()
}

// LocalAddr implements Conn.
func (c *UDPConn) LocalAddr() netip.Addr { return c.local.Addr() }

// LocalAddrPort is the address and port datagrams are received on.
func (c *UDPConn) LocalAddrPort() netip.AddrPort { return c.local }

// SourcePort is the port a datagram with the given SrcPort leaves from (see
// Config.SourcePorts): what the receiver and the underlay's routers see.
func (c *UDPConn) SourcePort(srcPort uint16) uint16 {
	return c.ports[int(srcPort)%len(c.ports)]
}

// SourcePorts returns the ports of the source port pool, in socket order.
func (c *UDPConn) SourcePorts() []uint16 { return append([]uint16(nil), c.ports...) }

// Offload reports whether UDP GSO (writes) and GRO (reads) are in use.
func (c *UDPConn) Offload() (gso, gro bool) { return c.w.gsoOn(), c.r.gro }

// BatchSize implements Conn.
func (c *UDPConn) BatchSize() int { return c.cfg.BatchSize }

// Stats implements Conn.
func (c *UDPConn) Stats() Stats { return c.stats.snapshot() }

// Close closes every socket, which unblocks ReadBatch and WriteBatch.
func (c *UDPConn) Close() error {
	if c.closed.Swap(true) {
		return fmt.Errorf("underlay: close %v: %w", c.local, net.ErrClosed)
	}
	return c.closeSockets()
}

func (c *UDPConn) closeSockets() error {
	var errs []error
	if c.rconn != nil {
		errs = append(errs, c.rconn.Close())
	}
	for _, sc := range c.sconns {
		errs = append(errs, sc.Close())
	}
	return errors.Join(errs...)
}
