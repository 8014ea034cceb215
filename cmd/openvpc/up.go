package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

func upCmd() *cobra.Command {
	cfg := server.DefaultConfig()
	var hosts, edges int
	var level, nicKind, proxyAddr string
	var port uint16
	c := &cobra.Command{
		Use:   "up [--hosts N] [--data-dir DIR]",
		Short: "Run a whole local cloud in one process: server, embedded etcd and N host agents (no root needed; as root, instances are Linux namespaces)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(level)
			if err != nil {
				return err
			}
			if hosts < 1 || hosts > 250 {
				return fmt.Errorf("--hosts %d: run between 1 and 250 hosts", hosts)
			}
			if edges < 0 || edges > 4 {
				return fmt.Errorf("--edges %d: run between 0 and 4 edges", edges)
			}
			kind, err := resolveNIC(nicKind, "auto, tun (Linux namespaces, root) or netstack (userspace stacks)")
			if err != nil || kind == "none" {
				return cmp.Or(err, errors.New("--nic none is for `openvpc host`; use auto, tun or netstack"))
			}
			cfg.Logger = log
			cfg.MetricsBestEffort = !cmd.Flags().Changed("metrics")
			cfg.Store.DataDir = filepath.Clean(cfg.Store.DataDir)
			c, err := startLocal(cmd.Context(), localConfig{Server: cfg, Hosts: hosts, Edges: edges, NIC: kind, WirePort: port, Proxy: proxyAddr, Log: log})
			if err != nil {
				return err
			}
			defer c.Close()
			s := c.Server
			fmt.Fprintf(cmd.OutOrStdout(), `openvpc is up: API %s, %d hosts (host-1 … host-%d) with %s instances,
Geneve between them over UDP on 127.0.1.x, state in %s
The client config (server, CA, admin token) is %s

Try, in another terminal:
  openvpc vpc create --name red --cidr 10.0.0.0/16
  openvpc subnet create --vpc red --cidr 10.0.1.0/24 --name red-a
  openvpc instance run --subnet red-a --name web --wait
  openvpc instance run --subnet red-a --name app --wait
  openvpc ping app web
  openvpc host list%s
%s
Press Ctrl-C to stop.
`, s.URL(), hosts, hosts, kind, cfg.Store.DataDir, cfg.AdminConfig, upHint(kind), internetHelp(edges, proxyAddr))
			select {
			case <-cmd.Context().Done():
				return nil
			case err := <-c.Errs():
				return err
			}
		},
	}
	f := c.Flags()
	f.IntVar(&hosts, "hosts", 3, "number of host agents")
	f.IntVar(&edges, "edges", 1, "number of edges (Blackfoot) joining the cloud to its test internet")
	cfg.Store.EIPPools = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	f.Var(newPrefixList(&cfg.Store.EIPPools), "eip-pool", "Elastic IP pool (a documentation range by default: the internet here is simulated)")
	f.StringVar(&proxyAddr, "internet-proxy", "127.0.0.1:7071", "HTTP proxy into the test internet, to reach Elastic IPs as a client on the internet ('' for none)")
	f.Uint16Var(&port, "wire-port", underlay.Port, "UDP port the hosts exchange Geneve on")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "API address")
	addMetricsFlag(f, &cfg)
	f.StringVar(&cfg.Store.DataDir, "data-dir", cfg.Store.DataDir, "where state is kept")
	f.StringVar(&cfg.AdminConfig, "admin-config", pki.DefaultConfigPath(), "the client config to write (server URL, CA, admin token), which client commands read by default")
	f.StringVar(&level, "log-level", "warn", "debug, info, warn or error")
	f.StringVar(&nicKind, "nic", "auto", "instance NICs: tun (a Linux network namespace per instance, ovpc-<instance-id>; root), netstack (userspace stacks), or auto (tun when root and /dev/net/tun exist, else netstack)")
	return c
}

// upHint is what else to try with instances of kind.
func upHint(kind string) string {
	if kind != "tun" {
		return ""
	}
	return `
  openvpc instance exec web -- ip addr     # a shell command inside the instance
  ip netns list                            # its namespace: ovpc-<instance-id>`
}
