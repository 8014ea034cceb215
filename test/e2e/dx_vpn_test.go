package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/test/frr"
)

// TestDXFailoverToVPN: one site reached two ways, as AWS's customers
// build it — a Direct Connect VIF (FRR bgpd from `dx vif config`, on a
// link the test tags itself) and a static VPN (strongSwan from `vpn
// config`), both for the same on-premises prefix. Direct Connect ranks
// over VPN static, so an instance's pings go over the VIF; the line cut,
// the session times out within the hold time, the route is withdrawn and
// the pings go on over the VPN; the router back, they return to Direct
// Connect.
//
// The site is one customer edge router doing both (its internet side
// runs the customer gateway, its tagged port the BGP session), so its
// replies follow the requests with no protocol of its own: the VPC's
// route to Direct Connect sits in its main table (what zebra would
// install from the session; bgpd runs without zebra here, so the test
// writes it once FRR has learned the VPC), the VPN's in strongSwan's
// table 220, and a rule before table 220 lets any route of main but the
// default win (`suppress_prefixlength 0`). Cutting the link takes the
// Direct Connect route out of main (the kernel drops routes of a link
// that goes down), and replies take the VPN.
func TestDXFailoverToVPN(t *testing.T) {
	needStrongSwan(t, "ping", "vtysh", frr.Bgpd)
	c := newVPNCloudSpare(t, 1, 1)
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	v := vpnResources(c.cloud, red)
	c.routeTunnels(v)
	c.startSite(c.ok("vpn", "config", "office-vpn"), 6*time.Second)
	c.tunnelsUp(v.ID, 1, 60*time.Second)

	// The Direct Connect edge, its port cabled to the site router.
	dxM := c.room.hosts[2]
	sw := newDXSite(c.cloud, dxM, "dx0")
	const dxEdge = "e2e-dxv"
	metrics := net.JoinHostPort(underlayAddr(3).String(), "9101")
	edge := startFor(c.t, c.root, dxM.ns, nil, bin, append([]string{"edge", "run", "--server", c.url, "--edge-id", dxEdge,
		"--underlay", underlayAddr(3).String(), "--log-level", "warn", "--heartbeat", "400ms",
		"--dx-port", "dx0", "--dx-namespaces", c.room.tag + "-vif", "--metrics", metrics}, c.join(c.t.TempDir(), "edge")...)...)
	c.eventually("the Direct Connect edge to register", 15*time.Second, func() bool {
		select {
		case <-edge.done:
			t.Fatalf("edge exited:\n%s", edge.out)
		default:
		}
		out, _ := c.cli("edge", "list")
		return strings.Contains(out, dxEdge)
	})
	c.instance("red-a", "red-a", 0)
	defer func() {
		if t.Failed() {
			t.Logf("route table:\n%s", c.ok("route-table", "get", red.MainRouteTableID))
			t.Logf("vpn:\n%s", c.ok("vpn", "get", v.ID))
			t.Logf("vif:\n%s", c.ok("dx", "vif", "get", "dc-101"))
			out, _ := c.cli("trace", "red-a", siteHost, "--proto", "icmp")
			t.Logf("trace:\n%s", out)
			t.Logf("dx edge:\n%s", tail(edge.out.String(), 3000))
			t.Log(c.debugVPN())
		}
	}()
	// Before Direct Connect: the VPN alone carries the site.
	c.eventually("the instance reaching the site over the VPN", 30*time.Second, func() bool {
		_, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost)
		return code == 0
	})

	c.ok("dx", "connection", "create", "--name", "dc", "--edge", dxEdge, "--port", "dx0")
	c.ok("dx", "vif", "create", "--name", "dc-101", "--connection", "dc", "--vlan", "101", "--asn", "65101", "--vgw", "red-vgw", "--hold-time", "3")
	vif := c.vif("dc-101")
	conf := c.ok("dx", "vif", "config", "dc-101", "--format", "frr", "--interface", "eth1", "--announce", sitePfx)
	amazon := netip.MustParsePrefix(vif.AmazonAddress).Addr()
	customer := netip.MustParsePrefix(vif.CustomerAddress)
	for _, cmd := range []string{
		"echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter",
		"ip rule add priority 100 lookup main suppress_prefixlength 0",
	} {
		if out, code := run(t, c.site.ns, 5*time.Second, "sh", "-c", cmd); code != 0 {
			t.Fatalf("site router: %s: %s", cmd, out)
		}
	}
	r := sw.cable(c.site, "site", 101, customer, conf)
	hs, err := netlink.NewHandleAt(c.site.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	// zebra's part: once the session has brought the VPC's CIDR, the
	// router's forwarding table has it.
	install := func(r *frr.Router) {
		c.eventually("the VPC CIDR in FRR's table", 30*time.Second, func() bool {
			rs, _ := r.Routes()
			return slices.Contains(rs, netip.MustParsePrefix("10.0.0.0/16"))
		})
		eth1, err := hs.LinkByName("eth1")
		if err != nil {
			t.Fatal(err)
		}
		if err := hs.RouteReplace(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(16, 32)}, Gw: amazon.AsSlice(), LinkIndex: eth1.Attrs().Index}); err != nil {
			t.Fatalf("the VPC's route over Direct Connect on the site router: %v", err)
		}
	}
	install(r)
	c.eventually("the site's prefix propagated from Direct Connect", 30*time.Second, func() bool { return dxRoute(c.cloud, red.MainRouteTableID, sitePfx) == vif.ID })
	// The VPN's static route for the same prefix is still there, ranked
	// below Direct Connect.
	if rt := c.ok("route-table", "get", red.MainRouteTableID, "-o", "json"); !strings.Contains(rt, v.ID) {
		t.Fatalf("the VPN's route for %s is gone from the route table:\n%s", sitePfx, rt)
	}

	// Which way packets go: frames on the site router's tagged port, and
	// packets the VPN edge routes into its tunnels (its ovpc-vpn TUN).
	vpnEdge := c.room.hosts[1]
	counters := func() (dx, vpn uint64) {
		return ifPackets(t, c.site.ns, "eth1"), ifPackets(t, vpnEdge.ns, "ovpc-vpn")
	}
	pings := func(n int) string {
		out, _ := c.exec("red-a", time.Duration(n)*time.Second, "ping", "-c", strconv.Itoa(n), "-i", "0.1", "-W", "1", siteHost)
		return out
	}
	overDX := func(when string) {
		t.Helper()
		c.eventually("pings answered "+when, 20*time.Second, func() bool {
			_, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost)
			return code == 0
		})
		f0 := vifFrames(c.cloud, "dc-101")
		dx0, vpn0 := counters()
		out := pings(20)
		dx1, vpn1 := counters()
		if !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("pings %s:\n%s", when, out)
		}
		// 20 requests and 20 replies cross the port; the tunnels carry none
		// (a stray few allowed: a flow log or a late reply).
		if dx1-dx0 < 40 || vpn1-vpn0 > 4 {
			t.Fatalf("%s: 20 pings crossed the Direct Connect port %d times and the VPN edge's tunnels %d times; want ≥ 40 and none", when, dx1-dx0, vpn1-vpn0)
		}
		// The edge's own count of the VIF's frames (reported every few
		// seconds) says the same.
		c.eventually("the VIF's frame counters in dx vif get to count the pings "+when, 15*time.Second, func() bool { return vifFrames(c.cloud, "dc-101")-f0 >= 40 })
		t.Logf("%s: 20 pings: %d packets on the Direct Connect port (dx vif get: %d frames), %d into the VPN's tunnels", when, dx1-dx0, vifFrames(c.cloud, "dc-101")-f0, vpn1-vpn0)
	}
	overDX("over Direct Connect")

	// The line is cut: the site router's tagged port goes down, during
	// the pings and a TCP stream (iperf3, 20 Mbit/s so the pings still
	// get through) from the instance to the office. The stream was opened
	// over Direct Connect with the path's own MSS: once it is moved onto
	// the VPN its segments no longer fit kernel-libipsec's 1400 bytes, and
	// it goes on only because the VPN edge answers them with
	// "fragmentation needed" (edge.Bounded) and the instance shrinks them.
	const interval, count = 0.1, 200
	start(t, c.onprem.ns, nil, "iperf3", "-s", "-1", "-B", siteHost, "-p", "5301")
	c.eventually("iperf3 on-premises", 10*time.Second, func() bool {
		_, code := run(t, c.onprem.ns, 5*time.Second, "sh", "-c", "ss -ltn | grep -q ':5301 '")
		return code == 0
	})
	stream := c.background("red-a", nil, "iperf3", "-c", siteHost, "-p", "5301", "-t", "18", "-b", "20M", "-J")
	ping := c.background("red-a", nil, "ping", "-c", strconv.Itoa(count), "-i", fmt.Sprint(interval), "-W", "1", siteHost)
	time.Sleep(2 * time.Second)
	_, vpnBefore := counters()
	eth1, _ := hs.LinkByName("eth1")
	if err := hs.LinkSetDown(eth1); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	c.eventually("the Direct Connect route withdrawn", 15*time.Second, func() bool { return dxRoute(c.cloud, red.MainRouteTableID, sitePfx) == "" })
	withdrawn := time.Since(cut)
	if withdrawn > 3*time.Second+2*time.Second {
		t.Errorf("the route went %v after the line was cut; the hold time is 3 s", withdrawn)
	}
	ping.wait(t, 60*time.Second)
	sent, got := pingCounts(ping.out.String())
	_, vpnAfter := counters()
	t.Logf("DX → VPN: line cut → route withdrawn from the route table in %v; ping every %.1f s: %d of %d lost (about %.1f s without replies); %d packets into the VPN's tunnels",
		withdrawn.Round(100*time.Millisecond), interval, sent-got, sent, float64(sent-got)*interval, vpnAfter-vpnBefore)
	if sent != count || got == 0 || !strings.Contains(ping.out.String()[strings.LastIndex(ping.out.String(), "icmp_seq="+strconv.Itoa(count-5)):], "bytes from") {
		t.Fatalf("pings through the failover: %d sent, %d received; the last not answered:\n%s", sent, got, tail(ping.out.String(), 2000))
	}
	if vpnAfter-vpnBefore < uint64(count/4) {
		t.Fatalf("only %d packets went into the VPN's tunnels after the cut", vpnAfter-vpnBefore)
	}
	stream.wait(t, 60*time.Second)
	tcpThrough(t, stream.out.String())
	c.eventually("an operational event for the session going down", 10*time.Second, func() bool {
		return slices.ContainsFunc(okJSON[[]eventJ](c.cloud, "events"), func(e eventJ) bool { return e.Reason == "dx-session-down" })
	})

	// The line back (and the router restarted, so it connects at once
	// instead of after FRR's connect-retry timer): traffic returns.
	ping = c.background("red-a", nil, "ping", "-c", strconv.Itoa(count), "-i", fmt.Sprint(interval), "-W", "1", siteHost)
	time.Sleep(2 * time.Second)
	r.Stop()
	if err := hs.LinkSetUp(eth1); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	r = frr.Start(t, "/run/netns/"+c.site.name, conf)
	install(r)
	c.eventually("the Direct Connect route back", 30*time.Second, func() bool { return dxRoute(c.cloud, red.MainRouteTableID, sitePfx) == vif.ID })
	returned := time.Since(back)
	ping.wait(t, 60*time.Second)
	sent, got = pingCounts(ping.out.String())
	t.Logf("VPN → DX: line back → route back in the route table in %v; ping every %.1f s: %d of %d lost", returned.Round(100*time.Millisecond), interval, sent-got, sent)
	if sent != count || got == 0 {
		t.Fatalf("pings through the return: %d sent, %d received\n%s", sent, got, tail(ping.out.String(), 2000))
	}
	overDX("back over Direct Connect")
}

