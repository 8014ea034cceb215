//go:build linux

package demo

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ipv4 is a minimal IPv4 header src → dst with protocol proto, then
// payload.
func ipv4(src, dst string, proto uint8, payload ...byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0], h[8], h[9] = 0x45, 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	return append(h, payload...)
}

func ether(et uint16, rest []byte) []byte {
	f := make([]byte, 12, 14+len(rest))
	f = binary.BigEndian.AppendUint16(f, et)
	return append(f, rest...)
}

func auxdata(tci uint16, valid bool) []byte {
	aux := unix.TpacketAuxdata{Vlan_tci: tci, Vlan_tpid: 0x8100}
	if valid {
		aux.Status = unix.TP_STATUS_VLAN_VALID
	}
	data := unsafe.Slice((*byte)(unsafe.Pointer(&aux)), unsafe.Sizeof(aux))
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// TestParseTagged: the tag is found beside the frame (auxdata, as TC-eBPF
// leaves it) or in it, with the inner IPv4 header; untagged or short
// frames are not reported.
func TestParseTagged(t *testing.T) {
	ip := ipv4("10.0.1.4", "192.0.2.74", 6, 0, 80, 0, 80)
	inline := ether(0x8100, append([]byte{0x20, 101, 0x08, 0x00}, ip...)) // PCP 1, VID 101
	for _, c := range []struct {
		name       string
		frame, oob []byte
		ok         bool
		vlan       uint16
	}{
		{"auxdata", ether(0x0800, ip), auxdata(0x2000|101, true), true, 101},
		{"inline", inline, nil, true, 101},
		{"untagged", ether(0x0800, ip), auxdata(101, false), false, 0},
		{"not IPv4", ether(0x86dd, ip), auxdata(101, true), false, 101},
		{"short", ether(0x8100, []byte{0, 101}), nil, false, 0},
		{"truncated IPv4", ether(0x0800, ip[:12]), auxdata(101, true), false, 101},
	} {
		f, ok := parseTagged(c.frame, c.oob)
		if ok != c.ok || f.vlan != c.vlan {
			t.Errorf("%s: ok %v VLAN %d, want %v %d", c.name, ok, f.vlan, c.ok, c.vlan)
		}
		if ok && (f.src != netip.MustParseAddr("10.0.1.4") || f.dst != netip.MustParseAddr("192.0.2.74") || f.proto != 6 || f.ttl != 64) {
			t.Errorf("%s: inner header %+v", c.name, f)
		}
	}
}

func FuzzParseTagged(f *testing.F) {
	ip := ipv4("10.0.1.4", "192.0.2.74", 6)
	f.Add(ether(0x0800, ip), auxdata(101, true))
	f.Add(ether(0x8100, append([]byte{0, 101, 8, 0}, ip...)), []byte{})
	f.Fuzz(func(t *testing.T, frame, oob []byte) {
		if g, ok := parseTagged(frame, oob); ok && (g.vlan == 0 || g.vlan > 4095 || !g.src.Is4()) {
			t.Fatalf("reported %+v", g)
		}
	})
}

// TestClassify: ESP in UDP 4500, IKE on 500 and on 4500 (the zero
// non-ESP marker) and everything else are told apart.
func TestClassify(t *testing.T) {
	udp := func(sp, dp uint16, data ...byte) []byte {
		u := binary.BigEndian.AppendUint16(nil, sp)
		u = binary.BigEndian.AppendUint16(u, dp)
		u = append(u, 0, 0, 0, 0)
		return ipv4("192.0.2.193", "192.0.2.50", unix.IPPROTO_UDP, append(u, data...)...)
	}
	var c counter
	c.classify(udp(4500, 4500, 0xc0, 1, 2, 3), true) // an SPI: ESP
	c.classify(udp(4500, 4500, 0, 0, 0, 0), false)   // non-ESP marker: IKE
	c.classify(udp(500, 500), true)
	c.classify(udp(53, 4500), true) // not ESP: both ports are 4500
	c.classify(ipv4("10.0.1.4", "192.168.50.10", 6, 0, 80, 0, 80), true)
	c.classify([]byte{0x60, 0}, true) // not IPv4: not counted by kind
	if c.esp.Load() != 1 || c.ike.Load() != 2 || c.other.Load() != 2 || c.out.Load() != 5 || c.in.Load() != 1 {
		t.Errorf("esp %d ike %d other %d out %d in %d, want 1 2 2 5 1", c.esp.Load(), c.ike.Load(), c.other.Load(), c.out.Load(), c.in.Load())
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(ipv4("192.0.2.193", "192.0.2.50", 17, 0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0, 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, p []byte) {
		var c counter
		c.classify(p, true)
		if n := c.esp.Load() + c.ike.Load() + c.other.Load(); n > 1 {
			t.Fatalf("one packet counted %d times", n)
		}
	})
}
