// Package demo plays the talk on a local cloud of its own (`openvpc demo`):
// red and yellow talk across hosts, green is refused twice, the cache
// answers every lookup, Blackfoot takes red to the internet and, last,
// to the object store through a gateway endpoint — each scene on real
// packets, told as a story or given as data.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/localcloud"
)

// Config says how to play the demo.
type Config struct {
	// Out receives the story (or, with JSON, the scenes as data).
	Out io.Writer
	// In is read for Enter before each scene when Step is set.
	In io.Reader
	// JSON prints the scenes as one JSON document instead of the story.
	JSON bool
	// Step waits for Enter before each scene (not with JSON).
	Step bool
	// NIC is how instances get their NICs: "netstack" (the default) or
	// "tun" (Linux namespaces, root).
	NIC string
	// Dir is where the demo's temporary directory is made (default: the
	// system's); the directory is removed at the end.
	Dir string
	// Sites plays scenes 7 (VPN) and 8 (Direct Connect) too. The caller
	// must already be in a network namespace of the demo's own, as root
	// (cmd/openvpc re-executes itself there); see SitesMissing.
	Sites bool
	// SitesWhy is why the caller left scenes 7 and 8 out, for the note
	// the story prints (default: they were not asked for).
	SitesWhy string
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.Out == nil {
		return fmt.Errorf("demo: no output to play to")
	}
	if c.Step && c.In == nil {
		return fmt.Errorf("demo: stepping needs an input to read Enter from")
	}
	if c.NIC != "" && c.NIC != "netstack" && c.NIC != "tun" {
		return fmt.Errorf("demo: NIC %q is not known; use netstack (userspace stacks) or tun (Linux namespaces, root)", c.NIC)
	}
	return nil
}

// Scene is one scene of the talk and what actually happened.
type Scene struct {
	N       int      `json:"scene"`
	Title   string   `json:"title"`
	Caption string   `json:"caption"`
	Verdict string   `json:"verdict"` // what the network did, by its stable names
	Wire    []string `json:"wire"`    // what happened on the wire, line by line
}

// demo is one playing of the demo: its cloud and the world built on it.
type demo struct {
	cfg    Config
	in     *bufio.Reader
	scenes []Scene

	cloud *localcloud.Cloud
	vpc   openvpcv1connect.VpcServiceClient
	inst  openvpcv1connect.InstanceServiceClient
	endpt openvpcv1connect.EndpointServiceClient
	vpcs  map[string]*pb.Vpc
	insts map[string]*pb.Instance
	wire  uint16
	eip   string
	conn  *cli.Conn
	// adminConfig is the demo's client config, for the commands it runs.
	adminConfig string
	sites       *sites
}

