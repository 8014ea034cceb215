package fastpath

import (
	"net/netip"
	"os"
	"testing"
)

// TestProgramsLoad: the kernel's verifier accepts both programs (as root;
// under OPENVPC_E2E=1, CI, not being root is a failure).
func TestProgramsLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but not root: the BPF programs cannot be loaded")
		}
		t.Skip("loading BPF programs needs root")
	}
	if err := Probe(); err != nil {
		t.Fatal(err)
	}
}

// TestLoadNeedsAnUnderlayDevice: Load refuses an underlay address no
// device here has (and without root, Probe refuses with a reason).
func TestLoadNeedsAnUnderlayDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		if err := Probe(); err == nil {
			t.Fatal("Probe succeeded without root")
		}
		return
	}
	if _, err := Load(Config{Underlay: mustAddr("192.0.2.77")}); err == nil {
		t.Fatal("Load found a device for 192.0.2.77, which no interface here has")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
