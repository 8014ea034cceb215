package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/edge/vpn"
	"github.com/openvpc/openvpc/host/nic"
)

// The VPN scenes' addresses, all documentation ranges inside the test's
// namespaces: the customer gateway's public address, the pool the
// tunnels' outside addresses come from, and the site's own network.
const (
	cgwIP    = "203.0.113.7"
	vpnPool  = "198.51.100.64/28"
	sitePfx  = "192.168.50.0/24"
	siteHost = "192.168.50.10"
)

// needStrongSwan is prerequisites for the VPN scenes: swanctl on the
// path and charon where Debian puts it.
func needStrongSwan(t *testing.T, tools ...string) {
	t.Helper()
	if _, err := os.Stat(vpn.CharonPath); err != nil {
		tools = append(tools, vpn.CharonPath)
	}
	prerequisites(t, append(tools, "swanctl")...)
}

type vpnTunnelJ struct {
	OutsideAddress string `json:"outsideAddress"`
	InsideCidr     string `json:"insideCidr"`
	PreSharedKey   string `json:"preSharedKey"`
	EdgeID         string `json:"edgeId"`
	Preferred      bool   `json:"preferred"`
	Status         struct {
		State  string `json:"state"`
		Detail string `json:"detail"`
	} `json:"status"`
}

type vpnJ struct {
	ID      string       `json:"id"`
	Tunnels []vpnTunnelJ `json:"tunnels"`
	Routes  []string     `json:"routes"`
}

// vpnResources makes red's side of a static VPN to the site: a vgw
// attached to red, a cgw at cgwIP, a connection with a route to the site,
// propagation into red's main route table.
func vpnResources(c *cloud, red vpcJ) vpnJ {
	c.ok("cgw", "create", "--name", "office", "--ip", cgwIP)
	c.ok("vgw", "create", "--name", "red-vgw")
	c.ok("vgw", "attach", "red-vgw", "--vpc", "red")
	v := okJSON[vpnJ](c, "vpn", "create", "--name", "office-vpn", "--cgw", "office", "--vgw", "red-vgw", "--static-routes-only", "--dpd-timeout", "6")
	c.ok("vpn", "route", "add", "office-vpn", "--dest", sitePfx)
	c.ok("route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	return v
}

// TestVPNConfigLoads: what `openvpc vpn config --format strongswan` prints
// is a swanctl.conf a real charon loads whole — both tunnels and both
// keys — while `vpn get` and `vpn list` never show a key.
func TestVPNConfigLoads(t *testing.T) {
	needStrongSwan(t)
	c := newCloudWith(t, 0, 0, "--vpn-pool", vpnPool)
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	v := vpnResources(c, red)
	if len(v.Tunnels) != 2 {
		t.Fatalf("vpn create: %+v", v)
	}
	conf := c.ok("vpn", "config", "office-vpn", "--format", "strongswan")
	var keys []string
	for _, line := range strings.Split(conf, "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(line), "secret = "); ok {
			keys = append(keys, strings.Trim(k, `"`))
		}
	}
	if len(keys) != 2 || keys[0] == keys[1] || len(keys[0]) < 8 {
		t.Fatalf("config has not two keys:\n%s", conf)
	}
	for _, out := range []string{c.ok("vpn", "get", "office-vpn", "-o", "json"), c.ok("vpn", "list", "-o", "json"), c.ok("vpn", "list"), c.ok("vpn", "get", "office-vpn")} {
		for _, k := range keys {
			if strings.Contains(out, k) {
				t.Fatalf("a key is shown outside vpn config:\n%s", out)
			}
		}
	}
	for _, want := range []string{v.ID + "-tunnel1", v.ID + "-tunnel2", "local_ts = " + sitePfx, "remote_ts = 10.0.0.0/16",
		"remote_addrs = " + v.Tunnels[0].OutsideAddress, "remote_addrs = " + v.Tunnels[1].OutsideAddress, "local_addrs = " + cgwIP} {
		if !strings.Contains(conf, want) {
			t.Fatalf("config lacks %q:\n%s", want, conf)
		}
	}
	if _, code := c.cli("vpn", "config", "office-vpn", "--format", "cisco"); code == 0 {
		t.Fatal("an unknown config format was accepted")
	}

	site := newMachine(t, c.room.tag+"-site")
	dir := t.TempDir()
	ch, err := vpn.StartCharon(t.Context(), vpn.CharonConfig{Netns: site.name, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Stop)
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, site.ns, 20*time.Second, "swanctl", "--load-all", "--noprompt", "--file", file, "--uri", "unix://"+ch.Socket())
	if code != 0 || !strings.Contains(out, "successfully loaded 2 connections, 0 unloaded") || strings.Count(out, "loaded ike secret") != 2 {
		t.Fatalf("swanctl --load-all: exit %d\n%s\n%s", code, out, conf)
	}
	out, _ = run(t, site.ns, 10*time.Second, "swanctl", "--list-conns", "--uri", "unix://"+ch.Socket())
	for i, tu := range v.Tunnels {
		if !strings.Contains(out, tu.OutsideAddress) || !strings.Contains(out, v.ID+"-tunnel"+string(rune('1'+i))) {
			t.Fatalf("charon's connections lack tunnel %d (%s):\n%s", i+1, tu.OutsideAddress, out)
		}
	}
	// A VPN to nothing: with the vgw detached there is no config to print.
	c.ok("vgw", "detach", "red-vgw")
	if out, code := c.cli("vpn", "config", "office-vpn"); code == 0 || !strings.Contains(out, "attach") {
		t.Fatalf("config of a detached vgw's connection: exit %d\n%s", code, out)
	}
}

