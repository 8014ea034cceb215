package tables

import "testing"

// TestGenerationPublishedFirst: every snapshot has a new generation, and
// the publish hook hears it before Load can return the snapshot — what a
// kernel flow cache relies on to stop replaying older decisions first.
func TestGenerationPublishedFirst(t *testing.T) {
	tb := New(1)
	var heard []uint64
	var loadedAtHook []uint64
	tb.OnPublish(func(s *Snapshot) {
		heard = append(heard, s.Generation())
		loadedAtHook = append(loadedAtHook, tb.Load().Generation())
	})
	if len(heard) != 1 || heard[0] != tb.Load().Generation() {
		t.Fatalf("OnPublish told %v, want the current generation %d at once", heard, tb.Load().Generation())
	}
	prev := tb.Load().Generation()
	for i := range 3 {
		tx := tb.Begin(int64(i + 1))
		s := tx.Commit()
		if s.Generation() <= prev {
			t.Errorf("snapshot %d: generation %d after %d", i, s.Generation(), prev)
		}
		if got := heard[len(heard)-1]; got != s.Generation() {
			t.Errorf("hook heard %d, snapshot is %d", got, s.Generation())
		}
		if got := loadedAtHook[len(loadedAtHook)-1]; got != prev {
			t.Errorf("at the hook Load already returned generation %d, want the previous %d", got, prev)
		}
		prev = s.Generation()
	}
	tx := tb.Begin(9)
	tx.Abort()
	if len(heard) != 4 {
		t.Errorf("an aborted Txn was published: heard %v", heard)
	}
}
