//go:build linux

package dx

import (
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/packet/packettest"
)

// testData has two VIFs into VPC 10.20.0.0/16 (VNI 7): 101 up, learned
// 192.0.2.0/24; 102 down.
func testData() (*Data, *dataVIF, *dataVIF) {
	d := NewData()
	vpc := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	a := &dataVIF{id: 101, up: true, vpcs: vpc, vnis: []uint32{7}, learned: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	b := &dataVIF{id: 102, up: false, vpcs: vpc, vnis: []uint32{7}, learned: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	d.all[101], d.all[102] = a, b
	d.publishLocked()
	return d, a, b
}

func ipv4(src, dst string) packet.IPv4 {
	buf := make([]byte, packet.Headroom+128)
	n := packettest.UDP(buf, src, dst, 8, 64, false)
	return packet.IPv4(buf[packet.Headroom : packet.Headroom+n])
}

func TestDataFromVPC(t *testing.T) {
	d, _, _ := testData()
	for _, tc := range []struct {
		name     string
		vni      uint32
		target   uint64
		src, dst string
		want     datapath.Verdict
	}{
		{"up, learned prefix", 7, 101, "10.20.1.4", "192.0.2.10", datapath.Forwarded},
		{"not a learned prefix", 7, 101, "10.20.1.4", "203.0.113.1", datapath.NoRoute},
		{"session down", 7, 102, "10.20.1.4", "198.51.100.1", datapath.NoRoute},
		{"another VPC", 8, 101, "10.20.1.4", "192.0.2.10", datapath.NoRoute},
		{"source outside the VPC", 7, 101, "10.30.1.4", "192.0.2.10", datapath.NoRoute},
		{"unknown VIF", 7, 999, "10.20.1.4", "192.0.2.10", datapath.NoRoute},
	} {
		if v := d.FromVPC(nil, tc.vni, tc.target, ipv4(tc.src, tc.dst), nil); v != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, v, tc.want)
		}
	}
}

func TestDataFromOutside(t *testing.T) {
	d, a, b := testData()
	for _, tc := range []struct {
		name     string
		from     *dataVIF
		src, dst string
		want     datapath.Verdict
	}{
		{"learned source into the VPC", a, "192.0.2.10", "10.20.1.4", datapath.Forwarded},
		{"source inside the VPC", a, "10.20.9.9", "10.20.1.4", datapath.SpoofedSource},
		{"another VIF's prefix", a, "198.51.100.1", "10.20.1.4", datapath.SpoofedSource},
		{"not a VPC destination", a, "192.0.2.10", "10.99.1.4", datapath.NoRoute},
		{"from no VIF", nil, "192.0.2.10", "10.20.1.4", datapath.NoRoute},
	} {
		d.current = tc.from
		vni, target, v := d.FromOutsideTo(nil, ipv4(tc.src, tc.dst), nil)
		if v != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, v, tc.want)
		}
		if v == datapath.Forwarded && (vni != 7 || target != a.id) {
			t.Errorf("%s: VNI %d target %d, want 7 and %d", tc.name, vni, target, a.id)
		}
	}
	_ = b
}

// The data path's two steps allocate nothing.
func TestDataAllocations(t *testing.T) {
	d, a, _ := testData()
	out, in := ipv4("10.20.1.4", "192.0.2.10"), ipv4("192.0.2.10", "10.20.1.4")
	d.current = a
	if n := testing.AllocsPerRun(1000, func() {
		d.FromVPC(nil, 7, 101, out, nil)
		d.FromOutsideTo(nil, in, nil)
	}); n != 0 {
		t.Fatalf("%v allocations per packet pair", n)
	}
}
