package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/edge/vpn"
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
