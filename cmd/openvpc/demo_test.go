package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `openvpc demo -o json` on the real binary: every scene of
// the talk ends as the talk says, and nothing is left behind.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	r := runCLI(t, []string{"TMPDIR=" + tmp}, "demo", "-o", "json")
	if r.code != 0 {
		t.Fatalf("openvpc demo: %v", r)
	}
	var out struct {
		Scenes []struct {
			N       int      `json:"scene"`
			Title   string   `json:"title"`
			Verdict string   `json:"verdict"`
			Wire    []string `json:"wire"`
		} `json:"scenes"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("demo -o json: %v\n%s", err, r.stdout)
	}
	want := []string{"delivered", "no-route", "not-peered, sender-mismatch", "running", "translated", "allowed via vpce-…, denied via the internet"}
	if len(out.Scenes) != len(want) {
		t.Fatalf("%d scenes, want %d: %+v", len(out.Scenes), len(want), out.Scenes)
	}
	for i, s := range out.Scenes {
		verdict := s.Verdict
		if id, rest, ok := strings.Cut(strings.TrimPrefix(verdict, "allowed via "), ","); ok && strings.HasPrefix(id, "vpce-") {
			verdict = "allowed via vpce-…," + rest // the endpoint's id is new each time
		}
		if s.N != i+1 || verdict != want[i] || len(s.Wire) == 0 {
			t.Errorf("scene %d %q: verdict %q with %d lines of wire, want %q", s.N, s.Title, s.Verdict, len(s.Wire), want[i])
		}
	}
	// Geneve goes to its own port, 6081, as the docs say: each demo host
	// has its own loopback address.
	if wire := strings.Join(out.Scenes[0].Wire, "\n"); !strings.Contains(wire, "→ 6081 (Geneve)") {
		t.Errorf("scene 1 does not show Geneve going to port 6081:\n%s", wire)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "openvpc-demo-*")); len(left) != 0 {
		t.Errorf("the demo left %v behind", left)
	}
}
