package localcloud_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/localcloud"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

// config is a small cloud in a temporary directory: embedded etcd, the API
// on a free port, no proxy.
func config(t *testing.T, hosts, edges int) localcloud.Config {
	cfg := localcloud.DefaultConfig()
	dir := t.TempDir()
	cfg.Hosts, cfg.Edges, cfg.Proxy = hosts, edges, ""
	cfg.Server.Listen, cfg.Server.Store.DataDir = "127.0.0.1:0", dir
	cfg.Server.AdminConfig = filepath.Join(dir, "config")
	return cfg
}

// TestCloud: New starts a server, hosts and an edge that register, each on
// its own loopback address on port 6081, and writes the client config;
// Run returns when its context ends, having stopped everything.
func TestCloud(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := config(t, 2, 1)
	cfg.AnyUnderlay = true // another cloud (an `openvpc up`) may hold 127.0.1.x:6081
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localcloud.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Config().Underlay
	for i, h := range c.Hosts {
		if want := netip.AddrPortFrom(localcloud.HostAddr(u, i+1), underlay.Port); h.WireAddr != want {
			t.Errorf("host-%d receives Geneve on %v, want %v", i+1, h.WireAddr, want)
		}
	}
	if got, want := c.Edges[0].WireAddr, netip.AddrPortFrom(localcloud.EdgeAddr(u, 1), underlay.Port); got != want {
		t.Errorf("edge-1 receives Geneve on %v, want %v", got, want)
	}
	if _, err := pki.LoadClientConfig(cfg.Server.AdminConfig); err != nil {
		t.Errorf("no client config: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()
	waitHosts(t, c, "edge-1", "host-1", "host-2")
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}

// waitHosts waits until the hosts ids are registered, healthy.
func waitHosts(t *testing.T, c *localcloud.Cloud, ids ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		hs, err := c.Server(0).Store.ListHosts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hs {
			if h.Role == pb.HostRole_HOST_ROLE_EDGE || h.Role == pb.HostRole_HOST_ROLE_HOST {
				got = append(got, h.Id)
			}
		}
		if strings.Join(got, ",") == strings.Join(ids, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registered: %v, want %v", got, ids)
		}
	}
}

// TestBusyUnderlay: a cloud whose underlay address is taken fails at once,
// starting nothing and writing no client config; one that may move takes
// the next /24.
func TestBusyUnderlay(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config(t, 1, 0)
	cfg.WirePort = uint16(busy.LocalAddr().(*net.UDPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := localcloud.New(ctx, cfg); err == nil {
		c.Close()
		t.Fatal("a cloud started on a busy underlay address")
	} else if !strings.Contains(err.Error(), busy.LocalAddr().String()) {
		t.Errorf("error %q does not name the busy address %s", err, busy.LocalAddr())
	}
	if _, err := os.Stat(cfg.Server.AdminConfig); !os.IsNotExist(err) {
		t.Errorf("a cloud that failed to start wrote a client config (%v)", err)
	}
	cfg.AnyUnderlay = true
	c, err := localcloud.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if u := c.Config().Underlay; u == netip.MustParsePrefix("127.0.1.0/24") {
		t.Errorf("the cloud stayed on %v", u)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*localcloud.Config)
		want string
	}{
		{"too many hosts", func(c *localcloud.Config) { c.Hosts = 251 }, "between 0 and 250"},
		{"too many edges", func(c *localcloud.Config) { c.Edges = 5 }, "between 0 and 4"},
		{"unknown NIC", func(c *localcloud.Config) { c.NIC = "tap" }, "not known"},
		{"underlay off loopback", func(c *localcloud.Config) { c.Underlay = netip.MustParsePrefix("10.0.0.0/24") }, "loopback"},
		{"underlay not a /24", func(c *localcloud.Config) { c.Underlay = netip.MustParsePrefix("127.0.0.0/16") }, "/24"},
		{"proxy without port", func(c *localcloud.Config) { c.Proxy = "127.0.0.1" }, "host:port"},
	} {
		cfg := config(t, 1, 0)
		tc.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestPartFailureEndsRun: a part that fails (here host-9, on the address
// host-1 is registered with, whose registration the server refuses) ends
// Run with its error.
func TestPartFailureEndsRun(t *testing.T) {
	cfg := config(t, 1, 0)
	cfg.AnyUnderlay = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localcloud.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitHosts(t, c, "host-1")
	c.Hosts[0].Stop()
	if _, err := c.AddHost(ctx, "host-9", c.Hosts[0].WireAddr.Addr()); err != nil {
		t.Skipf("the server refuses host-9 before it runs (%v): no part to fail", err)
	}
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	select {
	case err := <-ran:
		if err == nil || !strings.Contains(err.Error(), "already used by host host-1") {
			t.Errorf("Run = %v, want the refused registration of host-9", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after a part failed")
	}
}
