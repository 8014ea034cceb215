package nat

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/openvpc/openvpc/packet"
)

var (
	private = netip.MustParseAddr("10.0.1.5")
	public  = netip.MustParseAddr("198.51.100.7")
	remote  = netip.MustParseAddr("203.0.113.10")
)

func ipv4(b []byte, proto uint8, src, dst netip.Addr, n int) packet.IPv4 {
	ip := packet.IPv4(b[:packet.IPv4MinSize+n])
	ip.Encode(&packet.IPv4Fields{TotalLen: uint16(len(ip)), ID: 7, TTL: 64, Protocol: proto, Src: src, Dst: dst})
	return ip
}

func tcp(src, dst netip.Addr, data string) packet.IPv4 {
	b := make([]byte, 2048)
	t := packet.TCP(b[20 : 20+packet.TCPMinSize+len(data)])
	t.Encode(&packet.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 9, Flags: 0x18, Window: 500})
	copy(t.Payload(), data)
	t.SetChecksum(t.ComputeChecksum(src, dst))
	return ipv4(b, packet.ProtoTCP, src, dst, len(t))
}

func udp(src, dst netip.Addr, data string) packet.IPv4 {
	b := make([]byte, 2048)
	u := packet.UDP(b[20 : 20+packet.UDPMinSize+len(data)])
	u.SetSrcPort(5353)
	u.SetDstPort(53)
	u.SetLength(uint16(len(u)))
	copy(u.Payload(), data)
	u.SetChecksum(u.ComputeChecksum(src, dst))
	return ipv4(b, packet.ProtoUDP, src, dst, len(u))
}

func echo(src, dst netip.Addr) packet.IPv4 {
	b := make([]byte, 2048)
	m := packet.ICMPv4(b[20 : 20+packet.ICMPv4MinSize+16])
	m.SetType(packet.ICMPv4EchoRequest)
	m.SetIdent(1)
	m.SetSeq(2)
	m.SetChecksum(m.ComputeChecksum())
	return ipv4(b, packet.ProtoICMP, src, dst, len(m))
}

// icmpError is "port unreachable" from src about orig, quoting its header
// and 8 bytes, as a host or router sends it.
func icmpError(src, dst netip.Addr, orig packet.IPv4) packet.IPv4 {
	b := make([]byte, 2048)
	quote := orig[:orig.HeaderLen()+8]
	m := packet.ICMPv4(b[20 : 20+packet.ICMPv4MinSize+len(quote)])
	m.SetType(packet.ICMPv4DstUnreachable)
	m.SetCode(packet.ICMPv4PortUnreachable)
	copy(m.Payload(), quote)
	m.SetChecksum(m.ComputeChecksum())
	return ipv4(b, packet.ProtoICMP, src, dst, len(m))
}

// checksumsOK recomputes every checksum the packet carries and names the
// first that is wrong.
func checksumsOK(pkt packet.IPv4) string {
	if !pkt.ChecksumValid() {
		return "IPv4 header"
	}
	p := pkt.Payload()
	switch pkt.Protocol() {
	case packet.ProtoTCP:
		t := packet.TCP(p)
		if t.Checksum() != t.ComputeChecksum(pkt.Src(), pkt.Dst()) {
			return "TCP"
		}
	case packet.ProtoUDP:
		u := packet.UDP(p)
		if u.Checksum() != 0 && u.Checksum() != u.ComputeChecksum(pkt.Src(), pkt.Dst()) {
			return "UDP"
		}
	case packet.ProtoICMP:
		m := packet.ICMPv4(p)
		if m.Checksum() != m.ComputeChecksum() {
			return "ICMP"
		}
		if isError(m.Type()) {
			q := packet.IPv4(m.Payload())
			if packet.Checksum(q[:q.HeaderLen()], 0) != 0xffff {
				return "quoted IPv4 header"
			}
		}
	}
	return ""
}

