package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// The internet of these tests: a namespace of its own, with a web server
// on a documentation address, joined to each edge machine by a veth pair.
// The Elastic IP pool is another documentation range; nothing routes
// anywhere else.
var (
	eipPool = netip.MustParsePrefix("198.51.100.0/24")
	webIP   = netip.MustParseAddr("203.0.113.10")
)

// outsideLink is edge k's link to the internet: 192.0.2.(4k+1) on the
// edge, 192.0.2.(4k+2) on the internet's side.
func outsideLink(k int) (edge, inet netip.Addr) {
	return netip.AddrFrom4([4]byte{192, 0, 2, byte(4*k + 1)}), netip.AddrFrom4([4]byte{192, 0, 2, byte(4*k + 2)})
}

// internetCloud is a cloud with two hosts, two edges and an internet.
type internetCloud struct {
	*cloud
	inet  *machine
	edges []*proc
}

func newInternetCloud(t *testing.T) *internetCloud {
	return newInternetCloudNIC(t, []string{"--nic", "tun"})
}

// newInternetCloudNIC is newInternetCloud with the agents' NIC flags.
func newInternetCloudNIC(t *testing.T, nicArgs []string) *internetCloud {
	c := &internetCloud{cloud: newCloudNIC(t, 2, 2, nicArgs, "--eip-pool", eipPool.String(), "--edge-timeout", "2s")}
	c.inet = newMachine(t, c.room.tag+"-inet")
	inetOf[c.room] = c.inet
	hi, err := netlink.NewHandleAt(c.inet.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close()
	up(t, hi, "lo")
	addAddr(t, hi, "lo", netip.PrefixFrom(webIP, 32))
	var hops []*netlink.NexthopInfo
	for k, m := range c.room.hosts[2:] {
		edgeAddr, inetAddr := outsideLink(k)
		he, err := netlink.NewHandleAt(m.ns)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("e%d", k+1)
		if err := he.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "out0"}, PeerName: name, PeerNamespace: netlink.NsFd(int(c.inet.ns))}); err != nil {
			t.Fatalf("veth from edge %d to the internet: %v", k+1, err)
		}
		addAddr(t, he, "out0", netip.PrefixFrom(edgeAddr, 30))
		up(t, he, "out0")
		addAddr(t, hi, name, netip.PrefixFrom(inetAddr, 30))
		up(t, hi, name)
		// The edge machine routes: the internet by default, and (once its
		// edge runs) the Elastic IP pool into the edge's TUN.
		if err := he.RouteAdd(&netlink.Route{Gw: inetAddr.AsSlice()}); err != nil {
			t.Fatalf("default route on edge %d: %v", k+1, err)
		}
		he.Close()
		if out, code := run(t, m.ns, 5*time.Second, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); code != 0 {
			t.Fatalf("forwarding on edge %d: %s", k+1, out)
		}
		hops = append(hops, &netlink.NexthopInfo{Gw: edgeAddr.AsSlice()})
		c.edges = append(c.edges, c.startEdge(k))
	}
	// The pool is announced by both edges: equal-cost paths.
	if err := hi.RouteAdd(poolRoute(hops)); err != nil {
		t.Fatalf("route to the Elastic IP pool: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	web := start(t, c.inet.ns, []string{serveEnv + "=" + net.JoinHostPort(webIP.String(), "80")}, self)
	c.eventually("the internet's web server", 10*time.Second, func() bool {
		_, code := run(t, c.inet.ns, 5*time.Second, "curl", "-s", "-o", "/dev/null", "http://"+webIP.String()+"/")
		select {
		case <-web.done:
			t.Fatalf("web server exited:\n%s", web.out)
		default:
		}
		return code == 0
	})
	c.eventually("both edges to register", 15*time.Second, func() bool {
		out, _ := c.cli("edge", "list")
		return strings.Count(out, " edge ") == 2
	})
	return c
}

func poolRoute(hops []*netlink.NexthopInfo) *netlink.Route {
	return &netlink.Route{Dst: &net.IPNet{IP: eipPool.Addr().AsSlice(), Mask: net.CIDRMask(eipPool.Bits(), 32)}, MultiPath: hops}
}

// edgeOut is how many packets edge k forwarded from hosts to the internet.
func (c *internetCloud) edgeOut(k int) uint64 {
	out, _ := run(c.t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(3+k).String(), "9101")+"/metrics")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "openvpc_edge_packets_total{direction=\"out\"") && strings.Contains(line, `verdict="forwarded"`) {
			f := strings.Fields(line)
			n, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return uint64(n)
		}
	}
	return 0
}

// edgeCounters is what the edges counted, for a failure's message.
func (c *internetCloud) edgeCounters() string {
	var b strings.Builder
	for k := range c.edges {
		out, _ := run(c.t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(3+k).String(), "9101")+"/metrics")
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "openvpc_edge_packets_total") {
				fmt.Fprintf(&b, "%s %s\n", edgeID(k), line)
			}
		}
	}
	return b.String()
}