// vpnCloud is a cloud with one host, two VPN edges, an internet, and a
// site on it: a strongSwan customer gateway at cgwIP with an on-premises
// host behind it.
type vpnCloud struct {
	*cloud
	inet, site, onprem *machine
	edges              []*proc
	vpnDirs            []string
	edgeCerts          []string
	siteCharon         *vpn.Charon
}

func newVPNCloud(t *testing.T) *vpnCloud { return newVPNCloudWith(t, 2) }

// newVPNCloudWith is newVPNCloud with edges VPN edges.
func newVPNCloudWith(t *testing.T, edges int) *vpnCloud { return newVPNCloudSpare(t, edges, 0) }

// newVPNCloudSpare is newVPNCloudWith with spare more machines after the
// VPN edges (room.hosts[1+edges:]) that run nothing yet.
func newVPNCloudSpare(t *testing.T, edges, spare int) *vpnCloud {
	c := &vpnCloud{cloud: newCloudWith(t, 1, edges+spare, "--vpn-pool", vpnPool, "--edge-timeout", "2s")}
	c.inet = newMachine(t, c.room.tag+"-inet")
	c.site = newMachine(t, c.room.tag+"-site")
	c.onprem = newMachine(t, c.room.tag+"-onp")
	hi, err := netlink.NewHandleAt(c.inet.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close()
	up(t, hi, "lo")
	for k, m := range c.room.hosts[1 : 1+edges] {
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
		if err := he.RouteAdd(&netlink.Route{Gw: inetAddr.AsSlice()}); err != nil {
			t.Fatalf("default route on edge %d: %v", k+1, err)
		}
		he.Close()
		if out, code := run(t, m.ns, 5*time.Second, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); code != 0 {
			t.Fatalf("forwarding on edge %d: %s", k+1, out)
		}
		c.edges = append(c.edges, c.startVPNEdge(k))
	}
	// The site: on the internet at cgwIP, the on-premises network behind.
	hs, err := netlink.NewHandleAt(c.site.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	up(t, hs, "lo")
	if err := hi.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "site"}, PeerName: "i0", PeerNamespace: netlink.NsFd(int(c.site.ns))}); err != nil {
		t.Fatal(err)
	}
	addAddr(t, hi, "site", netip.MustParsePrefix("203.0.113.1/24"))
	up(t, hi, "site")
	addAddr(t, hs, "i0", netip.MustParsePrefix(cgwIP+"/24"))
	up(t, hs, "i0")
	if err := hs.RouteAdd(&netlink.Route{Gw: net.ParseIP("203.0.113.1")}); err != nil {
		t.Fatal(err)
	}
	if err := hs.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(c.onprem.ns))}); err != nil {
		t.Fatal(err)
	}
	addAddr(t, hs, "lan0", netip.MustParsePrefix("192.168.50.1/24"))
	up(t, hs, "lan0")
	for _, m := range []*machine{c.site, c.inet} {
		if out, code := run(t, m.ns, 5*time.Second, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); code != 0 {
			t.Fatalf("forwarding in %s: %s", m.name, out)
		}
	}
	ho, err := netlink.NewHandleAt(c.onprem.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	up(t, ho, "lo")
	addAddr(t, ho, "eth0", netip.MustParsePrefix(siteHost+"/24"))
	up(t, ho, "eth0")
	if err := ho.RouteAdd(&netlink.Route{Gw: net.ParseIP("192.168.50.1")}); err != nil {
		t.Fatal(err)
	}
	c.eventually("the edges to register", 15*time.Second, func() bool {
		out, _ := c.cli("edge", "list")
		return strings.Count(out, " edge ") == edges
	})
	return c
}

