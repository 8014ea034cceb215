package e2e

import (
	"encoding/json"
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

	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/nsthread"

	"github.com/openvpc/openvpc/test/dot1q"
	"github.com/openvpc/openvpc/test/frr"
)

type dxStatusJ struct {
	BgpState           string   `json:"bgpState"`
	Reason             string   `json:"reason"`
	PrefixesReceived   []string `json:"prefixesReceived"`
	PrefixesAdvertised []string `json:"prefixesAdvertised"`
	Edge               string   `json:"edge"`
}

type dxVIFJ struct {
	ID              string     `json:"id"`
	Vlan            uint32     `json:"vlan"`
	AmazonAddress   string     `json:"amazonAddress"`
	CustomerAddress string     `json:"customerAddress"`
	AuthKey         string     `json:"authKey"`
	Status          *dxStatusJ `json:"status"`
}

// dxSite is the customer's side of a Direct Connect port: a switch
// namespace (a bridge, no VLAN filtering, so tagged frames pass as they
// are) cabled to the edge's port, and routers on it, each tagging its
// own link with the test's 802.1Q helper (not openvpc's).
type dxSite struct {
	c      *cloud
	sw     *machine
	tagged []*dot1q.Tag
}

func newDXSite(c *cloud, edge *machine, port string) *dxSite {
	t := c.t
	s := &dxSite{c: c, sw: newMachine(t, c.room.tag+"-dxsw")}
	h, err := netlink.NewHandleAt(s.sw.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	up(t, h, "lo")
	noIPv6(t, s.sw)
	snoop := false // a snooping bridge reports 224.0.0.106 untagged: a real switch port would not
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}, MulticastSnooping: &snoop}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	up(t, h, "br0")
	he, err := netlink.NewHandleAt(edge.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer he.Close()
	if err := he.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port}, PeerName: "edge", PeerNamespace: netlink.NsFd(int(s.sw.ns))}); err != nil {
		t.Fatalf("the port's cable: %v", err)
	}
	s.plug("edge")
	return s
}

// noIPv6 keeps a namespace's links quiet: any untagged frame is a fault.
func noIPv6(t *testing.T, m *machine) {
	if out, code := run(t, m.ns, 5*time.Second, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"); code != 0 {
		t.Fatalf("disable IPv6 in %s: %s", m.name, out)
	}
}

func (s *dxSite) plug(name string) {
	h, err := netlink.NewHandleAt(s.sw.ns)
	if err != nil {
		s.c.t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		s.c.t.Fatal(err)
	}
	br, _ := h.LinkByName("br0")
	if err := h.LinkSetMaster(l, br); err != nil {
		s.c.t.Fatal(err)
	}
	up(s.c.t, h, name)
}

// router makes a router namespace on VLAN vid with its peer address, and
// starts bgpd with conf (none: no bgpd).
func (s *dxSite) router(name string, vid uint16, addr netip.Prefix, conf string) (*machine, *frr.Router) {
	m := newMachine(s.c.t, s.c.room.tag+"-"+name)
	h, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		s.c.t.Fatal(err)
	}
	defer h.Close()
	up(s.c.t, h, "lo")
	return m, s.cable(m, name, vid, addr, conf)
}