func edgeID(k int) string { return fmt.Sprintf("e2e-e%d", k+1) }

// startEdge runs `openvpc edge` on edge machine k and routes the pool
// into its outside TUN once it exists.
func (c *internetCloud) startEdge(k int) *proc {
	m := c.room.hosts[2+k]
	p := startFor(c.t, c.root, m.ns, nil, bin, append([]string{"edge", "run", "--server", c.url, "--edge-id", edgeID(k),
		"--underlay", underlayAddr(3 + k).String(), "--outside", "tun:ovpc-out", "--log-level", "warn", "--heartbeat", "400ms",
		"--metrics", net.JoinHostPort(underlayAddr(3+k).String(), "9101")}, c.join(c.t.TempDir(), "edge")...)...)
	he, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		c.t.Fatal(err)
	}
	defer he.Close()
	var link netlink.Link
	c.eventually("edge "+edgeID(k)+"'s outside device up", 10*time.Second, func() bool {
		select {
		case <-p.done:
			c.t.Fatalf("edge exited:\n%s", p.out)
		default:
		}
		// The edge creates the device, then brings it up: a route into
		// a device that is still down is refused.
		link, err = he.LinkByName("ovpc-out")
		return err == nil && link.Attrs().Flags&net.FlagUp != 0
	})
	dst := &net.IPNet{IP: eipPool.Addr().AsSlice(), Mask: net.CIDRMask(eipPool.Bits(), 32)}
	if err := he.RouteAdd(&netlink.Route{Dst: dst, LinkIndex: link.Attrs().Index}); err != nil {
		c.t.Fatalf("route the pool into edge %d: %v", k+1, err)
	}
	return p
}

// TestInternetThroughEdges: an instance with an Elastic IP fetches a page
// from a real web server on the internet, which sees the Elastic IP; the
// internet pings the Elastic IP; without one, nothing gets out; the
// translated packets' checksums are right as tshark reads them; and a
// long download survives the death of the edge carrying it.
func TestInternetThroughEdges(t *testing.T) {
	prerequisites(t, "ping", "curl", "tshark", "bash")
	ours := leakCheck(t)
	c := newInternetCloud(t)
	ours.dirs = c.dirs
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	// The internet pings the Elastic IP: the default group must admit it.
	c.ok("sg", "authorize", red.DefaultSG, "--proto", "icmp", "--cidr", "0.0.0.0/0")
	web := c.instance("red-a", "web", 0)
	bare := c.instance("red-a", "bare", 1)
	ours.instances = []string{web.ID, bare.ID}
	c.ok("igw", "create", "--name", "red-igw")
	c.ok("igw", "attach", "red-igw", "--vpc", "red")
	c.ok("route", "create", "--vpc", "red", "--dest", "0.0.0.0/0", "--target", "red-igw")
	eip := okJSON[struct {
		PublicIP string `json:"publicIp"`
	}](c.cloud, "eip", "allocate", "--name", "web-ip").PublicIP
	c.ok("eip", "associate", "web-ip", "--instance", "web")
	page := "http://" + webIP.String() + "/"

	t.Run("out", func(t *testing.T) {
		c := c.in(t)
		var out string
		var code int
		c.eventually("web to reach the internet", 10*time.Second, func() bool {
			out, code = c.exec("web", 10*time.Second, "curl", "-sS", "--max-time", "3", page)
			return code == 0
		})
		if want := "to " + eip; !strings.Contains(out, want) {
			t.Fatalf("the web server saw %q; want the Elastic IP %s as source", out, eip)
		}
		if out, code := c.exec("bare", 10*time.Second, "curl", "-sS", "--max-time", "2", page); code == 0 {
			t.Fatalf("an instance without an Elastic IP reached the internet:\n%s", out)
		}
	})

	t.Run("in", func(t *testing.T) {
		if out, code := run(t, c.inet.ns, 15*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", eip); code != 0 || !strings.Contains(out, " 0% packet loss") {
			t.Errorf("ping of the Elastic IP from the internet: exit %d\n%s\n%s", code, out, c.edgeCounters())
		}
	})

	t.Run("checksums", func(t *testing.T) {
		checksums(c.in(t), eip, page)
	})

	t.Run("failover", func(t *testing.T) {
		failover(c, t, eip)
	})
}