// in is c for subtest t.
func (c *vpnCloud) in(t *testing.T) *vpnCloud {
	cc := *c
	cc.cloud = c.cloud.in(t)
	return &cc
}

// startVPNEdge runs `openvpc edge run --vpn` on edge machine k.
func (c *vpnCloud) startVPNEdge(k int) *proc {
	dir := c.t.TempDir()
	c.vpnDirs = append(c.vpnDirs, dir)
	c.edgeCerts = append(c.edgeCerts, c.t.TempDir())
	return c.startVPNEdgeIn(k, dir)
}

// startVPNEdgeIn is startVPNEdge keeping the tunnels' state in dir.
func (c *vpnCloud) startVPNEdgeIn(k int, dir string) *proc {
	m := c.room.hosts[1+k]
	return startFor(c.t, c.root, m.ns, nil, bin, append([]string{"edge", "run", "--server", c.url, "--edge-id", edgeID(k),
		"--underlay", underlayAddr(2 + k).String(), "--vpn", "tun:ovpc-vpn", "--vpn-dir", dir, "--log-level", "warn", "--heartbeat", "400ms",
		"--metrics", net.JoinHostPort(underlayAddr(2+k).String(), "9101")}, c.join(c.edgeCerts[k], "edge")...)...)
}

// edgeIndex is k of edge id e2e-e(k+1).
func edgeIndex(t *testing.T, id string) int {
	for k := range 4 {
		if edgeID(k) == id {
			return k
		}
	}
	t.Fatalf("tunnel on unknown edge %q", id)
	return -1
}

// routeTunnels makes the internet route each tunnel's outside address to
// the edge it is placed on (as the edge's upstream would learn it).
func (c *vpnCloud) routeTunnels(v vpnJ) {
	hi, err := netlink.NewHandleAt(c.inet.ns)
	if err != nil {
		c.t.Fatal(err)
	}
	defer hi.Close()
	for _, tu := range v.Tunnels {
		edgeAddr, _ := outsideLink(edgeIndex(c.t, tu.EdgeID))
		a := netip.MustParseAddr(tu.OutsideAddress)
		if err := hi.RouteReplace(&netlink.Route{Dst: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}, Gw: edgeAddr.AsSlice()}); err != nil {
			c.t.Fatalf("route %v to its edge: %v", a, err)
		}
	}
}

// startSite runs the customer gateway's charon, configured with exactly
// what `vpn config` printed, and loads it: the site starts both tunnels.
func (c *vpnCloud) startSite(conf string, dpd time.Duration) {
	dir := c.t.TempDir()
	tries, timeout, base := vpn.DeadPeerRetransmits(dpd)
	ch, err := vpn.StartCharon(c.t.Context(), vpn.CharonConfig{Netns: c.site.name, Dir: dir, RetransmitTries: tries, RetransmitTimeout: timeout, RetransmitBase: base})
	if err != nil {
		c.t.Fatal(err)
	}
	c.root.Cleanup(ch.Stop)
	c.siteCharon = ch
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if out, code := run(c.t, c.site.ns, 20*time.Second, "swanctl", "--load-all", "--noprompt", "--file", file, "--uri", "unix://"+ch.Socket()); code != 0 {
		c.t.Fatalf("swanctl --load-all: exit %d\n%s", code, out)
	}
}

