package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/fastpath"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/underlay"
)

// hostCmd is `openvpc host`: the agent (host run) and the resource (host
// list|get|remove), as `openvpc edge` is for edges.
func hostCmd(o *cli.Options) *cobra.Command {
	c := legacyDaemon(hostRunCmd(o), "host", "Hosts: run a host agent (host run); list, show and remove hosts", "host-id", "underlay")
	c.AddCommand(hostRunCmd(o))
	c.AddCommand(cli.HostCommands(o)...)
	return c
}

// legacyDaemon turns a daemon's run command into its group command,
// which still runs the daemon when given the daemon's flags: before
// `host run` and `edge run`, `openvpc host --host-id …` was the agent, and
// scripts and unit files have it.
func legacyDaemon(run *cobra.Command, name, short string, keys ...string) *cobra.Command {
	daemon := run.RunE
	run.Use, run.Short, run.Long, run.Example = name, short, "", ""
	run.Flags().VisitAll(func(f *pflag.Flag) {
		f.Hidden = true
		delete(f.Annotations, cobra.BashCompOneRequiredFlag) // `openvpc host` alone shows help
	})
	run.Args = cobra.ArbitraryArgs
	run.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return cli.UnknownCommand(cmd, args[0])
		}
		if !slices.ContainsFunc(keys, cmd.Flags().Changed) {
			return cmd.Help()
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "openvpc: `openvpc %s --%s …` is now `openvpc %s run --%s …`; running it\n", name, keys[0], name, keys[0])
		return daemon(cmd, args)
	}
	return run
}

// hostRunCmd is `openvpc host run`, the host agent.
func hostRunCmd(o *cli.Options) *cobra.Command {
	var id, underlayAddr, level, nicKind, stateDir, metrics, apiAddr, region, fast string
	var serviceLimit uint32
	var port uint16
	var jf joinFlags
	c := &cobra.Command{
		Use:   "run --host-id ID --underlay ADDR [--server URL] [--join-token TOKEN]",
		Short: "Run a host agent: join the Mapping Service, keep this host's cache current, forward its instances' packets",
		Example: `  openvpc token create --role host          # on the server's machine
  openvpc host run --server 10.0.0.1:7070 --host-id host-a --underlay 10.0.0.11 --join-token TOKEN`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" || underlayAddr == "" {
				return errors.New("give --host-id (this host's id, e.g. host-a) and --underlay (its IPv4 address on the underlay network)")
			}
			log, err := logger(level)
			if err != nil {
				return err
			}
			addr, err := netip.ParseAddr(underlayAddr)
			if err != nil || !addr.Is4() {
				return fmt.Errorf("--underlay %q is not an IPv4 address: give this host's address on the underlay network", underlayAddr)
			}
			creds, server, err := jf.credentials(cmd.Context(), o, log, id, pb.HostRole_HOST_ROLE_HOST, addr)
			if err != nil {
				return err
			}
			cfg := agent.Config{Node: node.Config{Server: server, HostID: id, Underlay: addr, Creds: creds, CredDir: jf.certDir, Logger: log, API: apiAddr}, WirePort: port, Region: region, ServiceLimit: serviceLimit}
			kind, why, err := resolveHostNIC(nicKind, addr)
			if err != nil {
				return err
			}
			if why != "" {
				log.Info("--nic auto: "+why, "nic", kind)
			}
			if kind != "none" {
				wire, err := underlay.ListenPort(addr, port)
				if err != nil {
					return fmt.Errorf("underlay on %s:%d: %w (is another host agent using this address?)", addr, port, err)
				}
				defer wire.Close()
				cfg.Wire = wire
			}
			if stateDir == "" {
				stateDir = filepath.Join(defaultStateRoot, id)
			}
			switch kind {
			case "tun":
				b, err := nic.NewTUNBackend(stateDir)
				if err != nil {
					return err
				}
				defer b.Close()
				cfg.NIC = b
				log.Info("instances get TUN NICs in network namespaces", "names", nic.NamespacePrefix+"<instance-id>", "state-dir", stateDir)
			case "veth":
				b, err := nic.NewVethBackend(stateDir)
				if err != nil {
					return err
				}
				defer b.Close()
				cfg.NIC = b
				log.Info("instances get veth NICs in network namespaces", "names", nic.NamespacePrefix+"<instance-id>", "state-dir", stateDir)
				if fast != "off" {
					fp, err := fastpath.Load(fastpath.Config{Underlay: addr, WirePort: port, MTU: dataplane.DefaultMTU, Log: log})
					switch {
					case err != nil && fast == "on":
						return fmt.Errorf("--fastpath on: %w", err)
					case err != nil:
						log.Warn("kernel fast path off: every packet takes the Go story", "why", err)
					default:
						defer fp.Close()
						cfg.FastPath = fp
						log.Info("kernel fast path on: the Go story's decisions are replayed in the kernel", "underlay-ifindex", fp.WireIndex())
					}
				}
			}
			if fast == "on" && kind != "veth" {
				return fmt.Errorf("--fastpath on needs --nic veth (the instances' NICs are %s)", kind)
			}
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			if metrics != "" {
				stop, err := serveMetrics(metrics, a.Collector())
				if err != nil {
					return err
				}
				defer stop()
			}
			if err := a.Run(cmd.Context()); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			log.Info("host agent stopped", "host", id, "revision", a.Sub.Revision())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&id, "host-id", "", "this host's id, e.g. host-a (required)")
	f.StringVar(&underlayAddr, "underlay", "", "this host's IPv4 address on the underlay network (required)")
	f.StringVar(&nicKind, "nic", "auto", "instance NICs: tun (a Linux network namespace per instance with a TUN eth0; root), veth (a namespace per instance with a veth eth0, which the kernel fast path can serve; root), netstack (userspace TCP/IP stacks, no root), none (keep the cache only), or auto (veth when root, the underlay is not on loopback and the fast path's programs load; else tun when root and /dev/net/tun exist; else netstack)")
	f.StringVar(&fast, "fastpath", "auto", "with --nic veth, the kernel flow cache replaying the data plane's decisions: auto (on when the BPF programs load, else off with a log line saying why), on (fail if they do not load) or off (every packet takes the Go story)")
	f.StringVar(&stateDir, "state-dir", "", "with --nic tun or veth, where the agent records the namespaces it created, to clean up after a crash; one per agent (default "+defaultStateRoot+"/HOST-ID)")
	f.Uint16Var(&port, "wire-port", underlay.Port, "UDP port hosts exchange Geneve on (the same on every host)")
	f.StringVar(&apiAddr, "api", "127.0.0.1:0", "where the agent serves its API for acting as its instances (ping, connect); the server must reach it")
	f.Uint32Var(&serviceLimit, "service-limit", dataplane.DefaultServiceLimit, "packets a second each instance may send to the host services (the VPC resolver, metadata), as AWS's link-local allowance; the rest are dropped and counted as service-limit")
	f.StringVar(&region, "region", "openvpc", "the region in the private DNS names the VPC resolver answers (ip-10-0-1-4.REGION.compute.internal) and in the metadata's placement/region")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9100")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	jf.add(c, "host")
	_ = c.MarkFlagRequired("host-id")
	_ = c.MarkFlagRequired("underlay")
	return c
}

