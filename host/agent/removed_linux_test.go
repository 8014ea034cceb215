package agent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/testcloud"
)

// TestRemovedHostRemovesItsNamespaces: the same with TUN NICs: the
// instance's network namespace goes as soon as the host learns it was
// removed, not when it stops.
func TestRemovedHostRemovesItsNamespaces(t *testing.T) {
	if !nic.TUNAvailable() {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but TUN instances cannot be made here: run as root with /dev/net/tun")
		}
		t.Skip("TUN instances need root and /dev/net/tun")
	}
	c := testcloud.New(t, etcd)
	b, err := nic.NewTUNBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // after the agent stops: cleanups run last first
	_, inst, done := runRemovable(t, c, b)
	ns := filepath.Join(nic.NetnsDir, nic.NamespaceName(inst.Id))
	if _, err := os.Stat(ns); err != nil {
		t.Fatalf("the instance's namespace: %v", err)
	}
	remove(t, c, "host-a")
	eventually(t, func() bool { _, err := os.Stat(ns); return os.IsNotExist(err) })
	select {
	case err := <-done:
		t.Fatalf("the removed host stopped by itself: %v", err)
	default:
	}
}