// tunnelsUp waits until n tunnels of the connection are up.
func (c *vpnCloud) tunnelsUp(id string, n int, d time.Duration) vpnJ {
	var v vpnJ
	for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		v = okJSON[vpnJ](c.cloud, "vpn", "get", id)
		up := 0
		for _, tu := range v.Tunnels {
			if tu.Status.State == "up" {
				up++
			}
		}
		if up >= n {
			return v
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %d tunnels of %s up:\n%s\n%s", d, n, id, c.ok("vpn", "get", id), c.debugVPN())
		}
	}
}

// debugVPN is what a failed VPN scene shows: the site's charon log and
// the edges' output.
func (c *vpnCloud) debugVPN() string {
	var b strings.Builder
	if c.siteCharon != nil {
		log, _ := os.ReadFile(c.siteCharon.Log())
		out, _ := os.ReadFile(filepath.Join(filepath.Dir(c.siteCharon.Log()), "charon.out"))
		fmt.Fprintf(&b, "site charon log (selected):\n%s\n%s\n", notable(string(log)), out)
	}
	for k, d := range c.vpnDirs {
		logs, _ := filepath.Glob(filepath.Join(d, "*", "charon.log"))
		for _, l := range logs {
			b2, _ := os.ReadFile(l)
			fmt.Fprintf(&b, "edge %d tunnel charon %s (selected):\n%s\n", k+1, l, notable(string(b2)))
		}
	}
	for k, e := range c.edges {
		fmt.Fprintf(&b, "edge %d:\n%s\n", k+1, tail(e.out.String(), 3000))
	}
	return b.String()
}

