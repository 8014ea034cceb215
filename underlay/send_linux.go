package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxSegments bounds the datagrams in one GSO send: the kernel's UDP_MAX_SEGMENTS, which is
// 64 on older kernels (128 since 6.9).
const maxSegments = 64

// gsoCtrl is the room for the one control message we send, UDP_SEGMENT's segment size.
var gsoCtrl = unix.CmsgSpace(2)

// writer is a UDPConn's send side: the message arrays sendmmsg reads, allocated once.
//
// A chunk of at most BatchSize datagrams is sorted by sender socket (a stable counting
// sort, so a flow keeps its order), then each socket's datagrams go out in one sendmmsg
// loop. With GSO, consecutive datagrams of one socket to one peer with one length (the last
// may be shorter) go as one message whose iovecs point at each caller's payload: the kernel
// cuts it back into datagrams at the segment size, and nothing is copied.
type writer struct {
	mu    sync.Mutex
	socks []syscall.RawConn
	gso   *atomic.Bool // shared by a conn's writers; cleared for good when the kernel refuses GSO with EIO
	hs    []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ctrl  []byte // len(hs) control buffers of gsoCtrl bytes, headers filled in once
	msgs  []msgInfo

	// The chunk being sent: peers[i] is ds[i]'s checked destination; order lists the good
	// datagrams' indices by socket, socket k's at order[bounds[k]:bounds[k+1]].
	peers  [][4]byte
	sock   []int16 // ds[i]'s sender socket, -1 for a bad datagram
	order  []int32
	bounds []int
	fill   []int

	// The sendmmsg loop over hs[:vlen]: sendFn is w.send, bound once so that passing it to
	// RawConn.Write does not allocate. It stops at a failed message and reports it in failed
	// and errno; done counts messages finished.
	vlen, niov int
	done       int
	failed     int
	errno      syscall.Errno
	calls      uint64
	sendFn     func(fd uintptr) bool

	// sendmmsg is the system call; tests put failures in front of it.
	sendmmsg func(fd uintptr, hs []unix.Mmsghdr) (int, syscall.Errno)
}

// msgInfo is what one message carries: datagrams items[first:first+count] of the socket.
type msgInfo struct {
	first, count, bytes int
}

func newWriter(conns []*net.UDPConn, batch int, gso bool) (*writer, error) {
	w := &writer{
		hs:     make([]unix.Mmsghdr, batch),
		iovs:   make([]unix.Iovec, batch),
		names:  make([]unix.RawSockaddrInet4, batch),
		ctrl:   make([]byte, batch*gsoCtrl),
		msgs:   make([]msgInfo, batch),
		peers:  make([][4]byte, batch),
		sock:   make([]int16, batch),
		order:  make([]int32, batch),
		bounds: make([]int, len(conns)+1),
		fill:   make([]int, len(conns)),
	}
	w.sendFn, w.sendmmsg = w.send, sendmmsg
	w.gso = new(atomic.Bool)
	w.gso.Store(gso)
	for _, uc := range conns {
		rc, err := uc.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("underlay: %w", err)
		}
		w.socks = append(w.socks, rc)
	}
	w.initCtrl()
	return w, nil
}

// initCtrl fills in the UDP_SEGMENT control message headers once.
func (w *writer) initCtrl() {
	for i := range w.hs {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&w.ctrl[i*gsoCtrl]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
	}
}

func (w *writer) gsoOn() bool { return w.gso.Load() }

// clone is another writer over the same sockets, GSO state and system
// call, with buffers of its own: concurrent senders each use one, so no
// sender waits for another.
func (w *writer) clone() *writer {
	c := &writer{
		socks: w.socks, gso: w.gso, sendmmsg: w.sendmmsg,
		hs: make([]unix.Mmsghdr, len(w.hs)), iovs: make([]unix.Iovec, len(w.iovs)),
		names: make([]unix.RawSockaddrInet4, len(w.names)), ctrl: make([]byte, len(w.ctrl)),
		msgs: make([]msgInfo, len(w.msgs)), peers: make([][4]byte, len(w.peers)), sock: make([]int16, len(w.sock)),
		order: make([]int32, len(w.order)), bounds: make([]int, len(w.bounds)), fill: make([]int, len(w.fill)),
	}
	c.sendFn = c.send
	c.initCtrl()
	return c
}

// writeBatchLocked sends ds; the caller holds w.mu.
func (w *writer) writeBatchLocked(ds []Datagram, b *batchCounts) (int, error) {
	var first error
	for base := 0; base < len(ds); base += len(w.hs) {
		err := w.writeChunk(ds[base:min(len(ds), base+len(w.hs))], base, b)
		if first == nil {
			first = err
		}
		if errors.Is(err, net.ErrClosed) {
			break
		}
	}
	return int(b.datagrams), first
}