// cable plugs machine m into the switch as port name with an eth1 tagged
// with VLAN vid and addressed addr, and starts bgpd with conf there (none:
// no bgpd).
func (s *dxSite) cable(m *machine, name string, vid uint16, addr netip.Prefix, conf string) *frr.Router {
	t := s.c.t
	noIPv6(t, m)
	h, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: name, PeerNamespace: netlink.NsFd(int(s.sw.ns))}); err != nil {
		t.Fatal(err)
	}
	s.plug(name)
	addAddr(t, h, "eth1", addr)
	up(t, h, "eth1")
	l, _ := h.LinkByName("eth1")
	err = nsthread.In(m.ns, func() error {
		tg, err := dot1q.Link(l.Attrs().Index, vid)
		if err == nil {
			s.tagged = append(s.tagged, tg)
			t.Cleanup(func() { tg.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatalf("tag %s's link with VLAN %d: %v", name, vid, err)
	}
	var r *frr.Router
	if conf != "" {
		r = frr.Start(t, "/run/netns/"+m.name, conf)
	}
	return r
}

func (c *cloud) vif(ref string) dxVIFJ {
	c.t.Helper()
	return okJSON[dxVIFJ](c, "dx", "vif", "get", ref)
}

// TestDirectConnect: an edge with a Direct Connect port, a connection and
// two private VIFs on it made with the CLI; the customer's routers are
// FRR bgpd configured with exactly what `dx vif config --format frr`
// prints, on links tagged by the test's own 802.1Q helper. The right key
// establishes and `dx vif get` shows the prefix received; a router with a
// wrong key never establishes and `dx vif get` says the key is wrong; a
// router on a VLAN no VIF has is dropped and counted in the edge's
// metrics; deleting a VIF takes its session down.
func TestDirectConnect(t *testing.T) {
	prerequisites(t, "ping", "curl", "vtysh", frr.Bgpd)
	c := newCloudWith(t, 0, 1)
	edgeM := c.room.hosts[0]
	site := newDXSite(c, edgeM, "dx0")
	const edgeID = "e2e-dx1"
	metrics := net.JoinHostPort(underlayAddr(1).String(), "9101")
	edge := startFor(c.t, c.root, edgeM.ns, nil, bin, append([]string{"edge", "run", "--server", c.url, "--edge-id", edgeID,
		"--underlay", underlayAddr(1).String(), "--outside", "tun:ovpc-out", "--log-level", "warn", "--heartbeat", "400ms",
		"--dx-port", "dx0", "--dx-namespaces", c.room.tag + "-vif", "--metrics", metrics}, c.join(c.t.TempDir(), "edge")...)...)
	c.eventually("the edge to register", 15*time.Second, func() bool {
		select {
		case <-edge.done:
			t.Fatalf("edge exited:\n%s", edge.out)
		default:
		}
		out, _ := c.cli("edge", "list")
		return strings.Contains(out, edgeID)
	})

	c.ok("dx", "connection", "create", "--name", "dc1", "--edge", edgeID, "--port", "dx0")
	if out, code := c.cli("dx", "connection", "create", "--name", "dc2", "--edge", edgeID, "--port", "dx0"); code == 0 || !strings.Contains(out, "already") {
		t.Fatalf("a second connection on one port: exit %d\n%s", code, out)
	}
	red := c.vpc("red", "10.20.0.0/16", "10.20.1.0/24")
	c.ok("vgw", "create", "--name", "red-vgw")
	c.ok("vgw", "attach", "red-vgw", "--vpc", "red")
	c.ok("route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	const vgw = "red-vgw"
	c.ok("dx", "vif", "create", "--name", "good", "--connection", "dc1", "--vlan", "101", "--asn", "65101", "--vgw", vgw, "--hold-time", "3")
	c.ok("dx", "vif", "create", "--name", "badkey", "--connection", "dc1", "--vlan", "102", "--asn", "65102", "--vgw", vgw, "--hold-time", "3")
	if out, code := c.cli("dx", "vif", "create", "--connection", "dc1", "--vlan", "101", "--asn", "65103", "--vgw", vgw); code == 0 || !strings.Contains(out, "VLAN 101") {
		t.Fatalf("a second VIF on VLAN 101: exit %d\n%s", code, out)
	}
	if out, code := c.cli("dx", "vif", "create", "--connection", "dc1", "--vlan", "4095", "--asn", "65103", "--vgw", vgw); code == 0 || !strings.Contains(out, "1–4094") {
		t.Fatalf("VLAN 4095: exit %d\n%s", code, out)
	}
	good, bad := c.vif("good"), c.vif("badkey")
	if list := c.ok("dx", "vif", "list", "-o", "json"); strings.Contains(list, good.AuthKey) {
		t.Fatalf("dx vif list shows the BGP key:\n%s", list)
	}

	// The routers take the printed configuration as it is; the wrong-key
	// one gets a typo in its password line.
	goodConf := c.ok("dx", "vif", "config", "good", "--format", "frr", "--interface", "eth1", "--announce", "192.0.2.0/24")
	badConf := strings.Replace(c.ok("dx", "vif", "config", "badkey", "--format", "frr", "--announce", "198.51.100.0/24"), bad.AuthKey, bad.AuthKey+"x", 1)
	if !strings.Contains(goodConf, "ip link add link eth1 name eth1.101 type vlan id 101") {
		t.Fatalf("config does not say how to make the VLAN link:\n%s", goodConf)
	}
	_, r1 := site.router("r101", 101, netip.MustParsePrefix(good.CustomerAddress), goodConf)
	site.router("r102", 102, netip.MustParsePrefix(bad.CustomerAddress), badConf)
	rogue, _ := site.router("r999", 999, netip.MustParsePrefix(good.CustomerAddress), "")

	t0 := time.Now()
	c.eventually("the good VIF established with 192.0.2.0/24 received (dx vif get)", 30*time.Second, func() bool {
		v := c.vif("good")
		return v.Status != nil && v.Status.BgpState == "established" && slices.Contains(v.Status.PrefixesReceived, "192.0.2.0/24")
	})
	t.Logf("config printed → established and the prefix in dx vif get: %v", time.Since(t0).Round(time.Millisecond))
	amazon := netip.MustParsePrefix(good.AmazonAddress).Addr()
	if s, err := r1.NeighborState(amazon); err != nil || s != "Established" {
		t.Fatalf("FRR says %q (%v)", s, err)
	}
	// The VPC's CIDR reaches the router; the router's prefix reaches the
	// VPC's route table, propagated with Direct Connect's origin.
	c.eventually("the VPC CIDR in FRR's table", 15*time.Second, func() bool {
		rs, _ := r1.Routes()
		return slices.Contains(rs, netip.MustParsePrefix("10.20.0.0/16"))
	})
	for deadline := time.Now().Add(15 * time.Second); dxRoute(c, red.MainRouteTableID, "192.0.2.0/24") != good.ID; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("192.0.2.0/24 not propagated into red's main route table in 15 s:\n%s", c.ok("route-table", "get", red.MainRouteTableID, "-o", "json"))
		}
	}
	t.Logf("config printed → prefix usable in the route table: %v", time.Since(t0).Round(time.Millisecond))
	if out := c.ok("dx", "vif", "get", "good"); !strings.Contains(out, "established") || !strings.Contains(out, "192.0.2.0/24") {
		t.Fatalf("dx vif get does not show the session:\n%s", out)
	}
	c.eventually("the VIF's frame counters in dx vif get", 15*time.Second, func() bool {
		v := okJSON[struct {
			Status struct {
				FramesIn  uint64 `json:"framesIn"`
				FramesOut uint64 `json:"framesOut"`
			} `json:"status"`
		}](c, "dx", "vif", "get", "good")
		return v.Status.FramesIn > 0 && v.Status.FramesOut > 0
	})

	// The wrong key: never established, and get says why.
	c.eventually("the wrong key explained in dx vif get", 15*time.Second, func() bool {
		v := c.vif("badkey")
		return v.Status != nil && strings.Contains(v.Status.Reason, "wrong MD5 signature")
	})
	if v := c.vif("badkey"); v.Status.BgpState == "established" {
		t.Fatalf("established with a wrong key: %+v", v.Status)
	}
	t.Logf("wrong key: %s", c.ok("dx", "vif", "get", "badkey"))

	// A router on VLAN 999, which no VIF has: its frames are dropped and
	// counted.
	before := dxFrames(c, metrics, "unknown_vlan")
	if out, code := run(t, rogue.ns, 10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", amazon.String()); code == 0 {
		t.Fatalf("VLAN 999 reached a VIF:\n%s", out)
	}
	c.eventually("unknown-VLAN frames counted", 5*time.Second, func() bool { return dxFrames(c, metrics, "unknown_vlan") > before })
	t.Logf("frames dropped for an unknown VLAN: %v", dxFrames(c, metrics, "unknown_vlan")-before)

	// The router goes away: within the hold time (3 s) the session is
	// down and its prefix leaves the route table.
	r1.Stop()
	t1 := time.Now()
	c.eventually("192.0.2.0/24 withdrawn from the route table", 10*time.Second, func() bool {
		return dxRoute(c, red.MainRouteTableID, "192.0.2.0/24") == ""
	})
	t.Logf("router gone → route withdrawn from the route table in %v", time.Since(t1).Round(time.Millisecond))
	c.eventually("an operational event for the session going down", 10*time.Second, func() bool {
		return slices.ContainsFunc(okJSON[[]eventJ](c, "events"), func(e eventJ) bool { return e.Reason == "dx-session-down" })
	})

	// Deleting the VIF ends it for good.
	c.ok("dx", "vif", "delete", "good")
	if out, code := c.cli("dx", "connection", "delete", "dc1"); code == 0 || !strings.Contains(out, "badkey") && !strings.Contains(out, bad.ID) {
		t.Fatalf("deleting a connection with a VIF: exit %d\n%s", code, out)
	}
	c.ok("dx", "vif", "delete", "badkey")
	c.ok("dx", "connection", "delete", "dc1")
	// The edge removes the VIFs' namespaces.
	c.eventually("the VIF namespaces removed", 15*time.Second, func() bool {
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), c.room.tag+"-vif") {
				return false
			}
		}
		return true
	})
}

