package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/packet"
)

// sendUDPEnv turns the test binary into a UDP sender inside an instance:
// "SRC:PORT DST:PORT COUNT" sends COUNT datagrams of 64 bytes, 1 ms apart.
const sendUDPEnv = "OPENVPC_E2E_SEND_UDP"

// udpSinkEnv turns the test binary into a UDP listener that discards
// what it gets; it prints "ready" once bound.
const udpSinkEnv = "OPENVPC_E2E_UDP_SINK"

func sendUDP(spec string) {
	f := strings.Fields(spec)
	src, err1 := net.ResolveUDPAddr("udp4", f[0])
	dst, err2 := net.ResolveUDPAddr("udp4", f[1])
	n, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		os.Exit(2)
	}
	c, err := net.DialUDP("udp4", src, dst)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	msg := make([]byte, 64)
	for range n {
		_, _ = c.Write(msg) // ECONNREFUSED after an ICMP error is not ours to mind
		time.Sleep(time.Millisecond)
	}
}

func udpSink(addr string) {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	b := make([]byte, 65536)
	for {
		if _, _, err := c.ReadFrom(b); err != nil {
			return
		}
	}
}

// udpIn reads the instance kernel's count of UDP datagrams received.
func (c *cloud) udpIn(inst string) int {
	c.t.Helper()
	out, code := c.exec(inst, 5*time.Second, "cat", "/proc/net/snmp")
	if code != 0 {
		c.t.Fatalf("reading /proc/net/snmp in %s:\n%s", inst, out)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		if i := slices.Index(names, "InDatagrams"); i > 0 && i < len(fields) {
			n, _ := strconv.Atoi(fields[i])
			return n
		}
	}
	c.t.Fatalf("no Udp InDatagrams in /proc/net/snmp of %s", inst)
	return 0
}

// forge sends, from machine m, an underlay packet as if from outerSrc to
// host outerDst: Geneve VNI vni with SourceVPC svni around a UDP datagram
// src:40000 → dst:5000 — the same 5-tuple as the instances' own flow, so a
// cache keyed on less than the whole decision would deliver it. A raw
// socket writes the outer header itself: any outer source will do.
func forge(t *testing.T, m *machine, outerSrc, outerDst netip.Addr, vni, svni uint32, src, dst netip.Addr, n int) {
	t.Helper()
	buf := make([]byte, packet.Headroom+128)
	inner := buf[packet.Headroom : packet.Headroom+packet.IPv4MinSize+packet.UDPMinSize+64]
	packet.IPv4(inner).Encode(&packet.IPv4Fields{TotalLen: uint16(len(inner)), TTL: 64, Protocol: packet.ProtoUDP, Src: src, Dst: dst})
	u := packet.UDP(inner[packet.IPv4MinSize:])
	u.SetSrcPort(40000)
	u.SetDstPort(5000)
	u.SetLength(uint16(len(u)))
	u.ComputeChecksum(src, dst)
	start, ok := packet.Encapsulate(buf, len(inner), &packet.Encap{Src: outerSrc, Dst: outerDst, SrcPort: 50000, VNI: vni, Options: packet.GeneveOptions{SourceVNI: svni}})
	if !ok {
		t.Fatal("encapsulating the forged packet")
	}
	sendRaw(t, m, outerDst, buf[start:packet.Headroom+len(inner)], n)
}

