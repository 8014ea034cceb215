package netbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/test/dot1q"
)

// OpenvpcDX is P9's subject: an instance on host A reaching a host in a
// customer's data centre over Direct Connect. Host A runs the server and
// a host agent with one TUN instance; host B is an edge with a Direct
// Connect port cabled to a router namespace (FRR bgpd configured with
// `dx vif config --format frr`, its link tagged with VLAN 101 by
// test/dot1q) with an office namespace behind it. iperf3 runs from the
// instance to the office: host A's Geneve → the edge → the VIF's TUN →
// tagged out of the port → the router → the office.
var OpenvpcDX = Path{Name: "openvpc direct connect", Setup: func(u *Underlay) (Endpoints, error) { return setupOpenvpcDX(u, false) }}

// OpenvpcDXInternet is P9's neighbour: the same cloud, whose edge also
// serves the internet (an outside TUN, an Elastic IP pool), and iperf3
// from the instance, through its Elastic IP, to a host on a simulated
// internet cabled to the edge's machine: host A's Geneve → the same edge
// → 1:1 NAT → its outside TUN → the internet.
var OpenvpcDXInternet = Path{Name: "openvpc internet, same edge", Setup: func(u *Underlay) (Endpoints, error) { return setupOpenvpcDX(u, true) }}

const (
	dxVPC    = "10.78.0.0/16"
	dxSubnet = "10.78.1.0/24"
	dxOffice = "192.0.2.10"
	// The simulated internet: the edge's machine 203.0.113.1/30 on a
	// veth to it, its server at 203.0.113.10, the Elastic IPs in
	// 198.51.100.0/24 (documentation ranges, inside the namespaces).
	inetEdge   = "203.0.113.1/30"
	inetPeer   = "203.0.113.2/30"
	inetServer = "203.0.113.10"
	inetPool   = "198.51.100.0/24"
)