// Run builds a cloud in a temporary directory (3 hosts, 1 edge, a
// simulated internet), plays every scene on it and removes it.
func Run(ctx context.Context, cfg Config) error {
	if cfg.NIC == "" {
		cfg.NIC = "netstack"
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	d := &demo{cfg: cfg}
	if cfg.In != nil {
		d.in = bufio.NewReader(cfg.In)
	}
	return d.run(ctx)
}

func (d *demo) run(ctx context.Context) error {
	start := time.Now()
	dir, err := os.MkdirTemp(d.cfg.Dir, "openvpc-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d.say("building a cloud in %s: 3 hosts, 1 edge, a simulated internet (%s instances)…", dir, d.cfg.NIC)
	// After the cloud (deferred first): the edge stops its tunnels first.
	defer func() {
		if d.sites != nil {
			d.sites.close()
		}
	}()
	if err := d.start(ctx, dir); err != nil {
		return err
	}
	defer d.cloud.Close()
	c := d.cloud
	d.say("the underlay: host-1 … host-3 on %v … %v, edge-1 on %v, Geneve on UDP port %d",
		c.Hosts[0].WireAddr.Addr(), c.Hosts[2].WireAddr.Addr(), c.Edges[0].WireAddr.Addr(), d.wire)
	if err := d.setup(ctx); err != nil {
		return fmt.Errorf("demo setup: %w", err)
	}
	plays := []func(context.Context) (Scene, error){d.scene1, d.scene2, d.scene3, d.scene4, d.scene5, d.scene6}
	if d.cfg.Sites {
		plays = append(plays, d.scene7, d.scene8)
	} else {
		d.say("%s", d.cfg.sitesNote())
	}
	for i, play := range plays {
		if d.cfg.Step && !d.cfg.JSON {
			fmt.Fprintf(d.cfg.Out, "\n[Enter] for scene %d ", i+1)
			_, _ = d.in.ReadString('\n')
		}
		s, err := play(ctx)
		if err != nil {
			return fmt.Errorf("scene %d: %w", i+1, err)
		}
		s.N = i + 1
		d.scenes = append(d.scenes, s)
		if !d.cfg.JSON {
			d.show(s)
		}
	}
	if d.cfg.JSON {
		enc := json.NewEncoder(d.cfg.Out)
		enc.SetIndent("", "  ")
		doc := map[string]any{"scenes": d.scenes}
		if !d.cfg.Sites {
			doc["note"] = d.cfg.sitesNote()
		}
		return enc.Encode(doc)
	}
	fmt.Fprintf(d.cfg.Out, "\nThe talk, on real packets, in %.1f s. Everything is cleaned up.\n", time.Since(start).Seconds())
	return nil
}

// start starts the demo's cloud in dir and its administrator's clients.
func (d *demo) start(ctx context.Context, dir string) error {
	cfg := localcloud.DefaultConfig()
	cfg.Hosts, cfg.Edges, cfg.Proxy, cfg.NIC = 3, 1, "", d.cfg.NIC
	cfg.Server.Listen, cfg.Server.Store.DataDir = "127.0.0.1:0", dir
	// The demo's own client config (CA and admin token), kept with its
	// cloud: the user's is left alone.
	cfg.Server.AdminConfig = filepath.Join(dir, "config")
	// Geneve on its own port, 6081, as on a real network: each host has
	// its own loopback address, and a demo next to another cloud (an
	// `openvpc up`, another demo) takes the next free 127.0.N.0/24.
	cfg.AnyUnderlay = true
	if d.cfg.Sites {
		// As root in the demo's own namespace: edge-1 also holds VPN
		// tunnels, their outside addresses from a documentation range.
		d.sites = newSites(dir)
		cfg.Server.Store.VPNPools = []netip.Prefix{vpnPool}
		cfg.EdgeFunctions = d.sites.edgeFunctions
	}
	var err error
	if d.cloud, err = localcloud.New(ctx, cfg); err != nil {
		return err
	}
	d.wire = d.cloud.Config().WirePort
	conn, err := (&cli.Options{Config: cfg.Server.AdminConfig, Server: d.cloud.Server(0).URL()}).Conn()
	if err != nil {
		d.cloud.Close()
		return err
	}
	d.conn, d.adminConfig = conn, cfg.Server.AdminConfig
	d.vpc, d.inst = openvpcv1connect.NewVpcServiceClient(conn.HTTP, conn.URL), openvpcv1connect.NewInstanceServiceClient(conn.HTTP, conn.URL)
	d.endpt = openvpcv1connect.NewEndpointServiceClient(conn.HTTP, conn.URL)
	return nil
}

func (d *demo) say(format string, args ...any) {
	if !d.cfg.JSON {
		fmt.Fprintf(d.cfg.Out, format+"\n", args...)
	}
}

func (d *demo) show(s Scene) {
	fmt.Fprintf(d.cfg.Out, "\n── %d. %s\n   %s\n", s.N, s.Title, s.Caption)
	for _, l := range s.Wire {
		fmt.Fprintf(d.cfg.Out, "   │ %s\n", l)
	}
	fmt.Fprintf(d.cfg.Out, "   ⇒ %s\n", s.Verdict)
}