// ifPackets is the packets received plus sent by interface name in
// namespace ns (from /proc/net/dev, which is per namespace).
func ifPackets(t *testing.T, ns netns.NsHandle, name string) uint64 {
	t.Helper()
	out, code := run(t, ns, 5*time.Second, "cat", "/proc/net/dev")
	if code != 0 {
		t.Fatalf("/proc/net/dev: %s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		dev, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || dev != name {
			continue
		}
		f := strings.Fields(rest)
		// receive: bytes packets …(8 fields); transmit: bytes packets …
		rx, _ := strconv.ParseUint(f[1], 10, 64)
		tx, _ := strconv.ParseUint(f[9], 10, 64)
		return rx + tx
	}
	t.Fatalf("no interface %s:\n%s", name, out)
	return 0
}

// vifFrames is the frames in and out `dx vif get` reports for a VIF.
func vifFrames(c *cloud, ref string) uint64 {
	v := okJSON[struct {
		Status struct {
			FramesIn  uint64 `json:"framesIn"`
			FramesOut uint64 `json:"framesOut"`
		} `json:"status"`
	}](c, "dx", "vif", "get", ref)
	return v.Status.FramesIn + v.Status.FramesOut
}

// tcpThrough checks an iperf3 -J report of a stream that lived through a
// path change: it ended, and its last seconds carried data.
func tcpThrough(t *testing.T, out string) {
	t.Helper()
	var r struct {
		Intervals []struct {
			Sum struct {
				Start         float64 `json:"start"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum"`
		} `json:"intervals"`
		End struct {
			SumReceived struct {
				Bytes float64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil || r.Error != "" || len(r.Intervals) < 3 {
		t.Fatalf("the TCP stream through the failover: %v %s\n%s", err, r.Error, tail(out, 3000))
	}
	var rates []string
	stalled := 0
	for _, iv := range r.Intervals {
		rates = append(rates, fmt.Sprintf("%.0f", iv.Sum.BitsPerSecond/1e6))
		if iv.Sum.BitsPerSecond < 1e6 {
			stalled++
		}
	}
	t.Logf("TCP stream (iperf3, 20 Mbit/s) through it: Mbit/s per second %s; %d s below 1 Mbit/s; %.1f MB received", strings.Join(rates, " "), stalled, r.End.SumReceived.Bytes/1e6)
	last := r.Intervals[len(r.Intervals)-3:]
	for _, iv := range last {
		if iv.Sum.BitsPerSecond < 1e6 {
			t.Fatalf("the TCP stream did not resume after the path change: Mbit/s per second %s", strings.Join(rates, " "))
		}
	}
}

// pingCounts reads ping's summary line.
func pingCounts(out string) (sent, got int) {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(l, "%d packets transmitted, %d received", &sent, &got)
		}
	}
	return sent, got
}