func setupOpenvpcDX(u *Underlay, internet bool) (Endpoints, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		return Endpoints{}, fmt.Errorf("netbench: Direct Connect needs FRR's bgpd (apt-get install frr): %w", err)
	}
	dir, err := u.TempDir()
	if err != nil {
		return Endpoints{}, err
	}
	_ = os.Chmod(dir, 0o777) // bgpd opens files as user frr
	c := &cloud{u: u, bin: filepath.Join(dir, "openvpc"), url: "https://" + netip.AddrPortFrom(u.A.Underlay.Addr(), serverPort).String(),
		config: filepath.Join(dir, "config"), out: map[string]*syncBuffer{}}
	if err := build(ctx, c.bin); err != nil {
		return Endpoints{}, err
	}
	if err := c.start(u.A.NS, "server", "server", "--listen", strings.TrimPrefix(c.url, "https://"), "--data-dir", filepath.Join(dir, "server"),
		"--admin-config", c.config, "--eip-pool", inetPool); err != nil {
		return Endpoints{}, err
	}
	if err := c.await(ctx, "server", "the server to answer", func() bool { _, err := c.cli(ctx, "vpc", "list"); return err == nil }); err != nil {
		return Endpoints{}, err
	}
	token := func(role string) (string, error) {
		t, err := c.cli(ctx, "token", "create", "--role", role)
		return strings.TrimSpace(string(t)), err
	}
	ht, err := token("host")
	if err != nil {
		return Endpoints{}, err
	}
	if err := c.startAgent(u.A, filepath.Join(dir, u.A.NS), filepath.Join(dir, u.A.NS+"-cert"), ht); err != nil {
		return Endpoints{}, err
	}
	// The site: a router namespace cabled to the edge's port, an office
	// behind it.
	site, office := u.A.NS[:len(u.A.NS)-1]+"r", u.A.NS[:len(u.A.NS)-1]+"o"
	for _, ns := range []string{site, office} {
		if err := u.NewNS(ns); err != nil {
			return Endpoints{}, err
		}
	}
	if err := u.veth(u.B.NS, "dx0", site, "eth1"); err != nil {
		return Endpoints{}, err
	}
	if err := u.veth(site, "lan", office, "eth0"); err != nil {
		return Endpoints{}, err
	}
	et, err := token("edge")
	if err != nil {
		return Endpoints{}, err
	}
	edgeArgs := []string{"run", "--server", c.url, "--edge-id", u.B.NS, "--underlay", u.B.Underlay.Addr().String(),
		"--dx-port", "dx0", "--dx-namespaces", u.B.NS + "-vif", "--cert-dir", filepath.Join(dir, "edge-cert"), "--join-token", et}
	inet := u.A.NS[:len(u.A.NS)-1] + "i"
	if internet {
		if err := u.NewNS(inet); err != nil {
			return Endpoints{}, err
		}
		if err := u.cableInternet(inet); err != nil {
			return Endpoints{}, err
		}
		edgeArgs = append(edgeArgs, "--outside", "tun:ovpc-out")
	}
	if err := c.start(u.B.NS, "edge", append([]string{"edge"}, edgeArgs...)...); err != nil {
		return Endpoints{}, err
	}
	if err := c.await(ctx, u.A.NS, "the host agent to register", func() bool { return c.reachable(ctx, u.A.NS) }); err != nil {
		return Endpoints{}, err
	}
	if err := c.await(ctx, "edge", "the edge to register", func() bool {
		out, err := c.cli(ctx, "edge", "list")
		return err == nil && strings.Contains(string(out), u.B.NS)
	}); err != nil {
		return Endpoints{}, err
	}
	for _, args := range [][]string{
		{"vpc", "create", "--name", "dx", "--cidr", dxVPC},
		{"subnet", "create", "--vpc", "dx", "--name", "dx-a", "--cidr", dxSubnet},
		{"vgw", "create", "--name", "dx-vgw"},
		{"vgw", "attach", "dx-vgw", "--vpc", "dx"},
		{"dx", "connection", "create", "--name", "dc", "--edge", u.B.NS, "--port", "dx0"},
		{"dx", "vif", "create", "--name", "dc-101", "--connection", "dc", "--vlan", "101", "--asn", "65101", "--vgw", "dx-vgw", "--hold-time", "9"},
	} {
		if _, err := c.cli(ctx, args...); err != nil {
			return Endpoints{}, fmt.Errorf("netbench: %w", err)
		}
	}
	var vpc struct {
		MainRouteTableID string `json:"mainRouteTableId"`
	}
	var vif struct {
		AmazonAddress   string `json:"amazonAddress"`
		CustomerAddress string `json:"customerAddress"`
	}
	if err := c.cliJSON(ctx, &vpc, "vpc", "get", "dx"); err != nil {
		return Endpoints{}, err
	}
	if err := c.cliJSON(ctx, &vif, "dx", "vif", "get", "dc-101"); err != nil {
		return Endpoints{}, err
	}
	if _, err := c.cli(ctx, "route-table", "propagation", "enable", vpc.MainRouteTableID, "--vgw", "dx-vgw"); err != nil {
		return Endpoints{}, fmt.Errorf("netbench: %w", err)
	}
	conf, err := c.cli(ctx, "dx", "vif", "config", "dc-101", "--format", "frr", "--announce", "192.0.2.0/24")
	if err != nil {
		return Endpoints{}, fmt.Errorf("netbench: %w", err)
	}
	amazon, err1 := netip.ParsePrefix(vif.AmazonAddress)
	customer, err2 := netip.ParsePrefix(vif.CustomerAddress)
	if err1 != nil || err2 != nil {
		return Endpoints{}, fmt.Errorf("netbench: VIF peer addresses %q %q", vif.AmazonAddress, vif.CustomerAddress)
	}
	for _, a := range []struct {
		ns, link string
		p        netip.Prefix
	}{{site, "eth1", customer}, {site, "lan", netip.MustParsePrefix("192.0.2.1/24")}, {office, "eth0", netip.MustParsePrefix(dxOffice + "/24")}} {
		if err := u.AddrUp(a.ns, a.link, a.p); err != nil {
			return Endpoints{}, err
		}
	}
	if err := u.siteRoutes(site, office, amazon.Addr()); err != nil {
		return Endpoints{}, err
	}
	if err := u.tag(site, "eth1", 101); err != nil {
		return Endpoints{}, err
	}
	cf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(cf, conf, 0o644); err != nil {
		return Endpoints{}, err
	}
	bgpd := exec.Command("/usr/lib/frr/bgpd", "-Z", "-n", "-S", "-f", cf, "-i", filepath.Join(dir, "bgpd.pid"),
		"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir)
	if err := u.Start(site, bgpd); err != nil {
		return Endpoints{}, err
	}
	// The instance, and the office reachable from it.
	out, err := c.cli(ctx, "instance", "run", "--subnet", "dx-a", "--name", "i0", "--host", u.A.NS, "--wait", "-o", "json")
	if err != nil {
		return Endpoints{}, fmt.Errorf("netbench: %w", err)
	}
	var inst instance
	if err := json.Unmarshal(out, &inst); err != nil || inst.ID == "" {
		return Endpoints{}, fmt.Errorf("netbench: openvpc instance run printed no instance (%v): %.300s", err, out)
	}
	ins := nic.NamespaceName(inst.ID)
	if err := u.Adopt(ins); err != nil {
		return Endpoints{}, err
	}
	if err := c.await(ctx, "edge", "the instance to reach the office over Direct Connect", func() bool {
		_, err := u.Output(ctx, ins, "ping", "-c", "1", "-W", "1", dxOffice)
		return err == nil
	}); err != nil {
		bg := context.Background()
		vifOut, _ := c.cli(bg, "dx", "vif", "get", "dc-101")
		trace, _ := c.cli(bg, "trace", "i0", dxOffice, "--proto", "icmp")
		edges, _ := c.cli(bg, "edge", "list", "-o", "json")
		return Endpoints{}, fmt.Errorf("%w\nthe VIF:\n%s\ntrace:\n%s\nedges:\n%s\nedge log:\n%s", err, vifOut, trace, edges, c.out["edge"])
	}
	if !internet {
		return Endpoints{ServerNS: office, ClientNS: ins, ServerAddr: netip.MustParseAddr(dxOffice)}, nil
	}
	if err := u.routePool(ctx); err != nil {
		return Endpoints{}, err
	}
	for _, args := range [][]string{
		{"igw", "create", "--name", "dx-igw"},
		{"igw", "attach", "dx-igw", "--vpc", "dx"},
		{"route", "create", "--vpc", "dx", "--dest", "0.0.0.0/0", "--target", "dx-igw"},
		{"eip", "allocate", "--name", "i0-ip"},
		{"eip", "associate", "i0-ip", "--instance", "i0"},
	} {
		if _, err := c.cli(ctx, args...); err != nil {
			return Endpoints{}, fmt.Errorf("netbench: %w", err)
		}
	}
	if err := c.await(ctx, "edge", "the instance to reach the internet through its Elastic IP", func() bool {
		_, err := u.Output(ctx, ins, "ping", "-c", "1", "-W", "1", inetServer)
		return err == nil
	}); err != nil {
		trace, _ := c.cli(context.Background(), "trace", "i0", inetServer, "--proto", "icmp")
		return Endpoints{}, fmt.Errorf("%w\ntrace:\n%s\nedge log:\n%s", err, trace, c.out["edge"])
	}
	return Endpoints{ServerNS: inet, ClientNS: ins, ServerAddr: netip.MustParseAddr(inetServer)}, nil
}

