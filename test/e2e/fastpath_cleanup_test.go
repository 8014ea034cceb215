package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/nsthread"
)

// tcxPrograms counts the TCX ingress programs on link name in machine m
// (-1: no such link).
func tcxPrograms(t *testing.T, m *machine, name string) int {
	t.Helper()
	n := -1
	err := nsthread.In(m.ns, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil // gone
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(r.Programs)
		return nil
	})
	if err != nil {
		t.Fatalf("querying TCX programs on %s in %s: %v", name, m.name, err)
	}
	return n
}

// TestFastPathCleanup: the agent's programs are on the underlay device and
// the host end of each instance's veth while it runs; kill -9 leaves none
// attached (nothing is pinned); the restarted agent attaches afresh to the
// instance it adopts, which works again; a clean stop leaves neither
// programs nor the veth.
func TestFastPathCleanup(t *testing.T) {
	prerequisites(t, "ping", "curl")
	ours := leakCheck(t)
	c := newCloudNIC(t, 2, 0, []string{"--nic", "veth", "--fastpath", "on", "--metrics", "{underlay}:" + strconv.Itoa(metricsPort)})
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}
	h1, veth := c.room.hosts[0], nic.VethHostName(a.ID)
	c.mustPing("a", b.PrivateIP)
	if n := tcxPrograms(t, h1, "u0"); n != 1 {
		t.Errorf("the underlay device has %d TCX programs while the agent runs, want 1", n)
	}
	if n := tcxPrograms(t, h1, veth); n != 1 {
		t.Errorf("a's veth %s has %d TCX programs while the agent runs, want 1", veth, n)
	}
	c.agents[0].kill()
	if n := tcxPrograms(t, h1, "u0"); n != 0 {
		t.Errorf("after kill -9 the underlay device still has %d TCX programs", n)
	}
	if n := tcxPrograms(t, h1, veth); n > 0 {
		t.Errorf("after kill -9 a's veth still has %d TCX programs", n)
	}
	c.agents[0] = c.startAgent(0)
	c.eventually("a to work again after the restart", 20*time.Second, func() bool {
		_, code := c.exec("a", 5*time.Second, "ping", "-c", "1", "-W", "1", b.PrivateIP)
		return code == 0
	})
	if n := tcxPrograms(t, h1, "u0"); n != 1 {
		t.Errorf("after the restart the underlay device has %d TCX programs, want 1", n)
	}
	if n := tcxPrograms(t, h1, veth); n != 1 {
		t.Errorf("after the restart a's veth has %d TCX programs, want 1", n)
	}
	c.agents[0].stop(t)
	if n := tcxPrograms(t, h1, "u0"); n != 0 {
		t.Errorf("after a clean stop the underlay device still has %d TCX programs", n)
	}
	if n := tcxPrograms(t, h1, veth); n != -1 {
		t.Errorf("after a clean stop a's veth %s is still there (%d programs)", veth, n)
	}
}

// TestNICAutoFastPath: `--nic auto` with no --fastpath flag, as root on a
// veth underlay, gives veth NICs with the kernel fast path on — and a flow
// between the hosts is carried by it.
func TestNICAutoFastPath(t *testing.T) {
	prerequisites(t, "ping", "curl")
	ours := leakCheck(t)
	c := newCloudNIC(t, 2, 0, []string{"--nic", "auto", "--metrics", "{underlay}:" + strconv.Itoa(metricsPort)})
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}
	if n := tcxPrograms(t, c.room.hosts[0], nic.VethHostName(a.ID)); n != 1 {
		t.Fatalf("--nic auto: a's veth has %d fast-path programs (-1: no veth), want 1", n)
	}
	self, _ := os.Executable()
	sink := c.background("b", []string{udpSinkEnv + "=" + b.PrivateIP + ":5000"}, self)
	c.eventually("the UDP sink in b", 10*time.Second, func() bool { return strings.Contains(sink.out.String(), "ready") })
	if out, code := c.exec("a", 30*time.Second, "env", sendUDPEnv+"="+a.PrivateIP+":40000 "+b.PrivateIP+":5000 200", self); code != 0 {
		t.Fatalf("sending: exit %d\n%s", code, out)
	}
	if n := fast(c.metrics(0), "egress_forwarded"); n < 150 {
		t.Errorf("--nic auto: the fast path carried %v of 200 datagrams", n)
	}
}

// TestFastPathMTU: an instance that raised its MTU past the VPC's sends
// packets larger than the path takes; they reach the Go story (the fast
// path never replays them), which answers "fragmentation needed" with the
// path MTU, as the VPC router would — path MTU discovery works.
func TestFastPathMTU(t *testing.T) {
	prerequisites(t, "ping", "curl")
	ours := leakCheck(t)
	c := newCloudNIC(t, 2, 0, []string{"--nic", "veth", "--fastpath", "on"})
	ours.dirs = c.dirs
	c.vpc("red", "10.0.0.0/16", "10.0.1.0/24")
	a := c.instance("red-a", "a", 0)
	b := c.instance("red-a", "b", 1)
	ours.instances = []string{a.ID, b.ID}
	c.mustPing("a", b.PrivateIP)
	h, err := netns.GetFromName(nic.NamespaceName(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	eth, err := nl.LinkByName(nic.DeviceName)
	if err == nil {
		err = nl.LinkSetMTU(eth, 1500)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, _ := c.exec("a", 15*time.Second, "ping", "-c", "3", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1472", b.PrivateIP)
	if !strings.Contains(out, "mtu = 1456") && !strings.Contains(out, "mtu=1456") {
		t.Errorf("a sent 1500-byte packets with DF past a 1456-byte path; want fragmentation needed with mtu 1456:\n%s", out)
	}
	// What fits still goes.
	if out, code := c.exec("a", 15*time.Second, "ping", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1428", b.PrivateIP); code != 0 {
		t.Errorf("1456-byte pings failed:\n%s", out)
	}
}
