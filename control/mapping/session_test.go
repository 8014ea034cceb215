package mapping

import (
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestMailboxAckTrimsChunkedSnapshot: once the host acknowledges a
// snapshot sent in several messages, none of it is kept for resending.
func TestMailboxAckTrimsChunkedSnapshot(t *testing.T) {
	m := newMailbox("h")
	change := &pb.Change{Kind: &pb.Change_DeleteHost{DeleteHost: "x"}}
	m.replace([]*pb.SubscribeResponse{
		{Revision: 10, Snapshot: true, More: true, Changes: []*pb.Change{change, change}},
		{Revision: 10, More: true, Changes: []*pb.Change{change}},
		{Revision: 10, Changes: []*pb.Change{change}},
	})
	m.push(&pb.SubscribeResponse{Revision: 12, Changes: []*pb.Change{change}})
	for range 4 {
		if b, _, _ := m.next(m.gen); b == nil {
			t.Fatal("queue ran dry early")
		}
	}
	m.ack(10)
	if len(m.queue) != 1 || m.queued != 1 || m.sent != 1 || m.queue[0].Revision != 12 {
		t.Fatalf("after ack(10): %d batches (%d changes) held, %d sent", len(m.queue), m.queued, m.sent)
	}
	m.ack(12)
	if len(m.queue) != 0 || m.queued != 0 || m.floor != 12 {
		t.Fatalf("after ack(12): %d batches held, floor %d", len(m.queue), m.floor)
	}
	// Resuming from what was acknowledged needs no snapshot.
	if !m.resume(12) {
		t.Fatal("resume from the acknowledged revision asked for a snapshot")
	}
	if m.resume(5) {
		t.Fatal("resume from before the floor did not ask for a snapshot")
	}
}
