package mapping

import (
	"context"
	"sync"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// Limits of a host's mailbox.
const (
	// snapshotChunk is the number of changes per message of a snapshot.
	snapshotChunk = 4096
	// maxQueued is how many unacknowledged changes a mailbox keeps before
	// it gives up on deltas and sends the host a fresh snapshot instead.
	maxQueued = 1 << 20
	// detachedTTL is how long a mailbox outlives its stream, so a host that
	// reconnects soon resumes from its revision instead of a snapshot.
	detachedTTL = 2 * time.Minute
)

// mailbox holds what one host has been sent or is owed: batches newer
// than floor, the revision the host is known to have applied. Batches
// stay until acknowledged, so a host that reconnects resumes exactly where
// it left off. scope is guarded by Service.mu, the rest by mu.
type mailbox struct {
	host  string
	scope map[string]uint32 // VPC id → VNI
	// refs counts, per host, the VPCs in scope where it has instances: the
	// host records this host needs (plus every edge). held is what it has.
	refs map[string]int
	held set

	mu       sync.Mutex
	queue    []*pb.SubscribeResponse
	sent     int  // queue[:sent] went out on the current stream
	queued   int  // changes held in queue
	snapshot bool // the next thing to send is a fresh snapshot
	floor    int64
	notify   chan struct{}
	stream   context.CancelFunc // cancels the attached stream, if any
	gen      int                // which stream is attached; older ones must stop
	detached time.Time          // when the last stream ended; zero while attached
}

func newMailbox(host string) *mailbox {
	return &mailbox{host: host, scope: map[string]uint32{}, refs: map[string]int{}, held: set{},
		snapshot: true, notify: make(chan struct{}, 1)}
}

func (m *mailbox) wake() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// push queues a batch, or falls back to a snapshot when the host is too
// far behind for deltas to be worth keeping.
func (m *mailbox) push(b *pb.SubscribeResponse) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snapshot {
		return // the coming snapshot will include this batch's effects
	}
	if m.queued+len(b.Changes) > maxQueued {
		m.dropQueue()
		m.snapshot = true
	} else {
		m.queue = append(m.queue, b)
		m.queued += len(b.Changes)
	}
	m.wake()
}

func (m *mailbox) dropQueue() {
	m.queue, m.sent, m.queued = nil, 0, 0
}

// replace installs a snapshot's messages in place of everything queued.
func (m *mailbox) replace(msgs []*pb.SubscribeResponse) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropQueue()
	for _, b := range msgs {
		m.queue = append(m.queue, b)
		m.queued += len(b.Changes)
	}
	m.snapshot = false
	m.floor = 0 // nothing is known applied until the host acknowledges
	m.wake()
}

// ack drops batches the host has applied.
func (m *mailbox) ack(rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rev <= m.floor {
		return
	}
	m.floor = rev
	n := 0
	// Hosts acknowledge a snapshot only after its last message, so every
	// message up to rev, chunks of a snapshot included, has been applied.
	for n < len(m.queue) && m.queue[n].Revision <= rev {
		n++
	}
	for _, b := range m.queue[:n] {
		m.queued -= len(b.Changes)
	}
	m.queue = m.queue[n:]
	m.sent = max(0, m.sent-n)
}

// resume prepares the mailbox for a new stream from revision from. It
// reports false when the mailbox cannot prove it holds every change after
// from, in which case a snapshot will be sent.
func (m *mailbox) resume(from int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = 0
	if m.snapshot || from == 0 || m.floor == 0 || from < m.floor {
		m.dropQueue()
		m.snapshot = true
		return false
	}
	n := 0
	for n < len(m.queue) && m.queue[n].Revision <= from {
		m.queued -= len(m.queue[n].Changes)
		n++
	}
	m.queue = m.queue[n:]
	m.floor = from
	return true
}

// next returns the next message to send, whether a snapshot must be built
// first, or nothing yet.
func (m *mailbox) next(gen int) (b *pb.SubscribeResponse, needSnapshot bool, stale bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		return nil, false, true
	}
	if m.snapshot {
		return nil, true, false
	}
	if m.sent < len(m.queue) {
		b = m.queue[m.sent]
		m.sent++
	}
	return b, false, false
}

func (m *mailbox) awaitingSnapshot() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshot
}
