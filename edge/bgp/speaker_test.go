package bgp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/nsthread"
	"github.com/openvpc/openvpc/test/frr"
)

// childEnv turns the test binary into the speaker child.
const childEnv = "OPENVPC_TEST_BGP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := ServeChild(context.Background(), os.Stdin, os.Stdout, log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

func TestConfigValidate(t *testing.T) {
	good := Config{LocalASN: 64512, PeerASN: 65000, LocalAddr: netip.MustParseAddr("169.254.1.1"), PeerAddr: netip.MustParseAddr("169.254.1.2")}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no asn":          {func(c *Config) { c.PeerASN = 0 }, "ASN"},
		"ibgp":            {func(c *Config) { c.PeerASN = c.LocalASN }, "eBGP"},
		"same address":    {func(c *Config) { c.PeerAddr = c.LocalAddr }, "both"},
		"ipv6":            {func(c *Config) { c.PeerAddr = netip.MustParseAddr("fe80::1") }, "IPv4"},
		"hold too short":  {func(c *Config) { c.Hold = 2 * time.Second }, "minimum"},
		"keepalive":       {func(c *Config) { c.Hold, c.Keepalive = 9*time.Second, 4*time.Second }, "third"},
		"fractional hold": {func(c *Config) { c.Hold = 3500 * time.Millisecond; c.Keepalive = time.Second }, "whole seconds"},
		"long key":        {func(c *Config) { c.Password = strings.Repeat("k", 81) }, "80"},
		"host prefix":     {func(c *Config) { c.Announce = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/16")} }, "network prefixes"},
	} {
		c := good
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, tc.want)
		}
	}
	d := good.withDefaults()
	if d.Hold != 90*time.Second || d.Keepalive != 30*time.Second || d.TTL != 1 || d.MaxPrefixes != 100 {
		t.Errorf("defaults %+v, want AWS's 90 s / 30 s / TTL 1 / 100 prefixes", d)
	}
}

// link is two namespaces joined by a veth: the edge's side (a) and the
// router's (b), addresses from a 169.254.x.0/30.
type link struct {
	a, b     string // namespace names
	aIP, bIP netip.Addr
}