func sendRaw(t *testing.T, m *machine, dst netip.Addr, pkt []byte, n int) {
	t.Helper()
	err := nsthread.In(m.ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for range n {
			if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending raw packets from %s: %v", m.name, err)
	}
}

// outcome is what one run of the matrix left: each host's verdict
// counters, the security events, and what each receiver got.
type outcome struct {
	verdicts [3]map[string]float64
	events   []string
	received map[string]int
	fast     [3]map[string]float64
}

// TestFastPathDifferential runs the delivery, attack and security-group
// matrix twice, with
// the fast path off and on, and wants the same verdicts, counters,
// security events and deliveries; with it on, the kernel must really have
// carried the deliveries, and nothing forged may have been delivered.
func TestFastPathDifferential(t *testing.T) {
	prerequisites(t, "curl")
	off := differential(t, "off")
	on := differential(t, "on")
	for h := range 3 {
		if fmt.Sprint(off.verdicts[h]) != fmt.Sprint(on.verdicts[h]) {
			t.Errorf("host %d verdicts differ:\n off %v\n on  %v", h+1, off.verdicts[h], on.verdicts[h])
		}
	}
	if fmt.Sprint(off.events) != fmt.Sprint(on.events) {
		t.Errorf("security events differ:\n off %v\n on  %v", off.events, on.events)
	}
	if fmt.Sprint(off.received) != fmt.Sprint(on.received) {
		t.Errorf("deliveries differ:\n off %v\n on  %v", off.received, on.received)
	}
	t.Logf("verdicts (both runs): %v | %v | %v", on.verdicts[0], on.verdicts[1], on.verdicts[2])
	t.Logf("received (both runs): %v", on.received)
	t.Logf("fast path on: host 1 %v; host 2 %v", on.fast[0], on.fast[1])
	// Each flow's first packet takes the Go story, which installs the entry.
	if n := on.fast[0]["egress_forwarded"]; n < 2*diffN-10 {
		t.Errorf("with the fast path on, host 1 encapsulated %v packets in the kernel; the a→b and a→c flows are %d", n, 2*diffN)
	}
	if n := on.fast[0]["egress_delivered"]; n < diffN-10 {
		t.Errorf("with the fast path on, host 1 delivered %v packets a→e in the kernel; want about %d", n, diffN)
	}
	if n := on.fast[1]["ingress_delivered"]; n < 2*diffN-10 {
		t.Errorf("with the fast path on, host 2 delivered %v packets from the wire in the kernel; want about %d", n, 2*diffN)
	}
}

// diffN is how many datagrams each case of the matrix sends.
const diffN = 100

func differential(t *testing.T, fastpath string) outcome {
	var out outcome
	t.Run("fastpath "+fastpath, func(t *testing.T) {
		ours := leakCheck(t)
		c := newCloudNIC(t, 3, 1, []string{"--nic", "veth", "--fastpath", fastpath, "--metrics", "{underlay}:" + strconv.Itoa(metricsPort)})
		ours.dirs = c.dirs
		red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
		c.ok("subnet", "create", "--vpc", "red", "--cidr", "10.0.2.0/24", "--name", "red-b")
		blue := c.vpc("blue", "10.1.0.0/16", "10.1.1.0/24")
		green := c.vpc("green", "10.2.0.0/16", "10.2.1.0/24")
		a := c.instance("red-a", "a", 0)
		b := c.instance("red-a", "b", 1)
		e := c.instance("red-b", "e", 0)
		bl := c.instance("blue-a", "c", 1)
		g := c.instance("green-a", "d", 0)
		// x's group admits nothing: what reaches it is denied, unless it
		// answers a flow it started (connection tracking).
		c.ok("sg", "create", "--vpc", "red", "--name", "locked")
		x := okJSON[instanceJ](c, "instance", "run", "--subnet", "red-a", "--name", "x", "--host", hostID(1), "--security-group", "locked", "--wait")
		ours.instances = []string{a.ID, b.ID, e.ID, bl.ID, g.ID, x.ID}
		pcx := okJSON[struct {
			ID string `json:"id"`
		}](c, "peering", "create", "--vpc", "red", "--peer-vpc", "blue")
		c.ok("peering", "accept", pcx.ID)
		c.ok("route", "create", "--route-table", red.MainRouteTableID, "--dest", "10.1.0.0/16", "--target", pcx.ID)
		c.ok("route", "create", "--route-table", blue.MainRouteTableID, "--dest", "10.0.0.0/16", "--target", pcx.ID)
		c.ok("sg", "authorize", red.DefaultSG, "--proto", "all", "--cidr", "10.1.0.0/16")
		c.ok("sg", "authorize", blue.DefaultSG, "--proto", "all", "--cidr", "10.0.0.0/16")

		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct{ inst, ip string }{{"b", b.PrivateIP}, {"e", e.PrivateIP}, {"c", bl.PrivateIP}, {"d", g.PrivateIP}} {
			p := c.background(r.inst, []string{udpSinkEnv + "=" + r.ip + ":5000"}, self)
			c.eventually("the UDP sink in "+r.inst, 10*time.Second, func() bool { return strings.Contains(p.out.String(), "ready") })
		}
		// The forged source needs an address in a to bind to.
		forged := "10.0.1.99"
		h, err := netns.GetFromName(nic.NamespaceName(a.ID))
		if err != nil {
			t.Fatal(err)
		}
		nl, err := netlink.NewHandleAt(h)
		if err != nil {
			t.Fatal(err)
		}
		addAddr(t, nl, nic.DeviceName, netip.MustParsePrefix(forged+"/32"))
		nl.Close()
		h.Close()

		before := map[string]int{}
		for _, inst := range []string{"a", "b", "e", "c", "d"} {
			before[inst] = c.udpIn(inst)
		}
		send := func(from, src, dst string) {
			t.Helper()
			spec := fmt.Sprintf("%s:40000 %s:5000 %d", src, dst, diffN)
			if out, code := c.exec(from, 30*time.Second, "env", sendUDPEnv+"="+spec, self); code != 0 {
				t.Fatalf("sending from %s: exit %d\n%s", from, code, out)
			}
		}
		// Deliveries: across hosts, on this host through the router, across the peering.
		send("a", a.PrivateIP, b.PrivateIP)
		send("a", a.PrivateIP, e.PrivateIP)
		send("a", a.PrivateIP, bl.PrivateIP)
		// Refusals: not peered (no route), no mapping, a spoofed source.
		send("a", a.PrivateIP, g.PrivateIP)
		send("a", a.PrivateIP, "10.0.1.77")
		send("a", forged, b.PrivateIP)
		// Security groups: a → x is denied by x's group; x → a, from the
		// port a sent to and to a's, is allowed only as the reply of a's
		// tracked flow (a's group admits only its members).
		send("a", a.PrivateIP, x.PrivateIP)
		p := c.background("a", []string{udpSinkEnv + "=" + a.PrivateIP + ":40000"}, self)
		c.eventually("the UDP sink in a", 10*time.Second, func() bool { return strings.Contains(p.out.String(), "ready") })
		if out, code := c.exec("x", 30*time.Second, "env", fmt.Sprintf("%s=%s:5000 %s:40000 %d", sendUDPEnv, x.PrivateIP, a.PrivateIP, diffN), self); code != 0 {
			t.Fatalf("sending from x: exit %d\n%s", code, out)
		}
		// Forged on the wire, the same inner 5-tuple as a → b, which host 2
		// has a cache entry for: from host 3 (registered, but it shares no
		// VPC with host 2, so not a sender host 2 knows), from a machine that
		// is no host (4), with host 1's outer
		// source but a foreign SourceVPC, with host 1's outer source and a
		// source address a does not own; and garbage.
		h1, h2, h3, spare := underlayAddr(1), underlayAddr(2), underlayAddr(3), c.room.hosts[3]
		aIP, bIP := netip.MustParseAddr(a.PrivateIP), netip.MustParseAddr(b.PrivateIP)
		forge(t, c.room.hosts[2], h3, h2, red.VNI, red.VNI, aIP, bIP, diffN)
		forge(t, spare, underlayAddr(4), h2, red.VNI, red.VNI, aIP, bIP, diffN)
		forge(t, spare, h1, h2, red.VNI, green.VNI, aIP, bIP, diffN)
		forge(t, spare, h1, h2, red.VNI, red.VNI, netip.MustParseAddr(forged), bIP, diffN)
		garbage := make([]byte, 28+40)
		_, _ = rand.Read(garbage[28:])
		packet.IPv4(garbage).Encode(&packet.IPv4Fields{TotalLen: uint16(len(garbage)), TTL: 64, Protocol: packet.ProtoUDP, Src: underlayAddr(4), Dst: h2})
		gu := packet.UDP(garbage[20:])
		gu.SetSrcPort(50000)
		gu.SetDstPort(packet.GenevePort)
		gu.SetLength(uint16(len(gu)))
		gu.SetChecksum(0)
		sendRaw(t, spare, h2, garbage, diffN)

		time.Sleep(2500 * time.Millisecond) // the fast path's counters merge every second
		out.received = map[string]int{}
		for _, inst := range []string{"a", "b", "e", "c", "d"} {
			out.received[inst] = c.udpIn(inst) - before[inst]
		}
		for h := range 3 {
			m := c.metrics(h)
			out.verdicts[h], out.fast[h] = map[string]float64{}, map[string]float64{}
			for k, v := range m {
				if name, ok := strings.CutPrefix(k, `openvpc_host_packets_total{verdict="`); ok && v != 0 {
					out.verdicts[h][strings.TrimSuffix(name, `"}`)] = v
				}
				if name, ok := strings.CutPrefix(k, `openvpc_host_fastpath_total{event="`); ok {
					out.fast[h][strings.TrimSuffix(name, `"}`)] = v
				}
			}
		}
		for _, ev := range okJSON[[]eventJ](c, "events") {
			out.events = append(out.events, fmt.Sprintf("%s %s→%s ×%d", ev.Reason, ev.InnerSrc, ev.InnerDst, ev.Count))
		}
		slices.Sort(out.events)
	})
	return out
}

// udpEchoEnv turns the test binary into a UDP echo server on that address
// (it prints "ready" once bound); udpRTTEnv into its client: "SRC:PORT
// DST:PORT COUNT" sends COUNT datagrams one at a time, each after the
// previous one's echo, and prints each round trip in microseconds.
const (
	udpEchoEnv = "OPENVPC_E2E_UDP_ECHO"
	udpRTTEnv  = "OPENVPC_E2E_UDP_RTT"
)

func udpEcho(addr string) {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	b := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(b[:n], from)
	}
}

func udpRTT(spec string) {
	f := strings.Fields(spec)
	src, err1 := net.ResolveUDPAddr("udp4", f[0])
	dst, err2 := net.ResolveUDPAddr("udp4", f[1])
	n, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		os.Exit(2)
	}
	c, err := net.DialUDP("udp4", src, dst)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b := make([]byte, 64)
	for range n {
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(2 * time.Second))
		if _, err := c.Write(b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if _, err := c.Read(b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(time.Since(start).Microseconds())
		time.Sleep(5 * time.Millisecond)
	}
}