// dxRoute is the target of the active route for dest in route table rtb
// ("" when none).
func dxRoute(c *cloud, rtb, dest string) string {
	rt := okJSON[struct {
		Routes []struct {
			DestinationCidr string `json:"destinationCidr"`
			Target          string `json:"target"`
			Origin          string `json:"origin"`
			InactiveReason  string `json:"inactiveReason"`
		} `json:"routes"`
	}](c, "route-table", "get", rtb)
	for _, r := range rt.Routes {
		if r.DestinationCidr == dest && r.InactiveReason == "" && r.Origin == "direct-connect" {
			return r.Target
		}
	}
	return ""
}

// dxFrames reads openvpc_dx_frames_total{result=…} from the edge.
func dxFrames(c *cloud, metrics, result string) float64 {
	out, _ := run(c.t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+metrics+"/metrics")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "openvpc_dx_frames_total") && strings.Contains(line, fmt.Sprintf("result=%q", result)) {
			f := strings.Fields(line)
			n, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return n
		}
	}
	return 0
}

// TestDirectConnectTraffic: an instance and a host in the customer's data
// centre talk over a VIF, both ways — ping, curl, iperf3 — the edge
// carrying the traffic between Geneve and the tagged port; a site source
// inside the VPC's CIDR is dropped at the edge with a security event.
func TestDirectConnectTraffic(t *testing.T) {
	prerequisites(t, "ping", "curl", "iperf3", "vtysh", frr.Bgpd)
	c := newCloudWith(t, 1, 1)
	edgeM := c.room.hosts[1]
	site := newDXSite(c, edgeM, "dx0")
	const edgeID = "e2e-dx2"
	edge := startFor(c.t, c.root, edgeM.ns, nil, bin, append([]string{"edge", "run", "--server", c.url, "--edge-id", edgeID,
		"--underlay", underlayAddr(2).String(), "--log-level", "warn", "--heartbeat", "400ms",
		"--dx-port", "dx0", "--dx-namespaces", c.room.tag + "-vif", "--metrics", net.JoinHostPort(underlayAddr(2).String(), "9101")}, c.join(c.t.TempDir(), "edge")...)...)
	c.eventually("the edge to register", 15*time.Second, func() bool {
		select {
		case <-edge.done:
			t.Fatalf("edge exited:\n%s", edge.out)
		default:
		}
		out, _ := c.cli("edge", "list")
		return strings.Contains(out, edgeID)
	})
	var red vpcJ
	defer func() {
		if t.Failed() {
			out, _ := run(t, c.room.bridge.ns, 5*time.Second, "curl", "-s", "http://"+net.JoinHostPort(underlayAddr(2).String(), "9101")+"/metrics")
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "openvpc_edge_") || strings.HasPrefix(l, "openvpc_dx_") {
					t.Log(l)
				}
			}
			t.Logf("edge log:\n%s", edge.out)
			out, _ = c.cli("trace", "red-1", "192.0.2.10", "--proto", "icmp")
			t.Logf("trace:\n%s", out)
			out, _ = c.cli("route-table", "get", red.MainRouteTableID)
			t.Logf("route table:\n%s", out)
		}
	}()
	red = c.vpc("red", "10.20.0.0/16", "10.20.1.0/24")
	c.ok("vgw", "create", "--name", "red-vgw")
	c.ok("vgw", "attach", "red-vgw", "--vpc", "red")
	c.ok("route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	// The data centre may open connections to the instance.
	c.ok("sg", "authorize", red.DefaultSG, "--proto", "all", "--cidr", "192.0.2.0/24")
	inst := c.instance("red-a", "red-1", 0)
	c.ok("dx", "connection", "create", "--name", "dc", "--edge", edgeID, "--port", "dx0")
	c.ok("dx", "vif", "create", "--name", "dc-101", "--connection", "dc", "--vlan", "101", "--asn", "65101", "--vgw", "red-vgw", "--hold-time", "9")
	vif := c.vif("dc-101")
	conf := c.ok("dx", "vif", "config", "dc-101", "--format", "frr", "--announce", "192.0.2.0/24")
	router, r1 := site.router("r101", 101, netip.MustParsePrefix(vif.CustomerAddress), conf)
	amazon := netip.MustParsePrefix(vif.AmazonAddress).Addr()

	// The data centre: an office host behind the router. bgpd runs
	// without zebra, so the router's route to the VPC is written here.
	office := newMachine(t, c.room.tag+"-office")
	noIPv6(t, office)
	hr, err := netlink.NewHandleAt(router.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	ho, err := netlink.NewHandleAt(office.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ho.Close()
	if err := hr.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(office.ns))}); err != nil {
		t.Fatal(err)
	}
	addAddr(t, hr, "lan", netip.MustParsePrefix("192.0.2.1/24"))
	up(t, hr, "lan")
	up(t, ho, "lo")
	addAddr(t, ho, "eth0", netip.MustParsePrefix("192.0.2.10/24"))
	up(t, ho, "eth0")
	if err := ho.RouteAdd(&netlink.Route{Gw: net.IPv4(192, 0, 2, 1)}); err != nil {
		t.Fatal(err)
	}
	eth1, _ := hr.LinkByName("eth1")
	if err := hr.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(10, 20, 0, 0), Mask: net.CIDRMask(16, 32)}, Gw: amazon.AsSlice(), LinkIndex: eth1.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, router.ns, 5*time.Second, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); code != 0 {
		t.Fatalf("forwarding on the router: %s", out)
	}

	t0 := time.Now()
	c.eventually("192.0.2.0/24 propagated", 30*time.Second, func() bool { return dxRoute(c, red.MainRouteTableID, "192.0.2.0/24") == vif.ID })
	c.eventually("the instance reaching the office", 20*time.Second, func() bool {
		_, code := c.exec("red-1", 5*time.Second, "ping", "-c", "1", "-W", "1", "192.0.2.10")
		return code == 0
	})
	t.Logf("config printed → instance reaches the office over Direct Connect: %v", time.Since(t0).Round(time.Millisecond))
	c.mustPing("red-1", "192.0.2.10")
	if out, code := run(t, office.ns, 10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", inst.PrivateIP); code != 0 {
		t.Fatalf("ping from the office to the instance: exit %d\n%s", code, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start(t, office.ns, []string{serveEnv + "=192.0.2.10:8080"}, self)
	c.eventually("the office's web server", 10*time.Second, func() bool {
		_, code := c.exec("red-1", 5*time.Second, "curl", "-s", "-o", "/dev/null", "http://192.0.2.10:8080/")
		return code == 0
	})
	c.mustCurl("red-1", "192.0.2.10", inst.PrivateIP)
	c.httpServer("red-1", inst.PrivateIP)
	if out, code := run(t, office.ns, 10*time.Second, "curl", "-sS", "--max-time", "5", "http://"+inst.PrivateIP+":8080/"); code != 0 || !strings.Contains(out, "to 192.0.2.10") {
		t.Fatalf("curl from the office to the instance: exit %d\n%s", code, out)
	}
	// iperf3: the instance sends to the office.
	srv := start(t, office.ns, nil, "iperf3", "-s", "-1", "-B", "192.0.2.10", "-p", "5201")
	var out string
	var code int
	c.eventually("iperf3 to start", 10*time.Second, func() bool {
		out, code = c.exec("red-1", 30*time.Second, "iperf3", "-c", "192.0.2.10", "-p", "5201", "-t", "5", "-J")
		return !strings.Contains(out, "Connection refused")
	})
	if code != 0 {
		t.Fatalf("iperf3 instance → office: exit %d\n%s", code, out)
	}
	dxRate := iperfRate(t, out)
	t.Logf("iperf3 instance → office over Direct Connect (1 TCP stream, 5 s): %.0f Mbit/s", dxRate/1e6)
	srv.wait(t, 10*time.Second)

	// The site sending from inside the VPC: dropped at the edge, with a
	// security event.
	const forged = "10.20.1.77"
	addAddr(t, hr, "lo", netip.MustParsePrefix(forged+"/32"))
	if out, code := run(t, router.ns, 10*time.Second, "ping", "-c", "2", "-W", "1", "-I", forged, inst.PrivateIP); code == 0 {
		t.Fatalf("a site source inside the VPC reached the instance:\n%s", out)
	}
	c.eventually("a spoofed-source event for the site's forged source", 10*time.Second, func() bool {
		return slices.ContainsFunc(okJSON[[]eventJ](c, "events"), func(e eventJ) bool { return e.Reason == "spoofed-source" && e.InnerSrc == forged })
	})

	// P9's baseline, same run: the instance's namespace and the office's
	// over a plain veth.
	instNS, err := netns.GetFromName(nic.NamespaceName(inst.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer instNS.Close()
	hi, err := netlink.NewHandleAt(instNS)
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close()
	if err := hi.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "p9"}, PeerName: "p9", PeerNamespace: netlink.NsFd(int(office.ns))}); err != nil {
		t.Fatal(err)
	}
	addAddr(t, hi, "p9", netip.MustParsePrefix("203.0.113.1/30"))
	up(t, hi, "p9")
	addAddr(t, ho, "p9", netip.MustParsePrefix("203.0.113.2/30"))
	up(t, ho, "p9")
	srv = start(t, office.ns, nil, "iperf3", "-s", "-1", "-B", "203.0.113.2", "-p", "5202")
	c.eventually("iperf3 over the veth", 10*time.Second, func() bool {
		out, code = run(t, instNS, 30*time.Second, "iperf3", "-c", "203.0.113.2", "-p", "5202", "-t", "5", "-J")
		return !strings.Contains(out, "Connection refused")
	})
	if code != 0 {
		t.Fatalf("iperf3 over the veth: exit %d\n%s", code, out)
	}
	veth := iperfRate(t, out)
	srv.wait(t, 10*time.Second)
	t.Logf("P9: instance → office over Direct Connect %.0f Mbit/s ÷ plain veth between the same namespaces %.0f Mbit/s = %.2f", dxRate/1e6, veth/1e6, dxRate/veth)

	// Convergence: the router goes (bgpd stops, sending a Cease); the
	// host's cache loses the route.
	routed := func() bool {
		out, _ := c.cli("trace", "red-1", "192.0.2.10", "--proto", "icmp")
		return !strings.Contains(out, "no-route")
	}
	if !routed() {
		t.Fatal("the instance has no route to the office before the router goes")
	}
	r1.Stop()
	t1 := time.Now()
	c.eventually("the route gone from the host's cache", 20*time.Second, func() bool { return !routed() })
	t.Logf("router stopped → route gone from the host's cache in %v", time.Since(t1).Round(time.Millisecond))
}