// cableInternet joins the edge's machine to namespace inet, the internet:
// the machine routes everything there and forwards; the internet's server
// address is on its loopback, and it routes the Elastic IP pool back to
// the edge's machine.
func (u *Underlay) cableInternet(inet string) error {
	if err := u.veth(u.B.NS, "out0", inet, "e1"); err != nil {
		return err
	}
	for _, a := range []struct {
		ns, link string
		p        netip.Prefix
	}{{u.B.NS, "out0", netip.MustParsePrefix(inetEdge)}, {inet, "e1", netip.MustParsePrefix(inetPeer)}, {inet, "lo", netip.MustParsePrefix(inetServer + "/32")}} {
		if err := u.AddrUp(a.ns, a.link, a.p); err != nil {
			return err
		}
	}
	if err := u.inNS(u.B.NS, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0) }); err != nil {
		return err
	}
	hb, err := u.Handle(u.B.NS)
	if err != nil {
		return err
	}
	if err := hb.RouteAdd(&netlink.Route{Gw: netip.MustParsePrefix(inetPeer).Addr().AsSlice()}); err != nil {
		return fmt.Errorf("netbench: the edge machine's route to the internet: %w", err)
	}
	hi, err := u.Handle(inet)
	if err != nil {
		return err
	}
	pool := netip.MustParsePrefix(inetPool)
	if err := hi.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: pool.Addr().AsSlice(), Mask: net.CIDRMask(pool.Bits(), 32)}, Gw: netip.MustParsePrefix(inetEdge).Addr().AsSlice()}); err != nil {
		return fmt.Errorf("netbench: the internet's route to the Elastic IPs: %w", err)
	}
	return nil
}