// writeChunk sends at most len(w.hs) datagrams, the caller's from index base on.
func (w *writer) writeChunk(ds []Datagram, base int, b *batchCounts) error {
	first := w.sortBySocket(ds, base, b)
	for k := range w.socks {
		items := w.order[w.bounds[k]:w.bounds[k+1]]
		gso := w.gso.Load()
		for len(items) > 0 {
			w.build(ds, items, gso)
			err := w.flush(k, b)
			w.forget()
			if err != nil {
				return err // closed: the other sockets are too
			}
			if w.failed < 0 {
				break
			}
			// A message failed. A GSO message is sent again one datagram at a time, so that
			// an error that was not about GSO is found on the datagram it concerns.
			m := w.msgs[w.failed]
			if m.count > 1 {
				if w.errno == syscall.EIO {
					w.gso.Store(false) // the kernel or NIC cannot segment UDP
				}
				items, gso = items[m.first:], false
				continue
			}
			b.errors++
			if first == nil {
				first = sendError(ds[items[m.first]].Peer, w.errno)
			}
			items = items[m.first+1:]
		}
	}
	return first
}

// sortBySocket checks every datagram and fills order and bounds with the good ones' indices
// by sender socket; it counts the bad ones and returns an error for the first.
func (w *writer) sortBySocket(ds []Datagram, base int, b *batchCounts) error {
	var first error
	clear(w.bounds)
	for i := range ds {
		addr, ok := writePeer(&ds[i])
		if !ok {
			w.sock[i] = -1
			b.errors++
			if first == nil {
				first = fmt.Errorf("%w: ds[%d] to %v with Off %d and Len %d in a %d-byte Buf",
					ErrBadDatagram, base+i, ds[i].Peer, ds[i].Off, ds[i].Len, len(ds[i].Buf))
			}
			continue
		}
		k := int(ds[i].SrcPort) % len(w.socks)
		w.peers[i], w.sock[i] = addr, int16(k)
		w.bounds[k+1]++
	}
	for k := range w.socks {
		w.bounds[k+1] += w.bounds[k]
		w.fill[k] = w.bounds[k]
	}
	for i := range ds {
		if k := w.sock[i]; k >= 0 {
			w.order[w.fill[k]] = int32(i)
			w.fill[k]++
		}
	}
	return first
}

// build fills the messages for one socket's datagrams, ds[items[j]] in order.
func (w *writer) build(ds []Datagram, items []int32, gso bool) {
	m, iov := 0, 0
	for j := 0; j < len(items); {
		d := &ds[items[j]]
		count, bytes := 1, d.Len
		if gso && d.Len > 0 {
			for j+count < len(items) && count < maxSegments {
				e := &ds[items[j+count]]
				if e.Peer != d.Peer || e.Len == 0 || e.Len > d.Len || bytes+e.Len > MaxPayload {
					break
				}
				count++
				bytes += e.Len
				if e.Len < d.Len {
					break // only the last segment may be shorter
				}
			}
		}
		for c := range count {
			e := &ds[items[j+c]]
			if e.Len > 0 {
				w.iovs[iov+c].Base = &e.Buf[e.Off]
			}
			w.iovs[iov+c].SetLen(e.Len)
		}
		h := &w.hs[m].Hdr
		setSockaddr(&w.names[m], w.peers[items[j]], d.Peer.Port())
		h.Name = (*byte)(unsafe.Pointer(&w.names[m]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &w.iovs[iov]
		h.SetIovlen(count)
		h.Control = nil
		h.SetControllen(0)
		if count > 1 {
			c := w.ctrl[m*gsoCtrl:]
			*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(d.Len)
			h.Control = &c[0]
			h.SetControllen(gsoCtrl)
		}
		w.msgs[m] = msgInfo{first: j, count: count, bytes: bytes}
		m++
		iov += count
		j += count
	}
	w.vlen, w.niov = m, iov
}

// flush sends hs[:vlen] from socket k, stopping at the first message that fails.
func (w *writer) flush(k int, b *batchCounts) error {
	w.done, w.failed, w.errno, w.calls = 0, -1, 0, 0
	err := w.socks[k].Write(w.sendFn)
	b.calls += w.calls
	for _, m := range w.msgs[:w.done] {
		b.datagrams += uint64(m.count)
		b.bytes += uint64(m.bytes)
		if m.count > 1 {
			b.offloaded += uint64(m.count)
		}
	}
	return err
}

// send is the RawConn.Write callback: it returns false to wait until the socket is writable.
func (w *writer) send(fd uintptr) bool {
	for w.done < w.vlen {
		n, e := w.sendmmsg(fd, w.hs[w.done:w.vlen])
		switch e {
		case 0:
			w.calls++
			w.done += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.calls++
			w.failed, w.errno = w.done, e
			return true
		}
	}
	return true
}

func sendmmsg(fd uintptr, hs []unix.Mmsghdr) (int, syscall.Errno) {
	n, _, e := syscall.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), 0, 0, 0)
	return int(n), e
}

// forget drops the pointers to the callers' buffers, which the writer must not keep.
func (w *writer) forget() {
	for i := range w.niov {
		w.iovs[i].Base = nil
	}
}

func sendError(peer netip.AddrPort, e syscall.Errno) error {
	return fmt.Errorf("underlay: send to %v: %w", peer, os.NewSyscallError("sendmmsg", e))
}