// notable keeps the lines of a charon log that say what happened.
func notable(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, w := range []string{"CHILD_SA", "failed", "established", "TS_", "NO_PROPOSAL", "AUTH", "error", "deleting", "closing", "unacceptable", "installing"} {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return tail(strings.Join(out, "\n"), 4000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestVPNSiteToSite: a strongSwan customer gateway configured with the
// output of `vpn config` brings both tunnels up to two edges; an
// instance and an on-premises host behind the gateway ping, curl and
// iperf3 each other; the edge's outside carries only IKE and ESP in UDP;
// a VPC without the propagated route reaches nothing; killing the charon
// of the tunnel carrying the traffic moves it to the other tunnel.
func TestVPNSiteToSite(t *testing.T) {
	needStrongSwan(t, "ping", "curl", "iperf3", "tshark")
	// What this test made must go (not leakCheck: its look for any room's
	// namespaces trips over other tests running on the same machine).
	var conns, insts []string // the edges' tunnel namespaces end with conns' ids
	t.Cleanup(func() {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			for _, id := range conns {
				if strings.HasPrefix(e.Name(), "ovpn-") && strings.HasSuffix(e.Name(), id[len(id)-6:]) {
					t.Errorf("tunnel namespace %s survived its edge", e.Name())
				}
			}
			for _, id := range insts {
				if e.Name() == nic.NamespaceName(id) {
					t.Errorf("instance namespace %s survived the test", e.Name())
				}
			}
		}
	})
	c := newVPNCloud(t)
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	v := vpnResources(c.cloud, red)
	conns = append(conns, v.ID)
	c.routeTunnels(v)
	if v.Tunnels[0].EdgeID == v.Tunnels[1].EdgeID {
		t.Fatalf("both tunnels on %s; want two edges", v.Tunnels[0].EdgeID)
	}
	const dpd = 6 * time.Second
	c.startSite(c.ok("vpn", "config", "office-vpn"), dpd)
	v = c.tunnelsUp(v.ID, 2, 60*time.Second)
	a := c.instance("red-a", "red-a", 0)
	insts = append(insts, a.ID)

	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			tr, _ := c.cli("trace", "red-a", siteHost, "--proto", "icmp", "--live")
			for k := range 2 {
				m, _ := run(t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(2+k).String(), "9101")+"/metrics")
				for _, l := range strings.Split(m, "\n") {
					if strings.HasPrefix(l, "openvpc_edge_packets_total") && !strings.HasSuffix(l, " 0") {
						tr += fmt.Sprintf("\nedge %d: %s", k+1, l)
					}
				}
			}
			t.Fatalf("the instance does not reach the site:\n%s\n%s\n%s\n%s\n%s", c.ok("vpn", "get", v.ID), c.ok("route-table", "get", red.MainRouteTableID),
				c.ok("edge", "list", "-o", "json"), tr, c.debugVPN())
		}
	}
	c.mustPing("red-a", siteHost)
	// The office reaches in once red's security group lets it.
	c.ok("sg", "authorize", red.DefaultSG, "--proto", "all", "--cidr", sitePfx)
	c.eventually("the site to reach the instance", 10*time.Second, func() bool {
		_, code := run(t, c.onprem.ns, 5*time.Second, "ping", "-c", "1", "-W", "1", a.PrivateIP)
		return code == 0
	})
	if out, code := run(t, c.onprem.ns, 15*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", a.PrivateIP); code != 0 || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping from on-premises to the instance: exit %d\n%s", code, out)
	}
	t.Log(c.ok("vpn", "list"))
	t.Log(c.ok("route-table", "get", red.MainRouteTableID))
	// Each edge counts its tunnel up in Prometheus.
	for k := range 2 {
		m, _ := run(t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(2+k).String(), "9101")+"/metrics")
		if !strings.Contains(m, `openvpc_vpn_tunnel_up{`) || !strings.Contains(m, `vpn="`+v.ID+`"} 1`) {
			t.Fatalf("edge %d's metrics do not show its tunnel up:\n%s", k+1, m)
		}
	}

	t.Run("curl", func(t *testing.T) {
		c := c.in(t)
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		start(t, c.onprem.ns, []string{serveEnv + "=" + siteHost + ":8080"}, self)
		c.eventually("the on-premises web server", 10*time.Second, func() bool {
			_, code := c.exec("red-a", 5*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+siteHost+":8080/")
			return code == 0
		})
		c.mustCurl("red-a", siteHost, a.PrivateIP)
		c.httpServer("red-a", a.PrivateIP)
		out, code := run(t, c.onprem.ns, 10*time.Second, "curl", "-sS", "--max-time", "5", "http://"+a.PrivateIP+":8080/")
		if want := "hello from " + a.PrivateIP + ":8080 to " + siteHost; code != 0 || !strings.Contains(out, want) {
			t.Fatalf("curl from on-premises: exit %d, want %q\n%s", code, want, out)
		}
	})
	t.Run("iperf3", func(t *testing.T) {
		c := c.in(t)
		start(t, c.onprem.ns, nil, "iperf3", "-s", "-1", "-B", siteHost)
		var out string
		var code int
		c.eventually("iperf3 on-premises", 10*time.Second, func() bool {
			out, code = c.exec("red-a", 30*time.Second, "iperf3", "-c", siteHost, "-t", "3", "-J")
			return !strings.Contains(out, "Connection refused")
		})
		t.Logf("iperf3 instance → on-premises through the VPN: %.0f Mbit/s", iperfMbps(t, out, code))
		c.background("red-a", nil, "iperf3", "-s", "-1", "-B", a.PrivateIP)
		var rout string
		c.eventually("iperf3 in the instance", 10*time.Second, func() bool {
			rout, code = run(t, c.onprem.ns, 30*time.Second, "iperf3", "-c", a.PrivateIP, "-t", "3", "-J")
			return !strings.Contains(rout, "Connection refused")
		})
		t.Logf("iperf3 on-premises → instance through the VPN: %.0f Mbit/s", iperfMbps(t, rout, code))
	})
	t.Run("tshark", func(t *testing.T) {
		// The preferred tunnel's edge: its outside carries IKE and ESP in
		// UDP, never a packet of the VPC or the site in the clear.
		c := c.in(t)
		v := okJSON[vpnJ](c.cloud, "vpn", "get", v.ID)
		k := -1
		for _, tu := range v.Tunnels {
			if tu.Preferred {
				k = edgeIndex(t, tu.EdgeID)
			}
		}
		if k < 0 {
			t.Fatalf("no preferred tunnel: %+v", v.Tunnels)
		}
		capture := start(t, c.room.hosts[1+k].ns, []string{"TMPDIR=" + t.TempDir()}, "tshark", "-i", "out0", "-l", "-f", "ip",
			"-T", "fields", "-E", "separator=|", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "udp.port", "-e", "esp.spi")
		c.eventually("tshark to capture", 15*time.Second, func() bool { return strings.Contains(capture.out.String(), "Capturing on") })
		c.mustPing("red-a", siteHost)
		if _, code := run(t, c.onprem.ns, 10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", a.PrivateIP); code != 0 {
			t.Fatal("ping from on-premises during the capture failed")
		}
		time.Sleep(500 * time.Millisecond)
		capture.stop(t)
		esp := 0
		for _, line := range strings.Split(capture.out.String(), "\n") {
			f := strings.Split(line, "|")
			if len(f) != 5 || f[0] == "" {
				continue
			}
			if f[2] != "17" || !(strings.Contains(f[3], "4500") || strings.Contains(f[3], "500")) || strings.Contains(line, a.PrivateIP) || strings.Contains(line, siteHost) {
				t.Fatalf("the edge's outside carried something else than IKE and ESP in UDP to the customer gateway: %q\n%s", line, capture.out)
			}
			if f[4] != "" {
				esp++
			}
		}
		// The edge sends 3 requests and 3 replies; the site answers over
		// whichever tunnel it likes (here, maybe the other one).
		if esp < 6 {
			t.Fatalf("tshark saw %d ESP packets for 6 pings each way:\n%s", esp, capture.out)
		}
	})
	t.Run("no-route", func(t *testing.T) {
		// A VPC without the propagated route cannot reach the site.
		c := c.in(t)
		c.vpc("blue", "10.1.0.0/16", "10.1.1.0/24")
		insts = append(insts, c.instance("blue-a", "blue-a", 0).ID)
		if _, code := c.exec("blue-a", 10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", siteHost); code == 0 {
			t.Fatal("blue reached the site without a route to it")
		}
		if out, _ := c.cli("trace", "blue-a", siteHost, "--proto", "icmp"); !strings.Contains(out, "no-route") {
			t.Fatalf("trace from blue to the site does not say no-route:\n%s", out)
		}
	})
	t.Run("failover", func(t *testing.T) {
		c.failover(t, v.ID, a)
	})
	t.Run("wrong-psk", func(t *testing.T) {
		// A customer gateway with the wrong keys never brings a tunnel up,
		// and vpn get says why.
		c := c.in(t)
		bad := okJSON[vpnJ](c.cloud, "vpn", "create", "--name", "bad-vpn", "--cgw", "office", "--vgw", "red-vgw", "--static-routes-only")
		conns = append(conns, bad.ID)
		c.ok("vpn", "route", "add", "bad-vpn", "--dest", "192.168.51.0/24")
		bad = okJSON[vpnJ](c.cloud, "vpn", "get", "bad-vpn")
		c.routeTunnels(bad)
		conf := c.ok("vpn", "config", "bad-vpn")
		var wrong []string
		for _, line := range strings.Split(conf, "\n") {
			if k, ok := strings.CutPrefix(strings.TrimSpace(line), "secret = "); ok {
				line = strings.Replace(line, k, `"wrong.key_`+strconv.Itoa(len(wrong))+`"`, 1)
			}
			wrong = append(wrong, line)
		}
		good := c.ok("vpn", "config", "office-vpn")
		file := filepath.Join(t.TempDir(), "swanctl.conf")
		// One file with both connections: --load-all unloads what it lacks.
		both := strings.Replace(good, "connections {\n", "connections {\n"+section(strings.Join(wrong, "\n"), "connections"), 1)
		both = strings.Replace(both, "secrets {\n", "secrets {\n"+section(strings.Join(wrong, "\n"), "secrets"), 1)
		if err := os.WriteFile(file, []byte(both), 0o600); err != nil {
			t.Fatal(err)
		}
		// The site connects once both edges have loaded the new
		// connection (they say they are waiting for it): a customer
		// gateway that knocks earlier is refused (no IKE config yet) and
		// charon does not retry a refusal, which is no test of the keys.
		c.eventually("bad-vpn's tunnels loaded on their edges", 30*time.Second, func() bool {
			n := 0
			for _, tu := range okJSON[vpnJ](c.cloud, "vpn", "get", "bad-vpn").Tunnels {
				if strings.Contains(tu.Status.Detail, "waiting for the customer gateway") {
					n++
				}
			}
			return n == 2
		})
		if out, code := run(t, c.site.ns, 20*time.Second, "swanctl", "--load-all", "--noprompt", "--file", file, "--uri", "unix://"+c.siteCharon.Socket()); code != 0 {
			t.Fatalf("swanctl --load-all: exit %d\n%s", code, out)
		}
		var got vpnJ
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			got = okJSON[vpnJ](c.cloud, "vpn", "get", "bad-vpn")
			said := 0
			for _, tu := range got.Tunnels {
				if tu.Status.State == "up" {
					t.Fatalf("a tunnel with the wrong key is up: %+v", got.Tunnels)
				}
				if strings.Contains(tu.Status.Detail, "pre-shared key") {
					said++
				}
			}
			if said == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("vpn get does not say the keys are wrong:\n%s\n%s", c.ok("vpn", "get", "bad-vpn"), c.debugVPN())
			}
		}
		t.Logf("wrong keys: %s", got.Tunnels[0].Status.Detail)
		// The good connection is untouched.
		c.mustPing("red-a", siteHost)
	})
}

