package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/localcloud"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

func upCmd() *cobra.Command {
	cfg := localcloud.DefaultConfig()
	var level, nicKind string
	c := &cobra.Command{
		Use:   "up [--hosts N] [--data-dir DIR]",
		Short: "Run a whole local cloud in one process: server, embedded etcd and N host agents (no root needed; as root, instances are Linux namespaces)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(level)
			if err != nil {
				return err
			}
			if cfg.Hosts < 1 || cfg.Hosts > localcloud.MaxHosts {
				return fmt.Errorf("--hosts %d: run between 1 and %d hosts", cfg.Hosts, localcloud.MaxHosts)
			}
			if cfg.Edges < 0 || cfg.Edges > localcloud.MaxEdges {
				return fmt.Errorf("--edges %d: run between 0 and %d edges", cfg.Edges, localcloud.MaxEdges)
			}
			if cfg.NIC, err = resolveNIC(nicKind, "auto, tun (Linux namespaces, root), veth (Linux namespaces with veth pairs, root) or netstack (userspace stacks)"); err != nil || cfg.NIC == "none" {
				return cmp.Or(err, errors.New("--nic none is for `openvpc host`; use auto, tun, veth or netstack"))
			}
			cfg.Log, cfg.Server.Logger = log, log
			cfg.Server.MetricsBestEffort = !cmd.Flags().Changed("metrics")
			cfg.Server.Store.DataDir = filepath.Clean(cfg.Server.Store.DataDir)
			c, err := localcloud.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := upBanner(cmd.Context(), cmd.OutOrStdout(), c); err != nil {
				return err
			}
			return c.Run(cmd.Context())
		},
	}
	f := c.Flags()
	f.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "number of host agents")
	f.IntVar(&cfg.Edges, "edges", cfg.Edges, "number of edges (Blackfoot) joining the cloud to its test internet")
	f.BoolVar(&cfg.S3, "s3", cfg.S3, "run the object store (S3 API, objects in DATA-DIR/s3) and its service node, for gateway endpoints; needs an edge")
	f.Var(newPrefixList(&cfg.Server.Store.EIPPools), "eip-pool", "Elastic IP pool (a documentation range by default: the internet here is simulated)")
	f.StringVar(&cfg.Server.DNSUpstream, "dns-upstream", "", "a resolver (ip or ip:port) the VPC resolvers forward other names to; default: the simulated internet's resolver on loopback (www.example.test), with edges")
	f.StringVar(&cfg.Proxy, "internet-proxy", cfg.Proxy, "HTTP proxy into the test internet, to reach Elastic IPs as a client on the internet ('' for none)")
	f.Uint16Var(&cfg.WirePort, "wire-port", underlay.Port, "UDP port the hosts exchange Geneve on")
	f.StringVar(&cfg.Server.Listen, "listen", cfg.Server.Listen, "API address")
	addMetricsFlag(f, &cfg.Server)
	f.StringVar(&cfg.Server.Store.DataDir, "data-dir", cfg.Server.Store.DataDir, "where state is kept")
	f.DurationVar(&cfg.Server.Trust.CertTTL, "cert-ttl", pki.DefaultCertTTL, "lifetime of the hosts', edges' and service nodes' certificates (they renew at two thirds of it)")
	f.StringVar(&cfg.Server.AdminConfig, "admin-config", pki.DefaultConfigPath(), "the client config to write (server URL, CA, admin token) once the cloud is up, which client commands read by default")
	f.StringVar(&level, "log-level", "warn", "debug, info, warn or error")
	f.StringVar(&nicKind, "nic", "auto", "instance NICs: tun (a Linux network namespace per instance, ovpc-<instance-id>; root), veth (the same with a veth pair, its host end ovi<id> in this namespace; root — the kernel fast path needs a non-loopback underlay, so under up every packet takes the Go story), netstack (userspace stacks), or auto (tun when root and /dev/net/tun exist, else netstack)")
	return c
}

