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
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
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
	t := s.c.t
	m := newMachine(t, s.c.room.tag+"-"+name)
	noIPv6(t, m)
	h, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	up(t, h, "lo")
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: name, PeerNamespace: netlink.NsFd(int(s.sw.ns))}); err != nil {
		t.Fatal(err)
	}
	s.plug(name)
	addAddr(t, h, "eth1", addr)
	up(t, h, "eth1")
	l, _ := h.LinkByName("eth1")
	err = within(m.ns, func() error {
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
	return m, r
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