// section is the body of a top-level section (connections, secrets) of a
// swanctl.conf, without its braces.
func section(conf, name string) string {
	i := strings.Index(conf, name+" {\n")
	if i < 0 {
		return ""
	}
	body := conf[i+len(name)+3:]
	depth := 1
	for j, r := range body {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return body[:j]
			}
		}
	}
	return ""
}

// iperfMbps reads iperf3's JSON and fails on a broken path.
func iperfMbps(t *testing.T, out string, code int) float64 {
	t.Helper()
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("iperf3: exit %d\n%s", code, out)
	}
	mbps := r.End.SumReceived.BitsPerSecond / 1e6
	if mbps < 5 {
		t.Fatalf("iperf3: %.1f Mbit/s is not a working path", mbps)
	}
	return mbps
}

// failover kills the charon of the tunnel carrying the traffic during a
// ping from the instance to the on-premises host: the other tunnel takes
// over and the ping goes on; what was lost is logged.
func (c *vpnCloud) failover(t *testing.T, id string, a instanceJ) {
	cc := c.cloud.in(t)
	v := okJSON[vpnJ](cc, "vpn", "get", id)
	n := -1
	for i, tu := range v.Tunnels {
		if tu.Preferred {
			n = i
		}
	}
	if n < 0 {
		t.Fatalf("no preferred tunnel: %+v", v.Tunnels)
	}
	k := edgeIndex(t, v.Tunnels[n].EdgeID)
	const interval, count = 0.1, 250
	ping := cc.background("red-a", nil, "ping", "-c", strconv.Itoa(count), "-i", fmt.Sprint(interval), "-W", "1", siteHost)
	time.Sleep(2 * time.Second)
	// The tunnel's namespace ends with its number and the connection's id.
	suffix := fmt.Sprintf("%d%s", n, id[len(id)-6:])
	entries, _ := os.ReadDir("/run/netns")
	killed := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "ovpn-") || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		out, _ := run(t, c.room.hosts[1+k].ns, 5*time.Second, "ip", "netns", "pids", e.Name())
		for _, f := range strings.Fields(out) {
			pid, err := strconv.Atoi(f)
			if err == nil && pid > 1 {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		}
	}
	if killed == 0 {
		t.Fatalf("found no charon of tunnel %d (namespace *%s) to kill", n+1, suffix)
	}
	killedAt := time.Now()
	cc.eventually("the other tunnel to carry the traffic", 30*time.Second, func() bool {
		v = okJSON[vpnJ](cc, "vpn", "get", id)
		return v.Tunnels[1-n].Preferred
	})
	moved := time.Since(killedAt)
	ping.wait(t, 60*time.Second)
	out := ping.out.String()
	var sent, got int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(l, "%d packets transmitted, %d received", &sent, &got)
		}
	}
	lost := sent - got
	t.Logf("failover: tunnel %d's charon killed; tunnel %d preferred after %v; ping every %.1f s: %d of %d lost (about %.1f s without replies)",
		n+1, 2-n, moved.Round(100*time.Millisecond), interval, lost, sent, float64(lost)*interval)
	if sent != count || got == 0 || lost > count/2 {
		t.Fatalf("ping through the failover: %d sent, %d received\n%s", sent, got, out)
	}
	// The last pings were answered: traffic runs on the other tunnel.
	if !strings.Contains(out[strings.LastIndex(out, "icmp_seq="+strconv.Itoa(count-5)):], "bytes from") {
		t.Fatalf("the last pings were not answered:\n%s", tail(out, 2000))
	}
	if ev := cc.ok("events"); !strings.Contains(ev, "vpn-tunnel-down (operational)") {
		t.Fatalf("no vpn-tunnel-down event:\n%s", ev)
	}
}

