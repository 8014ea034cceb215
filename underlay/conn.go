// Package underlay carries one host's Geneve datagrams to and from other hosts over UDP 6081,
// in batches and with no allocation per datagram; MemNet fakes that network in memory for tests.
package underlay

import (
	"errors"
	"net/netip"
	"sync/atomic"
)

// Port is the UDP port Geneve is received on (RFC 8926).
const Port = 6081

// MaxPayload is the largest UDP payload over IPv4: 65535 minus the IPv4 and UDP headers.
const MaxPayload = 65535 - 20 - 8

// ErrBadDatagram reports a Datagram that cannot be sent or read into: Off or Len outside Buf,
// a payload longer than MaxPayload, or a Peer that is not an IPv4 address with a port.
var ErrBadDatagram = errors.New("underlay: bad datagram")

// Datagram is one UDP payload (Geneve header onward) in a caller's buffer.
type Datagram struct {
	// Buf is the caller's buffer; the payload is Buf[Off:Off+Len].
	Buf []byte
	// Off is where the payload starts: the caller reserves headroom in front of it so that
	// headers can be written in place. ReadBatch leaves it alone.
	Off int
	// Len is the payload's length: set by ReadBatch, given to WriteBatch.
	Len int
	// Peer is the sender after ReadBatch and the destination for WriteBatch (normally the
	// other host's address and Port).
	Peer netip.AddrPort
	// SrcPort is the flow's outer source port for WriteBatch (packet.SourcePort of the flow
	// hash); it selects the sender socket, see Config.SourcePorts. 0 means any.
	SrcPort uint16
}

// Payload returns d.Buf[d.Off : d.Off+d.Len].
func (d *Datagram) Payload() []byte { return d.Buf[d.Off : d.Off+d.Len] }

// Conn sends and receives one host's Geneve datagrams in batches.
//
// ReadBatch blocks until at least one datagram has arrived, then stores up to len(ds) of
// them and returns how many, n ≥ 1. Datagram i's payload is written at ds[i].Buf[ds[i].Off:];
// ReadBatch sets ds[i].Len and ds[i].Peer (the sender) and leaves Off alone. A datagram
// longer than the room in its entry (len(Buf)-Off) is dropped and counted in
// Stats.ReadDropped, never delivered cut short: to drop it, ReadBatch may swap entries of ds,
// so after a call an entry may hold another entry's buffer (the set of buffers in ds is
// unchanged). Every entry given needs Off < len(Buf); an entry with less room than
// MaxPayload risks such drops. A batch of len(ds) = BatchSize() makes the most of each
// system call.
//
// WriteBatch sends ds[i].Buf[ds[i].Off:ds[i].Off+ds[i].Len] to ds[i].Peer for every i, in
// order for datagrams of the same SrcPort (one flow); datagrams of different SrcPorts may
// leave in another order. It tries every datagram: one that fails (ErrBadDatagram, or an
// error from the kernel) is counted in Stats.WriteErrors and skipped, and the rest still
// go. It returns how many were sent and the first error. Like UDP, success means the
// datagram left, not that it arrived. ds of any length may be given: it is sent in chunks
// of BatchSize. The buffers are borrowed: neither method keeps them after it returns.
//
// ReadBatch and WriteBatch may be called at the same time from different goroutines, and
// each from several goroutines (concurrent calls of the same method take turns). Close
// unblocks a waiting ReadBatch and WriteBatch; they, and every later call, return an error
// for which errors.Is(err, net.ErrClosed) holds.
type Conn interface {
	ReadBatch(ds []Datagram) (n int, err error)
	WriteBatch(ds []Datagram) (n int, err error)
	// LocalAddr is the host's underlay address, the one datagrams are received on.
	LocalAddr() netip.Addr
	// BatchSize is how many datagrams one system call moves at most.
	BatchSize() int
	// Stats returns the counters since the Conn was opened.
	Stats() Stats
	Close() error
}

