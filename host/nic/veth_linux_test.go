package nic

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/openvpc/openvpc/packet"
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
	bufs, sizes := portBufs(v.BatchSize())
	peer := netip.MustParseAddr("10.0.2.9") // off-subnet: the reply goes via the gateway
	req := echoRequest(make([]byte, 64), peer, inst.Addr.Addr(), 1)
	one := [][]byte{req}
	roundTrip := func(seq uint16) {
		m := packet.ICMPv4(req[packet.IPv4MinSize:])
		m.SetSeq(seq)
		m.SetChecksum(m.ComputeChecksum())
		if err := v.Write(one); err != nil {
			t.Fatal(err)
		}
		for {
			k, err := v.Read(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				p := packet.IPv4(bufs[i][packet.Headroom : packet.Headroom+sizes[i]])
				if p.Protocol() == packet.ProtoICMP && p.Dst() == peer && packet.ICMPv4(p.Payload()).Seq() == seq {
					return
				}
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		roundTrip(1)
		seq := uint16(2)
		if a := testing.AllocsPerRun(50, func() { roundTrip(seq); seq++ }); a != 0 {
			t.Errorf("%v allocations per echo through the veth, want 0", a)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no echo reply from the instance's kernel")
	}
}
