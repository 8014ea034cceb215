package agent

import (
	"strings"
	"testing"
)

// writes records each Write it is given.
type writes struct{ got []string }

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, string(p))
	return len(p), nil
}

// TestLineWriterWritesWholeLines: however the logger's buffer splits its
// output, each write to the shared file holds whole lines only, and
// nothing is lost or reordered.
func TestLineWriterWritesWholeLines(t *testing.T) {
	var w writes
	lw := &lineWriter{w: &w}
	in := "2 a b\n2 c d\n2 e f\n"
	for _, chunk := range []string{"2 a", " b\n2 c", " d\n", "2 e f", "\n"} {
		if n, err := lw.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	for _, g := range w.got {
		if !strings.HasSuffix(g, "\n") || strings.HasPrefix(g, " ") {
			t.Errorf("a write holds part of a line: %q", g)
		}
	}
	if got := strings.Join(w.got, ""); got != in {
		t.Errorf("written %q, want %q", got, in)
	}
	if len(w.got) != 3 || len(lw.partial) != 0 {
		t.Errorf("writes %q, pending %q", w.got, lw.partial)
	}
}
