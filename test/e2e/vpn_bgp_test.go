package e2e

import (
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

	"github.com/openvpc/openvpc/test/frr"
)

// vpnBGPJ is `vpn get` of a BGP connection: each tunnel with its session.
type vpnBGPJ struct {
	ID      string `json:"id"`
	Tunnels []struct {
		InsideCidr string `json:"insideCidr"`
		EdgeID     string `json:"edgeId"`
		Preferred  bool   `json:"preferred"`
		Status     struct {
			State string `json:"state"`
			Bgp   struct {
				State   string   `json:"state"`
				Learned []string `json:"learned"`
				Reason  string   `json:"reason"`
			} `json:"bgp"`
		} `json:"status"`
	} `json:"tunnels"`
}

// vpnRoute is the origin of the active route for dest in route table rtb
// and its target ("", "" when none is active).
func vpnRoute(c *cloud, rtb, dest string) (origin, target string) {
	rt := okJSON[struct {
		Routes []struct {
			DestinationCidr string `json:"destinationCidr"`
			Target          string `json:"target"`
			Origin          string `json:"origin"`
			State           string `json:"state"`
			InactiveReason  string `json:"inactiveReason"`
		} `json:"routes"`
	}](c, "route-table", "get", rtb)
	for _, r := range rt.Routes {
		if r.DestinationCidr == dest && r.InactiveReason == "" {
			return r.Origin, r.Target
		}
	}
	return "", ""
}