// TestVPNOneEdgeRestart: with one VPN edge both tunnels sit on it and the
// site's prefixes go into one of them; the edge killed (SIGKILL, a crash)
// and started again with the same --vpn-dir removes the namespaces the
// crashed run left, brings both tunnels back, and traffic flows again.
func TestVPNOneEdgeRestart(t *testing.T) {
	needStrongSwan(t, "ping")
	c := newVPNCloudWith(t, 1)
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	v := vpnResources(c.cloud, red)
	if v.Tunnels[0].EdgeID != edgeID(0) || v.Tunnels[1].EdgeID != edgeID(0) {
		t.Fatalf("tunnels on %s and %s; want both on the one edge", v.Tunnels[0].EdgeID, v.Tunnels[1].EdgeID)
	}
	c.routeTunnels(v)
	c.startSite(c.ok("vpn", "config", "office-vpn"), 6*time.Second)
	c.tunnelsUp(v.ID, 2, 60*time.Second)
	c.instance("red-a", "red-a", 0)
	reach := func(what string) {
		c.eventually(what, 30*time.Second, func() bool {
			_, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost)
			return code == 0
		})
		c.mustPing("red-a", siteHost)
	}
	reach("the instance to reach the site over one edge")

	owned, err := os.ReadFile(filepath.Join(c.vpnDirs[0], "namespaces"))
	if err != nil || len(strings.Fields(string(owned))) != 2 {
		t.Fatalf("the edge's namespaces file: %q %v", owned, err)
	}
	t.Cleanup(func() {
		// Should the restarted edge fail, what the crashed one left goes here.
		for _, ns := range strings.Fields(string(owned)) {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
				t.Errorf("tunnel namespace %s survived the test", ns)
				_ = netns.DeleteNamed(ns)
			}
		}
	})
	c.edges[0].kill()
	for _, ns := range strings.Fields(string(owned)) {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			t.Fatalf("namespace %s went with the crashed edge already (%v): the restart would have nothing to clean", ns, err)
		}
	}
	c.edges[0] = c.startVPNEdgeIn(0, c.vpnDirs[0])
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		left := 0
		for _, ns := range strings.Fields(string(owned)) {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted edge left %d namespaces of the crashed one:\n%s", left, c.edges[0].out)
		}
	}
	c.tunnelsUp(v.ID, 1, 60*time.Second)
	reach("the instance to reach the site after the edge's restart")
}