// upBanner says what runs and what to try: a new cloud, how to make a
// first VPC; a restarted one, what it already holds.
func upBanner(ctx context.Context, w io.Writer, c *localcloud.Cloud) error {
	cfg, s := c.Config(), c.Server(0)
	if c.Internet != nil {
		cfg.Proxy = c.Internet.ProxyAddr() // the port it took, if it was told :0
	}
	vpcs, err := s.Store.ListVPCs(ctx)
	if err != nil {
		return err
	}
	hosts, addrs := "host-1", c.Hosts[0].WireAddr.Addr().String()
	if n := len(c.Hosts); n > 1 {
		hosts += fmt.Sprintf(" … host-%d", n)
		addrs += fmt.Sprintf(" … %v", c.Hosts[n-1].WireAddr.Addr())
	}
	fmt.Fprintf(w, `openvpc is up: API %s, %s with %s instances,
Geneve between them over UDP port %d on %s, state in %s
The client config (server, CA, admin token) is %s
`, s.URL(), count(len(c.Hosts), "host", hosts), cfg.NIC, cfg.WirePort, addrs, cfg.Server.Store.DataDir, cfg.Server.AdminConfig)
	if len(vpcs) > 0 {
		fmt.Fprintf(w, "\nIt holds what you made before: %s. See it, in another terminal:\n%s\n",
			count(len(vpcs), "VPC", vpcNames(vpcs)), `  openvpc vpc list
  openvpc instance list
  openvpc host list`)
		fmt.Fprint(w, internetBrief(cfg))
	} else {
		fmt.Fprintf(w, `
Try, in another terminal:
  openvpc vpc create --name red --cidr 10.0.0.0/16
  openvpc subnet create --vpc red --cidr 10.0.1.0/24 --name red-a
  openvpc instance run --subnet red-a --name web --wait
  openvpc instance run --subnet red-a --name app --wait
  openvpc ping app web
  openvpc host list%s
%s`, upHint(cfg.NIC), internetHelp(cfg))
	}
	fmt.Fprint(w, s3Help(c))
	fmt.Fprint(w, "\nPress Ctrl-C to stop.\n")
	return nil
}

// s3Help says where the object store is and how to reach it privately.
func s3Help(c *localcloud.Cloud) string {
	if c.S3 == nil {
		return ""
	}
	return fmt.Sprintf(`
An S3-compatible object store (%s) answers at %s:80, on the internet
and through gateway endpoints (its service node is %v):
  openvpc service list
  openvpc endpoint create --vpc red --service %s --route-table main
  openvpc exec web -- aws --endpoint-url http://%s s3 ls   # a tun instance with the aws CLI
`, c.S3.Name, c.S3.Addr, c.S3.NodeAddr, c.S3.Name, c.S3.Addr)
}

// vpcNames names the first few VPCs.
func vpcNames(vpcs []*pb.Vpc) string {
	var names []string
	for _, v := range vpcs[:min(len(vpcs), 5)] {
		names = append(names, cmp.Or(v.Name, v.Id))
	}
	if len(vpcs) > 5 {
		names = append(names, "…")
	}
	return strings.Join(names, ", ")
}

// upHint is what else to try with instances of kind.
func upHint(kind string) string {
	if kind != "tun" && kind != "veth" {
		return ""
	}
	return `
  openvpc exec web -- ip addr              # a shell command inside the instance
  ip netns list                            # its namespace: ovpc-<instance-id>`
}

// internetHelp is the quickstart's internet part.
func internetHelp(cfg localcloud.Config) string {
	if cfg.Edges == 0 {
		return ""
	}
	s := fmt.Sprintf(`
The internet (simulated, in this process) has a web server at %s
(www.example.test, which instances resolve), reached through %d edge(s).
Give web an Elastic IP and a way out:
  openvpc igw create --name red-igw
  openvpc igw attach red-igw --vpc red
  openvpc route create --vpc red --dest 0.0.0.0/0 --target red-igw
  openvpc eip allocate --name web-ip
  openvpc eip associate web-ip --instance web
  openvpc forward web --listen 127.0.0.1:8080 --to %s:80 &
  curl http://127.0.0.1:8080/        # the internet sees web's Elastic IP
`, localcloud.WebAddr, cfg.Edges, localcloud.WebAddr)
	if cfg.Proxy != "" {
		s += fmt.Sprintf(`The proxy %s connects from a client on the internet (%s): with a
server in web (a tun instance: openvpc exec web -- python3 -m http.server 80),
  curl -x http://%s http://<web's Elastic IP>/
`, cfg.Proxy, localcloud.ClientAddr, cfg.Proxy)
	}
	return s
}

// internetBrief says where the internet is, for a cloud that has VPCs.
func internetBrief(cfg localcloud.Config) string {
	if cfg.Edges == 0 {
		return ""
	}
	s := fmt.Sprintf("\nThe internet (simulated, in this process) has a web server at %s, reached through %d edge(s).\n", localcloud.WebAddr, cfg.Edges)
	if cfg.Proxy != "" {
		s += fmt.Sprintf("The proxy %s connects from its client (%s):\n  curl -x http://%s http://ELASTIC-IP/\n", cfg.Proxy, localcloud.ClientAddr, cfg.Proxy)
	}
	return s
}

// count is "1 VPC (red)" or "3 VPCs (red, yellow, green)".
func count(n int, noun, names string) string {
	if n != 1 {
		noun += "s"
	}
	return fmt.Sprintf("%d %s (%s)", n, noun, names)
}