// routePool routes the Elastic IP pool into the edge's outside TUN once
// the edge has brought it up (a route into a device still down is
// refused).
func (u *Underlay) routePool(ctx context.Context) error {
	hb, err := u.Handle(u.B.NS)
	if err != nil {
		return err
	}
	for {
		if l, err := hb.LinkByName("ovpc-out"); err == nil && l.Attrs().Flags&net.FlagUp != 0 {
			pool := netip.MustParsePrefix(inetPool)
			if err := hb.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: pool.Addr().AsSlice(), Mask: net.CIDRMask(pool.Bits(), 32)}, LinkIndex: l.Attrs().Index}); err != nil {
				return fmt.Errorf("netbench: route the Elastic IPs into the edge's outside: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netbench: the edge's outside ovpc-out never came up: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *cloud) cliJSON(ctx context.Context, v any, args ...string) error {
	out, err := c.cli(ctx, append(args, "-o", "json")...)
	if err != nil {
		return fmt.Errorf("netbench: %w", err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("netbench: openvpc %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// veth joins a:an to b:bn, both up, without IPv6.
func (u *Underlay) veth(a, an, b, bn string) error {
	ha, err := u.Handle(a)
	if err != nil {
		return err
	}
	u.mu.Lock()
	nb := u.ns[b]
	u.mu.Unlock()
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an}, PeerName: bn, PeerNamespace: netlink.NsFd(int(nb))}); err != nil {
		return fmt.Errorf("netbench: veth %s:%s–%s:%s: %w", a, an, b, bn, err)
	}
	for _, x := range []struct{ ns, link string }{{a, an}, {b, bn}} {
		if err := u.inNS(x.ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+x.link+"/disable_ipv6", []byte("1"), 0)
		}); err != nil {
			return err
		}
		h, err := u.Handle(x.ns)
		if err != nil {
			return err
		}
		l, err := h.LinkByName(x.link)
		if err == nil {
			err = h.LinkSetUp(l)
		}
		if err != nil {
			return fmt.Errorf("netbench: %s up in %s: %w", x.link, x.ns, err)
		}
	}
	return nil
}

// siteRoutes: the router forwards, and routes the VPC to the VIF (bgpd
// runs without zebra, so it installs nothing); the office's default is
// the router.
func (u *Underlay) siteRoutes(site, office string, amazon netip.Addr) error {
	if err := u.inNS(site, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0) }); err != nil {
		return err
	}
	hs, err := u.Handle(site)
	if err != nil {
		return err
	}
	eth1, err := hs.LinkByName("eth1")
	if err != nil {
		return err
	}
	vpc := netip.MustParsePrefix(dxVPC)
	if err := hs.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: vpc.Addr().AsSlice(), Mask: net.CIDRMask(vpc.Bits(), 32)}, Gw: amazon.AsSlice(), LinkIndex: eth1.Attrs().Index}); err != nil {
		return fmt.Errorf("netbench: the router's route to the VPC: %w", err)
	}
	ho, err := u.Handle(office)
	if err != nil {
		return err
	}
	if err := ho.RouteAdd(&netlink.Route{Gw: net.IPv4(192, 0, 2, 1)}); err != nil {
		return fmt.Errorf("netbench: the office's default route: %w", err)
	}
	return nil
}

// tag makes ns's link a VLAN vid link (test/dot1q), until Close.
func (u *Underlay) tag(ns, link string, vid uint16) error {
	return u.inNS(ns, func() error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		t, err := dot1q.Link(l.Attrs().Index, vid)
		if err != nil {
			return err
		}
		u.OnClose(t.Close)
		return nil
	})
}

// inNS runs f on a thread inside ns.
func (u *Underlay) inNS(ns string, f func() error) error {
	u.mu.Lock()
	h, ok := u.ns[ns]
	u.mu.Unlock()
	if !ok {
		return fmt.Errorf("netbench: no namespace %s in this underlay", ns)
	}
	return nsthread.Run(func() error {
		if err := netns.Set(h); err != nil {
			return err
		}
		return f()
	})
}
