package underlay

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// MemQueueLen is how many datagrams a MemNet Conn holds unread before it drops more.
const MemQueueLen = 1024

// MemNet is an in-memory underlay for tests of the code above it: Conns from one MemNet
// reach each other by address, with UDP's manners. A write copies the payload into the
// destination's queue, or drops it (counted in MemNetStats) when nobody listens on the
// destination or its queue is full; the sender counts it as sent either way, as UDP does.
// Datagrams of one sender arrive in order. A Conn receives on Port and its datagrams come
// from DefaultSourcePortBase + SrcPort%DefaultSourcePorts, like a UDPConn with NewConfig.
type MemNet struct {
	mu    sync.RWMutex
	conns map[netip.AddrPort]*memConn

	noListener, queueFull atomic.Uint64
}

// MemNetStats counts the datagrams a MemNet dropped, by cause.
type MemNetStats struct {
	NoListener uint64 // nobody listened on the destination
	QueueFull  uint64 // the destination had MemQueueLen datagrams unread
}

// NewMemNet returns an empty in-memory network.
func NewMemNet() *MemNet {
	return &MemNet{conns: make(map[netip.AddrPort]*memConn)}
}

// Stats returns the drops so far.
func (n *MemNet) Stats() MemNetStats {
	return MemNetStats{NoListener: n.noListener.Load(), QueueFull: n.queueFull.Load()}
}

// Listen opens a Conn on addr:Port. It fails, with an error matching syscall.EADDRINUSE
// as a real socket's would, if a Conn of this MemNet is already there.
func (n *MemNet) Listen(addr netip.Addr) (Conn, error) {
	addr = addr.Unmap()
	if !addr.Is4() {
		return nil, fmt.Errorf("underlay: listen on %v: the underlay is IPv4, give an IPv4 address", addr)
	}
	local := netip.AddrPortFrom(addr, Port)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns[local] != nil {
		return nil, fmt.Errorf("underlay: listen %v: %w", local, syscall.EADDRINUSE)
	}
	c := &memConn{net: n, local: local, q: make([]memDatagram, MemQueueLen)}
	c.cond.L = &c.mu
	n.conns[local] = c
	return c, nil
}

// FailReads makes the next count ReadBatch calls of the Conn on addr fail
// with err, as a socket's transient errors (ENOBUFS, an interrupted call)
// would; they are counted in Stats.ReadErrors. It reports whether a Conn
// listens on addr.
func (n *MemNet) FailReads(addr netip.Addr, err error, count int) bool {
	c := n.lookup(netip.AddrPortFrom(addr, Port))
	if c == nil {
		return false
	}
	c.mu.Lock()
	c.failErr, c.failures = err, count
	c.mu.Unlock()
	c.cond.Broadcast()
	return true
}

func (n *MemNet) lookup(ap netip.AddrPort) *memConn {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.conns[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
}

// memConn is one host's end of a MemNet: a ring of datagrams whose buffers are reused, so
// that a steady exchange allocates nothing.
type memConn struct {
	net   *MemNet
	local netip.AddrPort
	stats counters

	mu         sync.Mutex
	cond       sync.Cond // signalled when a datagram arrives or the Conn closes
	q          []memDatagram
	head, size int
	closed     bool
	// failures are how many reads fail with failErr before reads work again.
	failures int
	failErr  error
}

type memDatagram struct {
	buf  []byte
	peer netip.AddrPort
}

var _ Conn = (*memConn)(nil)

func (c *memConn) LocalAddr() netip.Addr { return c.local.Addr() }
func (c *memConn) BatchSize() int        { return DefaultBatchSize }
func (c *memConn) Stats() Stats          { return c.stats.snapshot() }

func (c *memConn) ReadBatch(ds []Datagram) (int, error) {
	for i := range ds {
		if _, ok := readRoom(&ds[i]); !ok {
			return 0, fmt.Errorf("%w: ds[%d] has Off %d outside its %d-byte Buf", ErrBadDatagram, i, ds[i].Off, len(ds[i].Buf))
		}
	}
	if len(ds) == 0 {
		return 0, nil
	}
	var b batchCounts
	n, err := c.read(ds, &b)
	c.stats.addRead(&b)
	return n, err
}

func (c *memConn) read(ds []Datagram, b *batchCounts) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for c.size == 0 && !c.closed && c.failures == 0 {
			c.cond.Wait()
		}
		if c.closed {
			return 0, net.ErrClosed
		}
		if c.failures > 0 {
			c.failures--
			b.errors++
			return 0, fmt.Errorf("underlay: read %v: %w", c.local, c.failErr)
		}
		out := 0
		for out < len(ds) && c.size > 0 {
			m := &c.q[c.head]
			c.head, c.size = (c.head+1)%len(c.q), c.size-1
			d := &ds[out]
			if len(m.buf) > len(d.Buf)-d.Off {
				b.dropped++
				continue
			}
			d.Len, d.Peer = copy(d.Buf[d.Off:], m.buf), m.peer
			b.datagrams++
			b.bytes += uint64(d.Len)
			out++
		}
		if c.size == 0 {
			c.head = 0 // a reader that keeps up reuses the first buffers, already grown
		}
		b.calls++
		if out > 0 {
			return out, nil
		}
	}
}

func (c *memConn) WriteBatch(ds []Datagram) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	var b batchCounts
	n, err := c.write(ds, &b)
	c.stats.addWrite(&b)
	return n, err
}

func (c *memConn) write(ds []Datagram, b *batchCounts) (int, error) {
	var first error
	for i := range ds {
		d := &ds[i]
		if _, ok := writePeer(d); !ok {
			b.errors++
			if first == nil {
				first = fmt.Errorf("%w: ds[%d] to %v with Off %d and Len %d in a %d-byte Buf",
					ErrBadDatagram, i, d.Peer, d.Off, d.Len, len(d.Buf))
			}
			continue
		}
		src := netip.AddrPortFrom(c.local.Addr(), DefaultSourcePortBase+d.SrcPort%DefaultSourcePorts)
		c.net.deliver(d.Peer, src, d.Payload())
		b.datagrams++
		b.bytes += uint64(d.Len)
	}
	b.calls++
	return int(b.datagrams), first
}

// deliver copies p into the queue of the Conn at dst, or counts why it cannot.
func (n *MemNet) deliver(dst, src netip.AddrPort, p []byte) {
	to := n.lookup(dst)
	if to == nil {
		n.noListener.Add(1)
		return
	}
	to.mu.Lock()
	defer to.mu.Unlock()
	switch {
	case to.closed:
		n.noListener.Add(1)
	case to.size == len(to.q):
		n.queueFull.Add(1)
	default:
		m := &to.q[(to.head+to.size)%len(to.q)]
		m.buf, m.peer = append(m.buf[:0], p...), src
		to.size++
		to.cond.Broadcast()
	}
}

func (c *memConn) Close() error {
	c.net.mu.Lock()
	if c.net.conns[c.local] == c {
		delete(c.net.conns, c.local)
	}
	c.net.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("underlay: close %v: %w", c.local, net.ErrClosed)
	}
	c.closed = true
	c.cond.Broadcast()
	return nil
}