// checksums captures the translated traffic on both edges' outside links
// (the internet's side) and has tshark verify every checksum of the
// packets leaving with the Elastic IP: IPv4, TCP, UDP and ICMP.
func checksums(c *cloud, eip, page string) {
	t := c.t
	dir := t.TempDir()
	inet := c.inetMachine()
	var caps []*proc
	for _, link := range []string{"e1", "e2"} {
		file := filepath.Join(dir, link+".pcap")
		p := startFor(t, c.root, inet.ns, []string{"TMPDIR=" + dir}, "tshark", "-i", link, "-w", file, "-f", "src host "+eip)
		caps = append(caps, p)
		c.eventually("tshark on "+link, 10*time.Second, func() bool { return strings.Contains(p.out.String(), "Capturing on") })
	}
	// tshark says "Capturing on" a moment before it really captures.
	time.Sleep(1500 * time.Millisecond)
	c.exec("web", 10*time.Second, "curl", "-sS", "--max-time", "3", page)
	c.exec("web", 10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", webIP.String())
	if out, code := c.exec("web", 10*time.Second, "bash", "-c", "echo datagram > /dev/udp/"+webIP.String()+"/9"); code != 0 {
		t.Errorf("sending a UDP datagram from web: exit %d\n%s", code, out)
	}
	time.Sleep(2 * time.Second) // dumpcap writes its buffer out on a timer
	for _, p := range caps {
		p.stop(t)
	}
	counts := map[string]int{}
	var seen strings.Builder
	for _, link := range []string{"e1", "e2"} {
		sum, _ := run(t, inet.ns, 20*time.Second, "tshark", "-r", filepath.Join(dir, link+".pcap"))
		fmt.Fprintf(&seen, "%s:\n%s", link, sum)
		file := filepath.Join(dir, link+".pcap")
		out, code := run(t, inet.ns, 20*time.Second, "tshark", "-r", file, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
			"-o", "udp.check_checksum:TRUE", "-T", "fields", "-e", "ip.proto", "-e", "ip.checksum.status", "-e", "tcp.checksum.status",
			"-e", "udp.checksum.status", "-e", "icmp.checksum_bad")
		if code != 0 {
			t.Fatalf("tshark -r %s: exit %d\n%s", file, code, out)
		}
		for _, line := range strings.Split(out, "\n") { // not trimmed: trailing empty fields count
			f := strings.Split(line, "\t")
			if len(f) < 5 {
				continue // tshark's own notes ("Running as user root…")
			}
			counts[f[0]]++
			for _, status := range f[1:4] {
				if status == "0" { // tshark's "Bad"
					t.Errorf("%s: a packet from %s with a bad checksum: %q", link, eip, line)
				}
			}
			if len(f) > 4 && f[4] != "" {
				t.Errorf("%s: an ICMP packet from %s with a bad checksum: %q", link, eip, line)
			}
		}
	}
	for proto, name := range map[string]string{"1": "ICMP", "6": "TCP", "17": "UDP"} {
		if counts[proto] == 0 {
			t.Errorf("no %s packet from %s was captured (captured by protocol: %v):\n%s", name, eip, counts, seen.String())
		}
	}
}

// inetMachine finds the internet namespace of an internetCloud from its cloud.
func (c *cloud) inetMachine() *machine { return inetOf[c.room] }

var inetOf = map[*room]*machine{}

// failover: a long download runs; the edge carrying it dies (its process
// killed, its route withdrawn as a routing protocol would); the download
// completes, whole, through the other edge.
func failover(c *internetCloud, t *testing.T, eip string) {
	cc := c.in(t)
	dl := cc.background("web", nil, "curl", "-sS", "--limit-rate", "6M", "--max-time", "60", "-o", "/dev/null",
		"-w", "%{size_download}\n", "http://"+webIP.String()+"/big")
	before := [2]uint64{c.edgeOut(0), c.edgeOut(1)}
	time.Sleep(1500 * time.Millisecond)
	// Kill the edge web's host chose for the flow (it carries the ACKs):
	// hosts must notice and move the flow; if the internet sent the data
	// through it too, its route is withdrawn, as a routing protocol would.
	dead, alive := 0, 1
	if c.edgeOut(1)-before[1] > c.edgeOut(0)-before[0] {
		dead, alive = 1, 0
	}
	c.edges[dead].kill()
	hi, err := netlink.NewHandleAt(c.inet.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close()
	edgeAddr, _ := outsideLink(alive)
	if err := hi.RouteReplace(poolRoute([]*netlink.NexthopInfo{{Gw: edgeAddr.AsSlice()}})); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s %.1f s into the download", edgeID(dead), 1.5)
	code := dl.wait(t, 60*time.Second)
	out := strings.TrimSpace(dl.out.String())
	if code != 0 || out != strconv.Itoa(bigSize) {
		t.Fatalf("download after %s died: exit %d, %q bytes (want %d)", edgeID(dead), code, out, bigSize)
	}
	cc.eventually(edgeID(dead)+" to be marked unhealthy", 10*time.Second, func() bool {
		return strings.Contains(cc.ok("edge", "list"), "unhealthy")
	})
}
