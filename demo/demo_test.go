package demo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/demo"
)

// TestStory plays the demo as a story: every scene is told and ends as the
// talk says, and the demo's directory is gone afterwards.
func TestStory(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := demo.Run(ctx, demo.Config{Out: &out, Dir: dir}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	story := out.String()
	for _, want := range []string{
		"── 1. red → yellow, across hosts", "⇒ delivered",
		"── 2. green → yellow", "⇒ no-route",
		"── 3. green forges its way in", "⇒ not-peered, sender-mismatch",
		"── 4. the cache", "⇒ running",
		"── 5. red → the internet, through Blackfoot", "⇒ translated",
		"── 6. red → the object store, through a gateway endpoint", ", denied via the internet",
		"Everything is cleaned up.",
		// Without Sites (the caller's namespace is the machine's): one
		// line says why 7 and 8 were left out, and how to get them.
		"scenes 7 (VPN) and 8 (Direct Connect) left out: not asked for; to see them, run openvpc demo as root with strongswan and frr installed",
		// Geneve on its own port, as the docs say, each host on its own
		// loopback address.
		"Geneve on UDP port 6081", "UDP         source port from the flow hash → 6081 (Geneve)",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("the story does not tell %q:\n%s", want, story)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "openvpc-demo-*")); len(left) != 0 {
		t.Errorf("the demo left %v behind", left)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []demo.Config{{}, {Out: &bytes.Buffer{}, Step: true}, {Out: &bytes.Buffer{}, NIC: "tap"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v is valid", c)
		}
	}
}
