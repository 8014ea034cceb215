package nic

import (
	"os"
	"testing"
)

// TestVethEcho: an echo request written to a veth port is answered by
// the instance's kernel and read back from the port, and neither
// direction allocates (the port's socket callbacks are bound once, and
// its reads take no sender's address).
func TestVethEcho(t *testing.T) {
	if !VethAvailable() {
		if os.Getenv("OPENVPC_E2E") == "1" {
			t.Fatal("OPENVPC_E2E=1 but veth instances cannot be made here: run as root")
		}
		t.Skip("veth instances need root")
	}
	b, err := NewVethBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inst := testInstance()
	n, err := b.Open(inst)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	v := n.(*Veth)
	if !namespaceExists(v.Namespace()) {
		t.Fatalf("no namespace %s", v.Namespace())
	}
	echoNoAllocs(t, v, inst, "the veth")
}
