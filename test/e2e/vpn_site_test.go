package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestVPNSite: `openvpc vpn site` is the quickstart's office: given a VPN
// connection and the simulated internet's namespace, it puts a strongSwan
// customer gateway at the cgw's address, loaded with the connection's own
// printed configuration, and an office behind it; the tunnels come up and
// an instance fetches the office's page through the VPN; stopping it
// removes every namespace and link it made.
func TestVPNSite(t *testing.T) {
	needStrongSwan(t, "curl")
	// The cloud's own site (at cgwIP) stays idle: this one is vpn site's.
	c := newVPNCloudWith(t, 1)
	const hqIP, hqNet = "203.0.113.20", "192.168.60.0/24"
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	c.ok("cgw", "create", "--name", "hq", "--ip", hqIP)
	c.ok("vgw", "create", "--name", "red-vgw")
	c.ok("vgw", "attach", "red-vgw", "--vpc", "red")
	v := okJSON[vpnJ](c.cloud, "vpn", "create", "--name", "hq-vpn", "--cgw", "hq", "--vgw", "red-vgw", "--static-routes-only", "--dpd-timeout", "6")
	c.ok("vpn", "route", "add", "hq-vpn", "--dest", hqNet)
	c.ok("route-table", "propagation", "enable", red.MainRouteTableID, "--vgw", "red-vgw")
	c.routeTunnels(v)
	c.instance("red-a", "red-a", 0)

	// A cgw with no static route and no --office: told what to give.
	c.ok("cgw", "create", "--name", "bare", "--ip", "203.0.113.21")
	c.ok("vpn", "create", "--name", "bare-vpn", "--cgw", "bare", "--vgw", "red-vgw", "--static-routes-only")
	if out, code := c.cli("vpn", "site", "bare-vpn", "--internet-netns", c.inet.name); code == 0 || !strings.Contains(out, "--office") {
		t.Fatalf("vpn site of a connection without routes: exit %d\n%s", code, out)
	}
	c.ok("vpn", "delete", "bare-vpn")

	prefix := c.room.tag + "-vs"
	site := startFor(c.t, c.root, c.room.bridge.ns, nil, bin, "--server", c.url, "--config", c.config,
		"vpn", "site", "hq-vpn", "--internet-netns", c.inet.name, "--netns-prefix", prefix)
	t0 := time.Now()
	c.eventually("the office's page from the instance", 60*time.Second, func() bool {
		select {
		case <-site.done:
			t.Fatalf("vpn site exited:\n%s", site.out)
		default:
		}
		out, code := c.exec("red-a", 5*time.Second, "curl", "-sS", "--max-time", "2", "http://192.168.60.10/")
		return code == 0 && strings.Contains(out, "hello from the office")
	})
	t.Logf("vpn site started → the instance fetches the office's page: %v", time.Since(t0).Round(time.Millisecond))
	if got := okJSON[vpnJ](c.cloud, "vpn", "get", "hq-vpn"); !slices.ContainsFunc(got.Tunnels, func(tu vpnTunnelJ) bool { return tu.Status.State == "up" }) {
		t.Fatalf("no tunnel up while the page came through:\n%s", c.ok("vpn", "get", "hq-vpn"))
	}
	hi, err := netlink.NewHandleAt(c.inet.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close()
	links := func() int {
		ls, _ := hi.LinkList()
		return len(ls)
	}
	before := links()
	if before != 4 { // lo, the edge's, the cloud's own site's, vpn site's cable
		ls, _ := hi.LinkList()
		t.Fatalf("the internet has %d links; want 4: %v", before, ls)
	}
	site.stop(t)
	if entries, _ := os.ReadDir("/run/netns"); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), prefix) }) {
		t.Fatal("vpn site left namespaces behind")
	}
	if after := links(); after != before-1 {
		t.Fatalf("the internet had %d links with the site and %d after; want its cable gone", before, after)
	}
}