func TestOutboundInbound(t *testing.T) {
	cases := map[string]packet.IPv4{
		"tcp":        tcp(private, remote, "GET / HTTP/1.1\r\n\r\n"),
		"tcp-odd":    tcp(private, remote, "odd"),
		"udp":        udp(private, remote, "query"),
		"icmp-echo":  echo(private, remote),
		"icmp-error": icmpError(private, remote, udp(remote, private, "x")),
	}
	for name, pkt := range cases {
		t.Run(name, func(t *testing.T) {
			Outbound(pkt, public)
			if pkt.Src() != public {
				t.Fatalf("source %v, want %v", pkt.Src(), public)
			}
			if bad := checksumsOK(pkt); bad != "" {
				t.Fatalf("after Outbound the %s checksum is wrong", bad)
			}
			if name == "icmp-error" {
				q := packet.IPv4(packet.ICMPv4(pkt.Payload()).Payload())
				if q.Dst() != public {
					t.Fatalf("quoted destination %v, want the Elastic IP %v", q.Dst(), public)
				}
			}
		})
	}
	// The reply side: from the internet to the Elastic IP.
	in := map[string]packet.IPv4{
		"tcp":        tcp(remote, public, "HTTP/1.1 200 OK\r\n\r\n"),
		"udp":        udp(remote, public, "answer"),
		"icmp-echo":  echo(remote, public),
		"icmp-error": icmpError(remote, public, udp(public, remote, "y")),
	}
	for name, pkt := range in {
		t.Run("in-"+name, func(t *testing.T) {
			Inbound(pkt, private)
			if pkt.Dst() != private {
				t.Fatalf("destination %v, want %v", pkt.Dst(), private)
			}
			if bad := checksumsOK(pkt); bad != "" {
				t.Fatalf("after Inbound the %s checksum is wrong", bad)
			}
			if name == "icmp-error" {
				m := packet.ICMPv4(pkt.Payload())
				q := packet.IPv4(m.Payload())
				if q.Src() != private {
					t.Fatalf("quoted source %v, want %v", q.Src(), private)
				}
				// The quoted UDP checksum is whole in this quote: it must
				// match the quoted addresses.
				u := packet.UDP(q[q.HeaderLen():])
				want := udp(private, remote, "y")
				if got, w := binary.BigEndian.Uint16(u[6:]), packet.UDP(want.Payload()).Checksum(); got != w {
					t.Fatalf("quoted UDP checksum %#04x, want %#04x", got, w)
				}
			}
		})
	}
}

func TestNoAllocs(t *testing.T) {
	pkt := tcp(private, remote, "data")
	if n := testing.AllocsPerRun(100, func() { Outbound(pkt, public); Inbound(pkt, private) }); n != 0 {
		t.Fatalf("%v allocations per translation, want 0", n)
	}
}

// FuzzNAT: any bytes that make a valid IPv4 packet with right checksums
// keep right checksums through a translation and back; nothing panics.
func FuzzNAT(f *testing.F) {
	for _, p := range []packet.IPv4{tcp(private, remote, "a"), udp(private, remote, "bc"), echo(private, remote), icmpError(private, remote, udp(remote, private, "z"))} {
		f.Add([]byte(p), []byte{198, 51, 100, 9})
	}
	f.Fuzz(func(t *testing.T, b []byte, addr []byte) {
		if len(addr) < 4 {
			return
		}
		pkt := packet.IPv4(b)
		if !pkt.Valid() {
			return
		}
		pkt = pkt[:pkt.TotalLen()]
		checkable := !truncated(pkt) && pkt.FragmentOffset() == 0
		before := "unchecked"
		if checkable {
			before = checksumsOK(pkt)
		}
		orig := pkt.Src()
		Outbound(pkt, netip.AddrFrom4([4]byte(addr)))
		Inbound(pkt, netip.AddrFrom4([4]byte(addr)))
		if before == "" {
			if bad := checksumsOK(pkt); bad != "" {
				t.Fatalf("checksums were right; after translation the %s one is wrong", bad)
			}
		}
		Outbound(pkt, orig)
	})
}

// truncated reports a transport header too short to check.
func truncated(pkt packet.IPv4) bool {
	p := pkt.Payload()
	switch pkt.Protocol() {
	case packet.ProtoTCP:
		return len(p) < packet.TCPMinSize
	case packet.ProtoUDP:
		return len(p) < packet.UDPMinSize || int(packet.UDP(p).Length()) > len(p) || packet.UDP(p).Length() < packet.UDPMinSize
	case packet.ProtoICMP:
		m := packet.ICMPv4(p)
		if len(m) < packet.ICMPv4MinSize {
			return true
		}
		if isError(m.Type()) {
			q := packet.IPv4(m.Payload())
			return len(q) < packet.IPv4MinSize || len(q) < q.HeaderLen() || q.HeaderLen() < packet.IPv4MinSize
		}
	}
	return false
}