func needRoot(t *testing.T) {
	t.Helper()
	missing := []string{}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if !frr.Available() {
		missing = append(missing, "frr (bgpd, vtysh)")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("OPENVPC_E2E") == "1" {
		t.Fatalf("OPENVPC_E2E=1 but this machine lacks %s", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

func newLink(t *testing.T) link {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	tag := "ovpcbgp-" + hex.EncodeToString(b[:])
	l := link{a: tag + "-a", b: tag + "-b", aIP: netip.MustParseAddr("169.254.77.1"), bIP: netip.MustParseAddr("169.254.77.2")}
	for _, n := range []string{l.a, l.b} {
		onThread(t, func() error {
			h, err := netns.NewNamed(n)
			if err == nil {
				h.Close()
			}
			return err
		})
		t.Cleanup(func() { _ = netns.DeleteNamed(n) })
	}
	ha, hb := handle(t, l.a), handle(t, l.b)
	nb, _ := netns.GetFromName(l.b)
	defer nb.Close()
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "p0"}, PeerName: "p0", PeerNamespace: netlink.NsFd(int(nb))}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	for _, x := range []struct {
		h  *netlink.Handle
		ip netip.Addr
	}{{ha, l.aIP}, {hb, l.bIP}} {
		for _, name := range []string{"lo", "p0"} {
			ln, err := x.h.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if name == "p0" {
				if err := x.h.AddrAdd(ln, &netlink.Addr{IPNet: &net.IPNet{IP: x.ip.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := x.h.LinkSetUp(ln); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l
}

func handle(t *testing.T, name string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func onThread(t *testing.T, fn func() error) {
	t.Helper()
	if err := nsthread.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// routerConf is the customer router's side.
func routerConf(l link, password string, networks ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname site\nrouter bgp 65000\n bgp router-id %v\n no bgp ebgp-requires-policy\n no bgp network import-check\n", l.bIP)
	fmt.Fprintf(&b, " neighbor %v remote-as 64512\n neighbor %v timers 1 3\n neighbor %v timers connect 1\n", l.aIP, l.aIP, l.aIP)
	if password != "" {
		fmt.Fprintf(&b, " neighbor %v password %s\n", l.aIP, password)
	}
	b.WriteString(" address-family ipv4 unicast\n")
	for _, n := range networks {
		fmt.Fprintf(&b, "  network %s\n", n)
	}
	b.WriteString(" exit-address-family\n")
	return b.String()
}

// statuses collects what a speaker reports.
type statuses struct {
	mu  sync.Mutex
	all []Status
}

func (s *statuses) add(st Status) { s.mu.Lock(); s.all = append(s.all, st); s.mu.Unlock() }

func (s *statuses) last() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return Status{}
	}
	return s.all[len(s.all)-1]
}

func eventually(t *testing.T, what string, d time.Duration, ok func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\n%s", what, d, why())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startSpeaker(t *testing.T, l link, password string, maxPrefixes int, st *statuses) (*Process, context.CancelFunc) {
	t.Helper()
	cfg := ProcessConfig{
		Session: Config{LocalASN: 64512, PeerASN: 65000, LocalAddr: l.aIP, PeerAddr: l.bIP, Password: password,
			Hold: 3 * time.Second, Keepalive: time.Second, MaxPrefixes: maxPrefixes,
			Announce: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}},
		NetNS: "/run/netns/" + l.a,
		Command: func() *exec.Cmd {
			c := exec.Command(os.Args[0], "-test.run=^$")
			c.Env = append(os.Environ(), childEnv+"=1")
			return c
		},
	}
	p, err := NewProcess(cfg, nil, st.add)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return p, stop
}

// TestSpeakerWithFRR: a speaker in its own namespace (a child process)
// and FRR's bgpd across a veth establish with MD5, exchange prefixes,
// withdraw them when the router goes away; a wrong key never establishes;
// too many prefixes take the session down with the reason.
func TestSpeakerWithFRR(t *testing.T) {
	needRoot(t)
	l := newLink(t)
	const key = "s3cret-md5-key"
	r := frr.Start(t, "/run/netns/"+l.b, routerConf(l, key, "192.0.2.0/24", "198.51.100.0/25"))
	var st statuses
	p, stop := startSpeaker(t, l, key, 0, &st)
	t0 := time.Now()
	eventually(t, "session established with learned prefixes", 15*time.Second, func() bool {
		s := p.Status()
		return s.State == Established && len(s.Learned) == 2
	}, func() string { return fmt.Sprintf("speaker %+v\nbgpd:\n%s", p.Status(), r.Log()) })
	t.Logf("established and learned 2 prefixes in %v", time.Since(t0).Round(time.Millisecond))
	if got, want := p.Status().Learned, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/25")}; !slices.Equal(got, want) {
		t.Fatalf("learned %v, want %v", got, want)
	}
	eventually(t, "the VPC CIDR in FRR's table", 10*time.Second, func() bool {
		rs, _ := r.Routes()
		return slices.Contains(rs, netip.MustParsePrefix("10.20.0.0/16"))
	}, func() string { s, _ := r.VTY("show bgp ipv4 unicast"); return s })

	// A new announcement reaches the router; a withdrawn one leaves it.
	if err := p.Announce([]netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replaced announcement in FRR's table", 10*time.Second, func() bool {
		rs, _ := r.Routes()
		return slices.Contains(rs, netip.MustParsePrefix("10.30.0.0/16")) && !slices.Contains(rs, netip.MustParsePrefix("10.20.0.0/16"))
	}, func() string { s, _ := r.VTY("show bgp ipv4 unicast"); return s })

	// The router dies: hold time (3 s) later the session is down and
	// nothing is learned.
	r.Stop()
	t1 := time.Now()
	eventually(t, "routes withdrawn after the router died", 6*time.Second, func() bool {
		s := p.Status()
		return s.State != Established && len(s.Learned) == 0
	}, func() string { return fmt.Sprintf("%+v", p.Status()) })
	t.Logf("router gone → routes withdrawn in %v (hold 3 s); reason %q", time.Since(t1).Round(time.Millisecond), p.Status().Reason)
	stop()

	t.Run("wrong MD5 key never establishes", func(t *testing.T) {
		r := frr.Start(t, "/run/netns/"+l.b, routerConf(l, "another-key", "192.0.2.0/24"))
		var st statuses
		p, _ := startSpeaker(t, l, key, 0, &st)
		time.Sleep(6 * time.Second)
		if s := p.Status(); s.State == Established || len(s.Learned) > 0 {
			t.Fatalf("established with a wrong key: %+v", s)
		}
		if s, _ := r.NeighborState(l.aIP); s == "Established" {
			t.Fatalf("bgpd says Established with a wrong key")
		}
		if s := p.Status(); !strings.Contains(s.Reason, "wrong MD5 signature") {
			t.Fatalf("status %+v does not say the key is wrong", s)
		}
		t.Logf("reason: %s", p.Status().Reason)
	})

	t.Run("a cut link takes the session down within the hold time", func(t *testing.T) {
		r := frr.Start(t, "/run/netns/"+l.b, routerConf(l, key, "192.0.2.0/24"))
		var st statuses
		p, _ := startSpeaker(t, l, key, 0, &st)
		eventually(t, "established", 15*time.Second, func() bool { return p.Status().State == Established && len(p.Status().Learned) == 1 },
			func() string { return fmt.Sprintf("%+v\n%s", p.Status(), r.Log()) })
		hb := handle(t, l.b)
		ln, err := hb.LinkByName("p0")
		if err != nil {
			t.Fatal(err)
		}
		if err := hb.LinkSetDown(ln); err != nil { // no Cease: only the hold timer can tell
			t.Fatal(err)
		}
		t0 := time.Now()
		eventually(t, "down after the hold time", 8*time.Second, func() bool { return p.Status().State != Established && len(p.Status().Learned) == 0 },
			func() string { return fmt.Sprintf("%+v", p.Status()) })
		took := time.Since(t0)
		t.Logf("link cut → session down and routes withdrawn in %v (hold 3 s); reason %q", took.Round(time.Millisecond), p.Status().Reason)
		if took < 2*time.Second {
			t.Errorf("down after %v, before the hold time could expire: something else took it down", took)
		}
		if err := hb.LinkSetUp(ln); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("over the prefix limit the session goes down", func(t *testing.T) {
		r := frr.Start(t, "/run/netns/"+l.b, routerConf(l, key, "192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/26"))
		var st statuses
		p, _ := startSpeaker(t, l, key, 2, &st)
		eventually(t, "down, over the limit", 15*time.Second, func() bool {
			s := p.Status()
			return s.OverLimit && s.State != Established && len(s.Learned) == 0
		}, func() string { return fmt.Sprintf("speaker %+v\nbgpd:\n%s", p.Status(), r.Log()) })
		t.Logf("reason: %s", p.Status().Reason)
	})
}