// iperfRate is the received rate of an iperf3 -J report, in bit/s.
func iperfRate(t *testing.T, out string) float64 {
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return r.End.SumReceived.BitsPerSecond
}

// TestDXSite: `openvpc dx site` is the quickstart's data centre: started
// before the edge has its port, it cables one in, and an instance
// fetches the office's page over Direct Connect; stopping it removes
// everything it made.
func TestDXSite(t *testing.T) {
	prerequisites(t, "curl", frr.Bgpd)
	c := newCloudWith(t, 1, 1)
	edgeM := c.room.hosts[1]
	const edgeID = "e2e-dx3"
	startFor(c.t, c.root, edgeM.ns, nil, bin, append([]string{"edge", "run", "--server", c.url, "--edge-id", edgeID,
		"--underlay", underlayAddr(2).String(), "--log-level", "warn", "--heartbeat", "400ms",
		"--dx-port", "dx0", "--dx-namespaces", c.room.tag + "-vif"}, c.join(c.t.TempDir(), "edge")...)...)
	c.eventually("the edge to register", 15*time.Second, func() bool {
		out, _ := c.cli("edge", "list")
		return strings.Contains(out, edgeID)
	})
	red := c.vpc("red", "10.20.0.0/16", "10.20.1.0/24")
	c.ok("vgw", "create", "--name", "red-vgw")
	c.ok("vgw", "attach", "red-vgw", "--vpc", "red")
	c.ok("route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	c.instance("red-a", "red-1", 0)
	c.ok("dx", "connection", "create", "--name", "dc", "--edge", edgeID, "--port", "dx0")
	c.ok("dx", "vif", "create", "--name", "dc-200", "--connection", "dc", "--vlan", "200", "--asn", "65200", "--vgw", "red-vgw", "--hold-time", "9")
	site := startFor(c.t, c.root, c.room.bridge.ns, nil, bin, "--server", c.url, "--config", c.config,
		"dx", "site", "dc-200", "--edge-netns", edgeM.name, "--port", "dx0", "--netns-prefix", c.room.tag+"-site")
	t0 := time.Now()
	c.eventually("the office's page from the instance", 40*time.Second, func() bool {
		select {
		case <-site.done:
			t.Fatalf("dx site exited:\n%s", site.out)
		default:
		}
		out, code := c.exec("red-1", 5*time.Second, "curl", "-sS", "--max-time", "2", "http://192.0.2.10/")
		return code == 0 && strings.Contains(out, "hello from the data centre")
	})
	t.Logf("dx site started → the instance fetches the office's page: %v", time.Since(t0).Round(time.Millisecond))
	site.stop(t)
	if entries, _ := os.ReadDir("/run/netns"); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), c.room.tag+"-site") }) {
		t.Fatal("dx site left namespaces behind")
	}
}