// TestVPNBGP: a BGP connection. The site's strongSwan runs what `vpn
// config` prints and its FRR bgpd what `vpn config --format frr` prints;
// both tunnels' sessions come up, the site's prefix appears in the route
// table with origin VPN_BGP and an instance reaches the on-premises host
// (ping, curl), while the site sending from a prefix no session learned
// is dropped (spoofed-source); the preferred tunnel's session shut down at
// the site withdraws the route from that tunnel and traffic continues over
// the other; the other site then silent, the edge's hold timer ends that
// session too and the route leaves the table.
func TestVPNBGP(t *testing.T) {
	needStrongSwan(t, "ping", "curl", "vtysh", frr.Bgpd)
	var conns []string
	t.Cleanup(func() {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			for _, id := range conns {
				if strings.HasPrefix(e.Name(), "ovpn-") && strings.HasSuffix(e.Name(), id[len(id)-6:]) {
					t.Errorf("tunnel namespace %s survived its edge", e.Name())
				}
			}
		}
	})
	c := newVPNCloud(t)
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	c.ok("cgw", "create", "--name", "office", "--ip", cgwIP, "--asn", "65010")
	c.ok("vgw", "create", "--name", "red-vgw")
	c.ok("vgw", "attach", "red-vgw", "--vpc", "red")
	v := okJSON[vpnBGPJ](c.cloud, "vpn", "create", "--name", "office-vpn", "--cgw", "office", "--vgw", "red-vgw", "--dpd-timeout", "6")
	conns = append(conns, v.ID)
	c.ok("route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	c.routeTunnels(okJSON[vpnJ](c.cloud, "vpn", "get", v.ID))
	if v.Tunnels[0].EdgeID == v.Tunnels[1].EdgeID {
		t.Fatalf("both tunnels on %s; want two edges", v.Tunnels[0].EdgeID)
	}
	// The site's inside addresses (the /30s' second hosts), as the config says.
	hs, err := netlink.NewHandleAt(c.site.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	var amazon [2]netip.Addr
	for i, tu := range v.Tunnels {
		p := netip.MustParsePrefix(tu.InsideCidr)
		amazon[i] = p.Addr().Next()
		addAddr(t, hs, "lo", netip.PrefixFrom(amazon[i].Next(), 32))
	}
	sw := c.ok("vpn", "config", "office-vpn")
	c.startSite(sw, 6*time.Second)
	c.tunnelsUp(v.ID, 2, 60*time.Second)
	conf := c.ok("vpn", "config", "office-vpn", "--format", "frr", "--announce", sitePfx)
	if err := frr.Check(conf); err != nil {
		t.Fatalf("bgpd -C refuses what vpn config --format frr printed: %v\n%s", err, conf)
	}
	// The instance first, so that the time from bgpd's start to its first
	// answered ping is how long a learned prefix takes to be usable.
	a := c.instance("red-a", "red-a", 0)
	router := frr.Start(t, "/run/netns/"+c.site.name, conf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("site bgpd:\n%s", tail(router.Log(), 4000))
		}
	})
	started := time.Now()
	c.eventually("both tunnels' BGP sessions to learn the site's prefix", 60*time.Second, func() bool {
		v = okJSON[vpnBGPJ](c.cloud, "vpn", "get", v.ID)
		for _, tu := range v.Tunnels {
			if tu.Status.Bgp.State != "established" || !slices.Contains(tu.Status.Bgp.Learned, sitePfx) {
				return false
			}
		}
		return true
	})
	established := time.Since(started)
	for i := range 2 {
		if s, err := router.NeighborState(amazon[i]); err != nil || s != "Established" {
			t.Fatalf("the site's bgpd: neighbor %v (tunnel %d) %q %v", amazon[i], i+1, s, err)
		}
	}
	if routes, _ := router.Routes(); !slices.Contains(routes, netip.MustParsePrefix("10.0.0.0/16")) {
		t.Fatalf("the site did not learn the VPC's CIDR: %v", routes)
	}
	if o, tg := vpnRoute(c.cloud, red.MainRouteTableID, sitePfx); o != "vpn-bgp" || tg != v.ID {
		t.Fatalf("route to %s: origin %q target %q, want vpn-bgp via %s\n%s", sitePfx, o, tg, v.ID, c.ok("route-table", "get", red.MainRouteTableID))
	}
	t.Logf("sessions established and the prefix propagated %v after bgpd started", established.Round(100*time.Millisecond))
	// Each edge counts its tunnel's session in Prometheus.
	for k := range 2 {
		m, _ := run(t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(2+k).String(), "9101")+"/metrics")
		if !strings.Contains(m, "openvpc_vpn_bgp_established{") || !strings.Contains(m, "openvpc_vpn_bgp_learned_prefixes{") {
			t.Fatalf("edge %d's metrics lack the BGP session:\n%s", k+1, m)
		}
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "openvpc_vpn_bgp_") && !strings.HasSuffix(l, " 1") {
				t.Fatalf("edge %d: %s, want 1 (established, one prefix)", k+1, l)
			}
		}
	}
	t.Log(c.ok("vpn", "get", v.ID))

	var usable time.Duration
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost); code == 0 {
			usable = time.Since(started)
			break
		}
		if time.Now().After(deadline) {
			if d, err := time.ParseDuration(os.Getenv("OPENVPC_DEBUG_PAUSE")); err == nil {
				t.Logf("pausing %v to debug", d)
				time.Sleep(d)
			}
			tr, _ := c.cli("trace", "red-a", siteHost, "--proto", "icmp", "--live")
			t.Fatalf("the instance does not reach the site:\n%s\n%s\n%s\n%s\n%s", c.ok("vpn", "get", v.ID), c.ok("route-table", "get", red.MainRouteTableID), tr, c.debugVPN(), c.debugBGPRoutes(v.ID))
		}
	}
	c.mustPing("red-a", siteHost)
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
	t.Logf("bgpd started → first ping from the instance answered: %v", usable.Round(100*time.Millisecond))

	// The site sending from a prefix no session learned is dropped at the
	// edge and raises a security event.
	forged := "198.51.100.200"
	addAddr(t, hs, "lo", netip.MustParsePrefix(forged+"/32"))
	c.ok("sg", "authorize", red.DefaultSG, "--proto", "all", "--cidr", "0.0.0.0/0")
	if _, code := run(t, c.site.ns, 5*time.Second, "ping", "-c", "2", "-i", "0.3", "-W", "1", "-I", forged, a.PrivateIP); code == 0 {
		t.Fatalf("the site reached the instance from %s, a prefix BGP did not learn", forged)
	}
	c.eventually("a spoofed-source event for the site's unlearned source", 10*time.Second, func() bool {
		return slices.ContainsFunc(okJSON[[]eventJ](c.cloud, "events"), func(e eventJ) bool { return e.Reason == "spoofed-source" && e.InnerSrc == forged })
	})
	// So is the site sending from inside the VPC's own CIDR, which no route
	// to the VPN can make legitimate (the tunnel's selectors, 0.0.0.0/0 as
	// on AWS, let the site's gateway carry it).
	insider := "10.0.1.250"
	addAddr(t, hs, "lo", netip.MustParsePrefix(insider+"/32"))
	if _, code := run(t, c.site.ns, 5*time.Second, "ping", "-c", "2", "-i", "0.3", "-W", "1", "-I", insider, a.PrivateIP); code == 0 {
		t.Fatalf("the site reached the instance from %s, inside the VPC's CIDR", insider)
	}
	c.eventually("a spoofed-source event for the site's source inside the VPC", 10*time.Second, func() bool {
		return slices.ContainsFunc(okJSON[[]eventJ](c.cloud, "events"), func(e eventJ) bool { return e.Reason == "spoofed-source" && e.InnerSrc == insider })
	})
	// From the learned prefix it passes.
	c.eventually("the on-premises host to reach the instance", 10*time.Second, func() bool {
		_, code := run(t, c.onprem.ns, 5*time.Second, "ping", "-c", "1", "-W", "1", a.PrivateIP)
		return code == 0
	})

	// The preferred tunnel's session shut down at the site (a Cease): the
	// route leaves that tunnel, the other carries the traffic.
	n := -1
	for i, tu := range v.Tunnels {
		if tu.Preferred {
			n = i
		}
	}
	if n < 0 {
		t.Fatalf("no preferred tunnel: %+v", v.Tunnels)
	}
	const interval, count = 0.1, 150
	ping := c.background("red-a", nil, "ping", "-c", strconv.Itoa(count), "-i", fmt.Sprint(interval), "-W", "1", siteHost)
	time.Sleep(2 * time.Second)
	if err := router.Configure("router bgp 65010", "neighbor "+amazon[n].String()+" shutdown"); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	c.eventually("the session's routes withdrawn and the other tunnel preferred", 35*time.Second, func() bool {
		v = okJSON[vpnBGPJ](c.cloud, "vpn", "get", v.ID)
		return v.Tunnels[1-n].Preferred && v.Tunnels[n].Status.Bgp.State != "established" && len(v.Tunnels[n].Status.Bgp.Learned) == 0
	})
	withdrawn := time.Since(down)
	if o, tg := vpnRoute(c.cloud, red.MainRouteTableID, sitePfx); o != "vpn-bgp" || tg != v.ID {
		t.Fatalf("with tunnel %d's session up the route should stay: origin %q target %q", 2-n, o, tg)
	}
	ping.wait(t, 60*time.Second)
	out := ping.out.String()
	var sent, got int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(l, "%d packets transmitted, %d received", &sent, &got)
		}
	}
	t.Logf("tunnel %d's session shut down: withdrawn and tunnel %d preferred after %v; ping every %.1f s: %d of %d lost",
		n+1, 2-n, withdrawn.Round(100*time.Millisecond), interval, sent-got, sent)
	if sent != count || !strings.Contains(out[strings.LastIndex(out, "icmp_seq="+strconv.Itoa(count-5)):], "bytes from") {
		t.Fatalf("traffic did not continue over tunnel %d:\n%s\n%s", 2-n, tail(out, 2000), c.ok("vpn", "get", v.ID))
	}
	c.mustCurl("red-a", siteHost, a.PrivateIP)
	if get := c.ok("vpn", "get", v.ID); !strings.Contains(get, "bgp established, 1 prefixes") {
		t.Fatalf("vpn get does not show the BGP state per tunnel:\n%s", get)
	}

	// The other session's site goes silent (its packets to openvpc's
	// inside address dropped, no Cease): the edge's hold timer (30 s)
	// ends the session, and with both down the route leaves the table.
	if out, code := run(t, c.site.ns, 5*time.Second, "ip", "rule", "add", "to", amazon[1-n].String()+"/32", "prohibit", "pref", "10"); code != 0 {
		t.Fatalf("silencing the site's session: %s", out)
	}
	silent := time.Now()
	c.eventually("the route withdrawn from the table after the hold time", 50*time.Second, func() bool {
		o, _ := vpnRoute(c.cloud, red.MainRouteTableID, sitePfx)
		return o == ""
	})
	held := time.Since(silent)
	t.Logf("the site silent on tunnel %d: its session down and the route withdrawn after %v (hold time 30 s from the last keepalive, sent every 10 s)", 2-n, held.Round(100*time.Millisecond))
	if held < 15*time.Second {
		t.Fatalf("withdrawn after %v: before the hold time, so not by it", held)
	}
	if _, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost); code == 0 {
		t.Fatal("the site is still reached with both sessions down")
	}
	if ev := c.ok("events"); !strings.Contains(ev, "vpn-tunnel-down (operational)") {
		t.Fatalf("no vpn-tunnel-down event:\n%s", ev)
	}
}

