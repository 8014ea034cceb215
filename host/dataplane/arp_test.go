package dataplane

import (
	"encoding/binary"
	"testing"

	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

func arpRequest(sender, target string) []byte {
	f := make([]byte, etherHeaderLen+packet.ARPSize)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], []byte{2, 1, 1, 1, 1, 1})
	binary.BigEndian.PutUint16(f[12:], etherTypeARP)
	packet.ARP(f[etherHeaderLen:]).Encode(&packet.ARPFields{Op: packet.ARPRequest, SenderHW: [6]byte{2, 1, 1, 1, 1, 1}, SenderIP: a(sender), TargetIP: a(target)})
	return f
}

func TestAnswerARP(t *testing.T) {
	f := newFixture(t)
	// Give the neighbour a MAC in the cache.
	tx := f.t.Begin(2)
	must(t, tx.UpsertMapping(mappingWithMAC(red, "10.0.1.5", 2, 2, [6]byte{2, 9, 9, 9, 9, 9})))
	tx.Commit()
	snap := f.t.Load()
	from := f.enis[1]
	for _, tc := range []struct {
		sender, target string
		ok             bool
		hw             [6]byte
	}{
		{"10.0.1.4", "10.0.1.1", true, RouterMAC},
		{"10.0.1.4", "10.0.1.5", true, [6]byte{2, 9, 9, 9, 9, 9}},
		{"10.0.1.4", "10.0.1.99", false, [6]byte{}}, // nobody: no answer, as on a LAN
		{"10.0.1.4", "10.0.2.4", false, [6]byte{}},  // another subnet: via the gateway
		{"10.0.1.4", "10.0.1.4", false, [6]byte{}},  // itself (duplicate address detection)
		{"10.0.1.77", "10.0.1.1", false, [6]byte{}}, // a spoofed sender gets nothing
	} {
		fr := arpRequest(tc.sender, tc.target)
		if got := AnswerARP(snap, from, fr); got != tc.ok {
			t.Fatalf("%s asks for %s: answered %v", tc.sender, tc.target, got)
		}
		if !tc.ok {
			continue
		}
		arp := packet.ARP(fr[etherHeaderLen:])
		if arp.Op() != packet.ARPReply || arp.SenderHW() != tc.hw || arp.SenderIP() != a(tc.target) || arp.TargetIP() != a(tc.sender) ||
			[6]byte(fr[0:6]) != [6]byte{2, 1, 1, 1, 1, 1} || [6]byte(fr[6:12]) != tc.hw {
			t.Fatalf("reply for %s: % x", tc.target, fr)
		}
	}
}

func mappingWithMAC(vni uint32, ip string, host, eni uint64, mac [6]byte) tables.Mapping {
	return tables.Mapping{VNI: vni, IP: a(ip), HostID: host, ENI: eni, MAC: mac}
}
