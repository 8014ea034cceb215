package fastpath

import "testing"

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