// debugBGPRoutes is what a failed BGP scene shows of routing: the site's
// routes and SAs, each tunnel namespace's routes, the edges' counters.
func (c *vpnCloud) debugBGPRoutes(id string) string {
	var b strings.Builder
	out, _ := run(c.t, c.site.ns, 5*time.Second, "ip", "route", "show", "table", "all")
	fmt.Fprintf(&b, "site routes:\n%s\n", out)
	out, _ = run(c.t, c.site.ns, 5*time.Second, "ip", "-s", "link")
	fmt.Fprintf(&b, "site links:\n%s\n", out)
	out, _ = run(c.t, c.onprem.ns, 5*time.Second, "ip", "-s", "link")
	fmt.Fprintf(&b, "on-premises links:\n%s\n", out)
	if c.siteCharon != nil {
		out, _ = run(c.t, c.site.ns, 5*time.Second, "swanctl", "--list-sas", "--uri", "unix://"+c.siteCharon.Socket())
		fmt.Fprintf(&b, "site SAs:\n%s\n", out)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "ovpn-") && strings.HasSuffix(e.Name(), id[len(id)-6:]) {
			out, _ := run(c.t, c.site.ns, 5*time.Second, "ip", "-n", e.Name(), "route")
			a, _ := run(c.t, c.site.ns, 5*time.Second, "ip", "-n", e.Name(), "-s", "link")
			fmt.Fprintf(&b, "%s routes:\n%s\nlinks:\n%s\n", e.Name(), out, a)
		}
	}
	for k := range 2 {
		r, _ := run(c.t, c.room.hosts[1+k].ns, 5*time.Second, "ip", "route")
		fmt.Fprintf(&b, "edge %d routes:\n%s\n", k+1, r)
		m, _ := run(c.t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(2+k).String(), "9101")+"/metrics")
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "openvpc_edge_packets_total") && !strings.HasSuffix(l, " 0") {
				fmt.Fprintf(&b, "edge %d: %s\n", k+1, l)
			}
		}
	}
	return b.String()
}
