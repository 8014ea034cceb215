package underlay

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groSlot is the size of one receive buffer with GRO on: a coalesced datagram can be as
// large as an IPv4 packet.
const groSlot = 1 << 16

// groCtrl is the room for the one control message we ask for, UDP_GRO's segment size.
var groCtrl = unix.CmsgSpace(4)

// reader is a UDPConn's receive side: the message arrays recvmmsg fills, allocated once.
//
// Without GRO the kernel writes each datagram straight into a caller's buffer. With GRO one
// message can hold many datagrams (segments of one size, the last one shorter), and can be
// up to 64 KiB, more than a caller's buffer may hold, so messages land in the reader's own
// slots and are copied out segment by segment; segments that do not fit in the caller's
// batch wait in pending for the next ReadBatch.
type reader struct {
	mu    sync.Mutex
	rc    syscall.RawConn
	gro   bool
	hs    []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4

	// With GRO only.
	slab    []byte    // len(hs) slots of groSlot bytes
	ctrl    []byte    // len(hs) control buffers of groCtrl bytes
	pending []message // messages received and not yet all delivered
	next    int       // the first message of pending with segments left

	// The last recvmmsg: its argument and its result; recvFn is r.recv, bound once so that
	// passing it to RawConn.Read does not allocate.
	vlen   int
	n      int
	errno  syscall.Errno
	recvFn func(fd uintptr) bool
}

// message is a received GRO message in its slot: segments of seg bytes from off to end.
type message struct {
	slot, off, end, seg int
	left                int // segments not yet delivered (1 for an empty datagram)
	coalesced           bool
	peer                netip.AddrPort
}

func newReader(uc *net.UDPConn, batch int, gro bool) (*reader, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("underlay: %w", err)
	}
	r := &reader{
		rc:    rc,
		gro:   gro,
		hs:    make([]unix.Mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrInet4, batch),
	}
	r.recvFn = r.recv
	for i := range r.hs {
		h := &r.hs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	if gro {
		r.slab = make([]byte, batch*groSlot)
		r.ctrl = make([]byte, batch*groCtrl)
		r.pending = make([]message, 0, batch)
		for i := range r.hs {
			r.iovs[i].Base = &r.slab[i*groSlot]
			r.iovs[i].SetLen(groSlot)
			r.hs[i].Hdr.Control = &r.ctrl[i*groCtrl]
		}
	}
	return r, nil
}

func (r *reader) readBatch(ds []Datagram, b *batchCounts) (int, error) {
	for i := range ds {
		if _, ok := readRoom(&ds[i]); !ok {
			return 0, fmt.Errorf("%w: ds[%d] has Off %d outside its %d-byte Buf", ErrBadDatagram, i, ds[i].Off, len(ds[i].Buf))
		}
	}
	if len(ds) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.gro {
			if n := r.deliver(ds, b); n > 0 {
				return n, nil
			}
			r.vlen = len(r.hs)
		} else {
			r.vlen = r.aim(ds)
		}
		if err := r.rc.Read(r.recvFn); err != nil {
			r.forget()
			return 0, err
		}
		if r.errno != 0 {
			r.forget()
			return 0, os.NewSyscallError("recvmmsg", r.errno)
		}
		b.calls++
		if r.gro {
			r.queue()
			continue
		}
		n := r.collect(ds, b)
		r.forget()
		if n > 0 {
			return n, nil
		}
	}
}

// recv is the RawConn.Read callback: it returns false to wait until the socket is readable.
func (r *reader) recv(fd uintptr) bool {
	for {
		n, _, e := syscall.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(r.vlen), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// aim points the first messages at the callers' buffers and returns how many.
func (r *reader) aim(ds []Datagram) int {
	m := min(len(ds), len(r.hs))
	for i := range m {
		d := &ds[i]
		r.iovs[i].Base = &d.Buf[d.Off]
		r.iovs[i].SetLen(len(d.Buf) - d.Off)
		r.hs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		r.hs[i].Hdr.Flags = 0
	}
	return m
}

// forget drops the pointers to the callers' buffers, which the reader must not keep.
func (r *reader) forget() {
	if r.gro {
		return
	}
	for i := range r.vlen {
		r.iovs[i].Base = nil
	}
}

// collect finishes a read straight into ds: it fills in Len and Peer, and drops datagrams
// the kernel truncated by moving the entries after them forward.
func (r *reader) collect(ds []Datagram, b *batchCounts) int {
	out := 0
	for i := range r.n {
		h := &r.hs[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			b.dropped++
			continue
		}
		if out != i {
			ds[out], ds[i] = ds[i], ds[out]
		}
		d := &ds[out]
		d.Len = int(h.Len)
		d.Peer = sockaddrAddrPort(&r.names[i])
		b.datagrams++
		b.bytes += uint64(d.Len)
		out++
	}
	return out
}

// queue turns the messages of the last recvmmsg into pending ones.
func (r *reader) queue() {
	r.pending, r.next = r.pending[:0], 0
	for i := range r.n {
		h := &r.hs[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			continue // cannot happen with 64 KiB slots; count nothing we cannot split
		}
		m := message{slot: i, end: int(h.Len), peer: sockaddrAddrPort(&r.names[i])}
		m.seg = groSegment(r.ctrl[i*groCtrl : i*groCtrl+int(h.Hdr.Controllen)])
		if m.seg <= 0 || m.seg >= m.end {
			m.seg = m.end
		}
		m.left = 1
		if m.end > 0 {
			m.left = (m.end + m.seg - 1) / m.seg
		}
		m.coalesced = m.left > 1
		r.pending = append(r.pending, m)
	}
}

// deliver copies pending segments into ds and returns how many it filled. Before the next
// recvmmsg it resets the slots' buffer lengths and control lengths, which the kernel
// overwrote.
func (r *reader) deliver(ds []Datagram, b *batchCounts) int {
	out := 0
	for out < len(ds) && r.next < len(r.pending) {
		m := &r.pending[r.next]
		if m.left == 0 {
			r.next++
			continue
		}
		l := min(m.seg, m.end-m.off)
		seg := r.slab[m.slot*groSlot+m.off : m.slot*groSlot+m.off+l]
		m.off += l
		m.left--
		d := &ds[out]
		if len(d.Buf)-d.Off < l {
			b.dropped++
			continue
		}
		d.Len = copy(d.Buf[d.Off:], seg)
		d.Peer = m.peer
		b.datagrams++
		b.bytes += uint64(l)
		if m.coalesced {
			b.offloaded++
		}
		out++
	}
	if r.next == len(r.pending) {
		for i := range r.hs {
			r.hs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
			r.hs[i].Hdr.SetControllen(groCtrl)
			r.hs[i].Hdr.Flags = 0
		}
	}
	return out
}

// groSegment returns the segment size in a UDP_GRO control message, or 0 if there is none.
func groSegment(ctrl []byte) int {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(ctrl) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])))
		}
		ctrl = ctrl[min(len(ctrl), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return 0
}

// sockaddrAddrPort converts a received IPv4 address; its port is in network byte order.
func sockaddrAddrPort(sa *unix.RawSockaddrInet4) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
}

// setSockaddr writes an IPv4 destination for sendmmsg.
func setSockaddr(sa *unix.RawSockaddrInet4, addr [4]byte, port uint16) {
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	sa.Addr = addr
}
