package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/openvpc/openvpc/host/nic"
)

// TestResolveHostNIC: an explicit --nic is taken as given; auto picks veth
// (with the fast path) only as root, off loopback, with programs the kernel
// accepts, and otherwise falls back — to tun as root, netstack without —
// saying why, never failing.
func TestResolveHostNIC(t *testing.T) {
	for _, k := range []string{"tun", "veth", "netstack", "none"} {
		if got, why, err := resolveHostNIC(k, netip.MustParseAddr("192.0.2.1")); got != k || why != "" || err != nil {
			t.Errorf("--nic %s: %q %q %v", k, got, why, err)
		}
	}
	if _, _, err := resolveHostNIC("tap", netip.MustParseAddr("192.0.2.1")); err == nil || !strings.Contains(err.Error(), "veth") {
		t.Errorf("--nic tap: %v, want an error naming the choices", err)
	}
	fallback := "netstack"
	if nic.TUNAvailable() {
		fallback = "tun"
	}
	got, why, err := resolveHostNIC("auto", netip.MustParseAddr("127.0.1.1"))
	if err != nil || got == "veth" || got != fallback || why == "" {
		t.Errorf("auto on a loopback underlay: %q %q %v; want %s and a reason", got, why, err, fallback)
	}
	got, why, err = resolveHostNIC("auto", netip.MustParseAddr("192.0.2.1"))
	switch {
	case err != nil:
		t.Errorf("auto: %v; auto never fails", err)
	case os.Geteuid() != 0 && (got != "netstack" || !strings.Contains(why, "not root")):
		t.Errorf("auto without root: %q %q; want netstack, because not root", got, why)
	case os.Geteuid() == 0 && got != "veth":
		t.Errorf("auto as root on this kernel: %q (%s); want veth", got, why)
	}
	t.Logf("auto here: %s (%s)", got, why)
}
