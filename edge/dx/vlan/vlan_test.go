//go:build linux

package vlan

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/nsthread"
)

func need(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("ping")
	if os.Geteuid() == 0 && err == nil {
		return
	}
	if os.Getenv("OPENVPC_E2E") == "1" {
		t.Fatal("OPENVPC_E2E=1 but this test needs root and ping (iputils-ping)")
	}
	t.Skip("needs root and ping")
}

// in runs fn on a thread inside namespace name.
func in(t *testing.T, name string, fn func() error) {
	t.Helper()
	if err := nsthread.InNamed(name, fn); err != nil {
		t.Fatal(err)
	}
}

type lab struct {
	t   *testing.T
	tag string
}

func (l *lab) ns(name string) string {
	full := l.tag + "-" + name
	if err := nsthread.Run(func() error {
		h, err := netns.NewNamed(full) // moves this thread in; nsthread.Run moves it back
		if err == nil {
			h.Close()
		}
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = netns.DeleteNamed(full) })
	in(l.t, full, func() error {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
	return full
}

// veth joins a:an to b:bn, both up; addr (optional) goes on b's end.
func (l *lab) veth(a, an, b, bn string, addr string) int {
	var idx int
	nb, err := netns.GetFromName(b)
	if err != nil {
		l.t.Fatal(err)
	}
	defer nb.Close()
	in(l.t, a, func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an}, PeerName: bn, PeerNamespace: netlink.NsFd(int(nb))}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		ln, err := netlink.LinkByName(an)
		if err != nil {
			return err
		}
		idx = ln.Attrs().Index
		return netlink.LinkSetUp(ln)
	})
	in(l.t, b, func() error {
		ln, err := netlink.LinkByName(bn)
		if err != nil {
			return err
		}
		if addr != "" {
			p := netip.MustParsePrefix(addr)
			if err := netlink.AddrAdd(ln, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(ln)
	})
	return idx
}

func ping(t *testing.T, ns, to string) bool {
	t.Helper()
	var out []byte
	var err error
	in(t, ns, func() error {
		out, err = exec.Command("ping", "-c", "2", "-i", "0.2", "-W", "1", to).CombinedOutput()
		return nil
	})
	return err == nil && strings.Contains(string(out), " 0% packet loss")
}

// TestPortTags: two ports, each with this package's tagging, carry VLAN
// 101 between two untagged links; VLAN 202 on one side has no VIF on the
// other and is dropped and counted; so is an untagged frame, and a port's
// own stack sends nothing untagged.
func TestPortTags(t *testing.T) {
	need(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &lab{t: t, tag: "ovpcvlan-" + hex.EncodeToString(b[:])}
	edge, site := l.ns("edge"), l.ns("site")
	vifE, r101, r202 := l.ns("vif101"), l.ns("r101"), l.ns("r202")
	l.veth(edge, "port", site, "port", "169.254.9.2/30") // the site's untagged address is the untagged test
	portE := ifindex(t, edge, "port")
	portS := ifindex(t, site, "port")
	e101 := l.veth(edge, "v101", vifE, "dx", "169.254.1.1/30")
	s101 := l.veth(site, "v101", r101, "dx", "169.254.1.2/30")
	s202 := l.veth(site, "v202", r202, "dx", "169.254.1.2/30")

	var pe, ps *Port
	in(t, edge, func() error {
		var err error
		if pe, err = Attach(portE); err == nil {
			err = pe.AddVIF(101, e101)
		}
		return err
	})
	t.Cleanup(func() { pe.Close() })
	in(t, site, func() error {
		var err error
		if ps, err = Attach(portS); err == nil {
			if err = ps.AddVIF(101, s101); err == nil {
				err = ps.AddVIF(202, s202)
			}
		}
		return err
	})
	t.Cleanup(func() { ps.Close() })

	if !ping(t, r101, "169.254.1.1") {
		t.Fatalf("VLAN 101 does not carry pings; edge %+v site %+v", pe.Counters(), ps.Counters())
	}
	c := pe.Counters()
	if c.In == 0 || c.Out == 0 {
		t.Fatalf("edge counters %+v: want frames in and out", c)
	}
	if in, out := pe.VLANFrames(101); in != c.In || out != c.Out {
		t.Fatalf("VLAN 101 counted %d in %d out; the port %d in %d out", in, out, c.In, c.Out)
	}
	if in, out := pe.VLANFrames(202); in != 0 || out != 0 {
		t.Fatalf("VLAN 202 (no VIF) counted %d in %d out", in, out)
	}
	if ping(t, r202, "169.254.1.1") {
		t.Fatal("VLAN 202 reached VLAN 101's VIF")
	}
	if c := pe.Counters(); c.UnknownVLAN == 0 {
		t.Fatalf("edge counters %+v: VLAN 202 should count as unknown", c)
	}
	// Removing the VIF makes its VLAN unknown.
	if err := pe.RemoveVIF(101); err != nil {
		t.Fatal(err)
	}
	if ping(t, r101, "169.254.1.1") {
		t.Fatal("VLAN 101 still carries pings after RemoveVIF")
	}
	if err := pe.AddVIF(4095, e101); err == nil {
		t.Fatal("VLAN 4095 accepted")
	}
	// The site's own stack, untagged on its port, stays off the wire.
	in(t, edge, func() error {
		ln, _ := netlink.LinkByName("port")
		return netlink.AddrAdd(ln, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(169, 254, 9, 1), Mask: net.CIDRMask(30, 32)}})
	})
	untagged := pe.Counters().Untagged
	if ping(t, site, "169.254.9.1") {
		t.Fatal("an untagged ping crossed the port")
	}
	if c := ps.Counters(); c.Local == 0 {
		t.Fatalf("site counters %+v: its own untagged pings should count as local", c)
	}
	if c := pe.Counters(); c.Untagged != untagged {
		t.Fatalf("edge counters %+v: untagged frames reached it past the site's port program", c)
	}
	// Without the site's programs an untagged frame reaches the edge: it
	// drops it.
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if ping(t, site, "169.254.9.1") {
		t.Fatal("an untagged ping crossed the port")
	}
	if c := pe.Counters(); c.Untagged == untagged {
		t.Fatalf("edge counters %+v: the untagged pings should count", c)
	}
	t.Logf("edge %+v", pe.Counters())
}

func ifindex(t *testing.T, ns, name string) int {
	var idx int
	in(t, ns, func() error {
		ln, err := netlink.LinkByName(name)
		if err == nil {
			idx = ln.Attrs().Index
		}
		return err
	})
	return idx
}
