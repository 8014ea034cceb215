package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/openvpc/openvpc/edge/vpn"
)

// P8 is a measurement, not a check: `go run ./bench` runs it with
// OPENVPC_P8=<file> and reads the rates from that file.
const p8Env = "OPENVPC_P8"

// peerIP is the plain strongSwan peer's public address in P8's baseline.
const peerIP = "192.0.2.102"

// TestVPNP8 measures one TCP stream from an instance to the on-premises
// host through openvpc's VPN, then the same customer gateway (same
// kernel-libipsec, same proposals) talking to a plain strongSwan peer on
// the same internet instead, the peer sending from the instance's address:
// the ratio is P8.
func TestVPNP8(t *testing.T) {
	out := os.Getenv(p8Env)
	if out == "" {
		t.Skipf("a benchmark: run by go run ./bench (%s=FILE)", p8Env)
	}
	needStrongSwan(t, "iperf3")
	c := newVPNCloud(t)
	red := c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	v := vpnResources(c.cloud, red)
	c.routeTunnels(v)
	conf := c.ok("vpn", "config", "office-vpn")
	c.startSite(conf, 6*time.Second)
	c.tunnelsUp(v.ID, 2, 60*time.Second)
	a := c.instance("red-a", "red-a", 0)
	c.eventually("the instance to reach the site", 20*time.Second, func() bool {
		_, code := c.exec("red-a", 5*time.Second, "ping", "-c", "1", "-W", "1", siteHost)
		return code == 0
	})
	start(t, c.onprem.ns, nil, "iperf3", "-s", "-B", siteHost)
	var res string
	var code int
	c.eventually("iperf3 through openvpc", 10*time.Second, func() bool {
		res, code = c.exec("red-a", 30*time.Second, "iperf3", "-c", siteHost, "-t", "5", "-J")
		return !strings.Contains(res, "Connection refused")
	})
	viaOpenvpc := iperfMbps(t, res, code)

	// The baseline: the connection goes, the site's charon starts afresh
	// with tunnel 1 pointed at a plain strongSwan peer with the same key.
	c.ok("vpn", "delete", "office-vpn")
	c.siteCharon.Stop()
	direct := strings.ReplaceAll(conf, v.Tunnels[0].OutsideAddress, peerIP)
	peer := newMachine(t, c.room.tag+"-peer")
	c.plainPeer(peer, tunnelKey(t, conf, v.ID, 1))
	c.startSite(direct, 6*time.Second)
	c.eventually("the site's tunnel to the plain peer", 30*time.Second, func() bool {
		o, _ := run(t, c.site.ns, 5*time.Second, "swanctl", "--list-sas", "--uri", "unix://"+c.siteCharon.Socket())
		return strings.Contains(o, peerIP) && strings.Contains(o, "INSTALLED")
	})
	c.eventually("iperf3 through the plain peer", 20*time.Second, func() bool {
		res, code = run(t, peer.ns, 30*time.Second, "iperf3", "-c", siteHost, "-B", a.PrivateIP, "-t", "5", "-J")
		return code == 0
	})
	viaPeer := iperfMbps(t, res, code)
	t.Logf("P8: TCP 1 stream instance → on-premises: openvpc VPN %.0f Mbit/s, plain strongSwan peer %.0f Mbit/s: ratio %.2f", viaOpenvpc, viaPeer, viaOpenvpc/viaPeer)
	b, _ := json.Marshal(map[string]float64{"openvpc": viaOpenvpc, "direct": viaPeer})
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// plainPeer makes peer a strongSwan responder on the internet at peerIP
// holding the VPC side of tunnel tu, as openvpc's edge would, with the
// instance's address (as its own) inside the VPC's CIDR.
func (c *vpnCloud) plainPeer(peer *machine, psk string) {
	t := c.t
	hi, err := netlink.NewHandleAt(c.inet.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close()
	hp, err := netlink.NewHandleAt(peer.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hp.Close()
	up(t, hp, "lo")
	addAddr(t, hp, "lo", netip.MustParsePrefix("10.0.1.4/32"))
	if err := hi.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "peer"}, PeerName: "i0", PeerNamespace: netlink.NsFd(int(peer.ns))}); err != nil {
		t.Fatal(err)
	}
	addAddr(t, hi, "peer", netip.MustParsePrefix("192.0.2.101/30"))
	up(t, hi, "peer")
	addAddr(t, hp, "i0", netip.MustParsePrefix(peerIP+"/30"))
	up(t, hp, "i0")
	if err := hp.RouteAdd(&netlink.Route{Gw: net.ParseIP("192.0.2.101")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ch, err := vpn.StartCharon(t.Context(), vpn.CharonConfig{Netns: peer.name, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c.root.Cleanup(ch.Stop)
	conf := fmt.Sprintf(`connections {
    peer {
        version = 2
        local_addrs = %s
        remote_addrs = %s
        proposals = aes128gcm16-prfsha256-modp2048
        encap = yes
        local {
            auth = psk
            id = %s
        }
        remote {
            auth = psk
            id = %s
        }
        children {
            peer {
                local_ts = 10.0.0.0/16
                remote_ts = %s
                esp_proposals = aes128gcm16-modp2048
            }
        }
    }
}
secrets {
    ike-peer {
        id-a = %s
        id-b = %s
        secret = "%s"
    }
}
`, peerIP, cgwIP, peerIP, cgwIP, sitePfx, peerIP, cgwIP, psk)
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, peer.ns, 20*time.Second, "swanctl", "--load-all", "--noprompt", "--file", file, "--uri", "unix://"+ch.Socket()); code != 0 {
		t.Fatalf("peer: swanctl --load-all: exit %d\n%s", code, out)
	}
}

// tunnelKey is tunnel n's (1 or 2) key in a printed config.
func tunnelKey(t *testing.T, conf, id string, n int) string {
	i := strings.Index(conf, fmt.Sprintf("ike-%s-tunnel%d {", id, n))
	if i < 0 {
		t.Fatalf("no secret of tunnel %d in:\n%s", n, conf)
	}
	rest := conf[i:]
	j := strings.Index(rest, `secret = "`)
	rest = rest[j+len(`secret = "`):]
	return rest[:strings.IndexByte(rest, '"')]
}