// Stats counts what a Conn did, for metrics. Read counters count datagrams handed to the
// caller; write counters count datagrams the kernel accepted.
type Stats struct {
	ReadDatagrams uint64 // datagrams delivered by ReadBatch
	ReadBytes     uint64 // their payload bytes
	ReadCalls     uint64 // receive system calls that returned datagrams (recvmmsg)
	ReadCoalesced uint64 // datagrams that arrived coalesced with others (UDP GRO)
	ReadDropped   uint64 // datagrams dropped because they did not fit the caller's buffer
	ReadErrors    uint64 // ReadBatch calls that failed, other than after Close

	WriteDatagrams uint64 // datagrams sent
	WriteBytes     uint64 // their payload bytes
	WriteCalls     uint64 // send system calls (sendmmsg)
	WriteSegmented uint64 // datagrams sent as segments of a larger one (UDP GSO)
	WriteErrors    uint64 // datagrams that could not be sent
}

// counters are a Conn's Stats, updated once per batch. Reads and writes are apart, on
// separate cache lines, because a reader and a writer goroutine update them at once.
type counters struct {
	readDatagrams, readBytes, readCalls, readCoalesced, readDropped, readErrors atomic.Uint64
	_                                                                           [64]byte
	writeDatagrams, writeBytes, writeCalls, writeSegmented, writeErrors         atomic.Uint64
	_                                                                           [64]byte
}

// batchCounts accumulates one call's counts so that counters are touched once per batch.
type batchCounts struct {
	datagrams, bytes, calls, offloaded, dropped, errors uint64
}

func (c *counters) addRead(b *batchCounts) {
	addNonZero(&c.readDatagrams, b.datagrams)
	addNonZero(&c.readBytes, b.bytes)
	addNonZero(&c.readCalls, b.calls)
	addNonZero(&c.readCoalesced, b.offloaded)
	addNonZero(&c.readDropped, b.dropped)
	addNonZero(&c.readErrors, b.errors)
}

func (c *counters) addWrite(b *batchCounts) {
	addNonZero(&c.writeDatagrams, b.datagrams)
	addNonZero(&c.writeBytes, b.bytes)
	addNonZero(&c.writeCalls, b.calls)
	addNonZero(&c.writeSegmented, b.offloaded)
	addNonZero(&c.writeErrors, b.errors)
}

// addNonZero skips the atomic add, and the cache-line traffic it costs, for a zero.
func addNonZero(c *atomic.Uint64, v uint64) {
	if v != 0 {
		c.Add(v)
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		ReadDatagrams:  c.readDatagrams.Load(),
		ReadBytes:      c.readBytes.Load(),
		ReadCalls:      c.readCalls.Load(),
		ReadCoalesced:  c.readCoalesced.Load(),
		ReadDropped:    c.readDropped.Load(),
		ReadErrors:     c.readErrors.Load(),
		WriteDatagrams: c.writeDatagrams.Load(),
		WriteBytes:     c.writeBytes.Load(),
		WriteCalls:     c.writeCalls.Load(),
		WriteSegmented: c.writeSegmented.Load(),
		WriteErrors:    c.writeErrors.Load(),
	}
}

// readRoom returns how many payload bytes ds[i] can take, or false if Off is outside Buf.
func readRoom(d *Datagram) (int, bool) {
	if d.Off < 0 || d.Off >= len(d.Buf) {
		return 0, false
	}
	return len(d.Buf) - d.Off, true
}

// writePeer checks d for WriteBatch and returns its destination as an IPv4 address.
func writePeer(d *Datagram) (addr [4]byte, ok bool) {
	a := d.Peer.Addr().Unmap()
	if !a.Is4() || d.Peer.Port() == 0 || d.Off < 0 || d.Len < 0 || d.Len > MaxPayload ||
		d.Off > len(d.Buf)-d.Len {
		return addr, false
	}
	return a.As4(), true
}