// defaultStateRoot holds each host agent's state directory. It is under
// /run because what it records, network namespaces, does not outlive a
// reboot either.
const defaultStateRoot = "/run/openvpc"

// resolveNIC turns a --nic flag into a backend name: auto picks tun where
// it can work (root, /dev/net/tun) and netstack elsewhere.
func resolveNIC(kind, choices string) (string, error) {
	switch kind {
	case "auto":
		if nic.TUNAvailable() {
			return "tun", nil
		}
		return "netstack", nil
	case "tun", "veth", "netstack", "none":
		return kind, nil
	}
	return "", fmt.Errorf("--nic %q is not known; use %s", kind, choices)
}

// resolveHostNIC is resolveNIC for a host agent, whose auto prefers veth
// with the kernel fast path: when root, the underlay is on a device the
// fast path can redirect to (not loopback) and the kernel accepts the
// programs. why says, for auto, why the choice fell where it did.
func resolveHostNIC(kind string, underlayAddr netip.Addr) (string, string, error) {
	if kind != "auto" {
		k, err := resolveNIC(kind, "veth (namespaces, kernel fast path; root), tun (Linux namespaces, root), netstack (instances in userspace stacks) or none (cache only)")
		return k, "", err
	}
	if !nic.VethAvailable() {
		k, _ := resolveNIC(kind, "")
		return k, "not root: no veth NICs, no kernel fast path", nil
	}
	if underlayAddr.IsLoopback() {
		k, _ := resolveNIC(kind, "")
		return k, "the underlay is on loopback, where the kernel fast path cannot redirect: not veth", nil
	}
	if err := fastpath.Probe(); err != nil {
		k, _ := resolveNIC(kind, "")
		return k, err.Error() + ": not veth", nil
	}
	return "veth", "root and the kernel accepts the fast path's programs", nil
}

// serveMetrics serves collectors on addr at /metrics until stop is
// called, which returns once the server has stopped.
func serveMetrics(addr string, cs ...prometheus.Collector) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // ErrServerClosed, after stop
	}()
	return func() { srv.Close(); <-served }, nil
}
