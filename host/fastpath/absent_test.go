package fastpath

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/host/dataplane"
)

// TestAbsent: a deleted key is known absent until it is installed again;
// another key is not taken for it.
func TestAbsent(t *testing.T) {
	var a absent
	k := fastpathEgressKey{Ifindex: 7, Saddr: 0x0a000105, Daddr: 0x0a000206, Sport: 40000, Dport: 443, Proto: 6}
	other := k
	other.Sport++
	if a.known(k.hash()) {
		t.Fatal("a key never deleted is known absent")
	}
	a.deleted(k.hash())
	if !a.known(k.hash()) {
		t.Fatal("a deleted key is not known absent")
	}
	if a.known(other.hash()) {
		t.Fatal("a key differing in its source port is taken for the deleted one")
	}
	a.installed(other.hash()) // another key's install leaves k's record alone
	if !a.known(k.hash()) {
		t.Fatal("installing another key cleared k's record")
	}
	a.installed(k.hash())
	if a.known(k.hash()) {
		t.Fatal("an installed key is still known absent: its Forget would skip the deletion")
	}
}

// TestKeyHashesSpread: keys of one busy host (one ENI, many ports) spread
// over the slots instead of evicting each other.
func TestKeyHashesSpread(t *testing.T) {
	used := map[uint64]bool{}
	for p := range 1024 {
		k := fastpathIngressKey{OuterSrc: 0xc0a80001, Vni: 5, Svni: 5, Saddr: 0x0a000105, Daddr: 0x0a000206, Sport: uint16(30000 + p), Dport: 443, Proto: 6}
		used[k.hash()%absentSlots] = true
	}
	// 1024 keys in 4096 slots: about 900 distinct slots if the hash is uniform.
	if len(used) < 850 {
		t.Fatalf("1024 keys landed in only %d slots", len(used))
	}
}

// TestForgetKnownAbsentAllocates: forgetting a flow already known to have
// no entry — every packet of a flow to an edge, say — costs no
// allocation (nor a system call: the maps are not even loaded here).
func TestForgetKnownAbsentAllocates(t *testing.T) {
	f := &FastPath{}
	f.ports.Store(&map[uint64]port{7: {ifindex: 3}})
	pkt := make([]byte, 40)
	pkt[0], pkt[9] = 0x45, 6
	copy(pkt[12:], []byte{10, 0, 1, 5, 10, 0, 2, 6, 0x9c, 0x40, 0x01, 0xbb})
	r := &dataplane.Result{Inner: pkt, VNI: 5}
	from := &dataplane.Attachment{ENI: 7}
	payload := make([]byte, geneveLen)
	outer := netip.MustParseAddr("192.0.2.1")
	ek := fastpathEgressKey{Ifindex: 3, Saddr: native32(pkt[12:]), Daddr: native32(pkt[16:]), Sport: native16(pkt[20:]), Dport: native16(pkt[22:]), Proto: 6}
	ik := fastpathIngressKey{OuterSrc: native32(outer.AsSlice()), Vni: 5, Saddr: ek.Saddr, Daddr: ek.Daddr, Sport: ek.Sport, Dport: ek.Dport, Proto: 6}
	f.absentEgress.deleted(ek.hash())
	f.absentIngress.deleted(ik.hash())
	if a := testing.AllocsPerRun(100, func() { f.ForgetEgress(from, r) }); a != 0 {
		t.Errorf("ForgetEgress of a known-absent flow: %v allocations, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() { f.ForgetIngress(outer, payload, r) }); a != 0 {
		t.Errorf("ForgetIngress of a known-absent flow: %v allocations, want 0", a)
	}
	if n := f.Forgets.Load(); n != 0 {
		t.Errorf("%d deletions issued for flows known absent, want 0", n)
	}
}
