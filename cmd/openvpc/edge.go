package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/vpn"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/underlay"
)

// edgeCmd is `openvpc edge`: the edge (edge run) and the resource (edge
// list|get|remove).
func edgeCmd(o *cli.Options) *cobra.Command {
	c := legacyDaemon(edgeRunCmd(o), "edge", "Edges (Blackfoot): run an edge (edge run); list, show and remove edges", "edge-id", "underlay", "outside")
	c.AddCommand(edgeRunCmd(o), bgpSpeakerCmd())
	c.AddCommand(cli.EdgeCommands(o)...)
	return c
}

// edgeRunCmd is `openvpc edge run`, the edge.
func edgeRunCmd(o *cli.Options) *cobra.Command {
	var id, underlayAddr, outside, level, metrics, apiAddr, vpnTUN, vpnDir string
	var port uint16
	var mtu int
	var heartbeat, vpnBGPHold time.Duration
	var jf joinFlags
	var dxPorts []string
	var dxNamespaces string
	c := &cobra.Command{
		Use:   "run --edge-id ID --underlay ADDR (--outside tun:NAME | --vpn tun:NAME) [--server URL] [--join-token TOKEN]",
		Short: "Run an edge (Blackfoot): internet gateways, translating private addresses to Elastic IPs and back",
		Long: `Run an edge (Blackfoot). It registers with role edge, keeps the mapping of every
VPC with an internet gateway, takes internet-bound packets from hosts (verifying
their senders as a host does), translates the private source to the instance's
Elastic IP and sends it out of the outside port; packets to an Elastic IP come
back in, are translated to the private address and sent to the instance's host.

The outside port is a TUN device this command creates (needs root). Route the
Elastic IP pools into it and let the kernel forward the rest, e.g.:

  openvpc edge run --edge-id edge-1 --underlay 10.0.0.10 --outside tun:ovpc-out &
  ip route add 198.51.100.0/24 dev ovpc-out
  sysctl -w net.ipv4.ip_forward=1

With --vpn tun:NAME (beside or instead of --outside) the edge also holds site-to-site VPN
tunnels: the Mapping Service places tunnels on it, and each runs a strongSwan charon in a
network namespace of its own (see docs/operations.md, "Site-to-site VPN").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" || underlayAddr == "" || outside == "" && vpnTUN == "" && len(dxPorts) == 0 {
				return errors.New("give --edge-id (this edge's id, e.g. edge-1), --underlay (its IPv4 address on the underlay network) and what it serves: --outside tun:NAME (its internet side), --vpn tun:NAME (site-to-site VPN) and/or --dx-port IFACE (Direct Connect)")
			}
			log, err := logger(level)
			if err != nil {
				return err
			}
			addr, err := netip.ParseAddr(underlayAddr)
			if err != nil || !addr.Is4() {
				return fmt.Errorf("--underlay %q is not an IPv4 address: give this edge's address on the underlay network", underlayAddr)
			}
			name, ok := strings.CutPrefix(outside, "tun:")
			if outside != "" && (!ok || name == "" || len(name) > 15) {
				return fmt.Errorf("--outside %q: give tun:NAME, NAME being the TUN device to create (at most 15 characters)", outside)
			}
			vpnName, ok := strings.CutPrefix(vpnTUN, "tun:")
			if vpnTUN != "" && (!ok || vpnName == "" || len(vpnName) > 15) {
				return fmt.Errorf("--vpn %q: give tun:NAME, NAME being the TUN device to create for VPN traffic (at most 15 characters)", vpnTUN)
			}
			creds, server, err := jf.credentials(cmd.Context(), o, log, id, pb.HostRole_HOST_ROLE_EDGE, addr)
			if err != nil {
				return err
			}
			var ecfg edge.Config
			if outside != "" {
				out, err := edge.OpenTUNOutside(name, mtu)
				if err != nil {
					return err
				}
				defer out.Close()
				ecfg.Outside = out
			}
			var vfn *vpn.Function
			if vpnTUN != "" {
				vout, err := edge.OpenTUNOutside(vpnName, mtu)
				if err != nil {
					return err
				}
				defer vout.Close()
				if vpnDir == "" {
					if vpnDir, err = os.MkdirTemp("", "openvpc-vpn-"); err != nil {
						return err
					}
					defer os.RemoveAll(vpnDir)
				}
				vfn = vpn.New(vpn.Config{EdgeID: id, Outside: vout, OutsideName: vpnName, Dir: vpnDir, Logger: log, BGPHold: vpnBGPHold})
				ecfg.Functions = append(ecfg.Functions, vfn)
			}
			ctl, err := dxController(id, dxPorts, dxNamespaces, log)
			if err != nil {
				return err
			}
			if ctl != nil {
				ecfg.Functions = append(ecfg.Functions, ctl.Data())
			}
			wire, err := underlay.ListenPort(addr, port)
			if err != nil {
				return fmt.Errorf("underlay on %s:%d: %w (is another agent or edge using this address?)", addr, port, err)
			}
			defer wire.Close()
			n, err := edge.NewNode(
				node.Config{Server: server, HostID: id, Creds: creds, CredDir: jf.certDir, Logger: log, Heartbeat: heartbeat, API: apiAddr},
				edge.Config{Underlay: addr, Wire: wire, WirePort: port, Outside: ecfg.Outside, Functions: ecfg.Functions},
			)
			if err != nil {
				return err
			}
			if vfn != nil {
				vfn.Bind(openvpcv1connect.NewVpnServiceClient(n.HTTP, server), n.Cache.Tables)
			}
			if ctl != nil {
				ctl.Bind(openvpcv1connect.NewDirectConnectServiceClient(n.HTTP, server), n.Cache.Tables)
			}
			if metrics != "" {
				cs := []prometheus.Collector{n.Collector()}
				if ctl != nil {
					cs = append(cs, ctl.Collector())
				}
				stop, err := serveMetrics(metrics, cs...)
				if err != nil {
					return err
				}
				defer stop()
			}
			log.Info("edge starting", "edge", id, "underlay", addr, "outside", name, "dx-ports", dxPorts)
			if err := runEdge(cmd.Context(), n, ctl); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			log.Info("edge stopped", "edge", id)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&id, "edge-id", "", "this edge's id, e.g. edge-1 (required)")
	f.StringVar(&underlayAddr, "underlay", "", "this edge's IPv4 address on the underlay network (required)")
	f.StringVar(&outside, "outside", "", "the internet side: tun:NAME creates TUN device NAME")
	f.StringVar(&vpnTUN, "vpn", "", "serve site-to-site VPN: tun:NAME creates TUN device NAME, into which this namespace routes the VPCs behind its tunnels; each tunnel runs a strongSwan charon in a namespace of its own")
	f.StringVar(&vpnDir, "vpn-dir", "", "where the tunnels' charons keep their config, socket and log (default: a temporary directory)")
	f.IntVar(&mtu, "outside-mtu", 1500, "MTU of the outside device")
	f.Uint16Var(&port, "wire-port", underlay.Port, "UDP port hosts exchange Geneve on (the same everywhere)")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9101")
	f.StringVar(&apiAddr, "api", "127.0.0.1:0", "where the edge serves its flow records to the server (openvpc flows); the server must reach it")
	f.DurationVar(&vpnBGPHold, "vpn-bgp-hold", vpn.DefaultBGPHold, "hold time of BGP VPN connections' sessions (AWS: 30s; at least 3s, whole seconds); a session silent this long is down and its routes withdrawn")
	f.DurationVar(&heartbeat, "heartbeat", 5*time.Second, "how often the edge reports in; keep it well under the server's --edge-timeout (a third or less)")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	f.StringSliceVar(&dxPorts, "dx-port", nil, "a Direct Connect port: an interface of this edge cabled to a customer's router (repeat for more; openvpc dx connection create names it)")
	f.StringVar(&dxNamespaces, "dx-namespaces", "", "prefix of the names of the Direct Connect VIFs' network namespaces (default ovpc-dx-EDGEID)")
	jf.add(c, "edge")
	_ = c.MarkFlagRequired("edge-id")
	_ = c.MarkFlagRequired("underlay")
	return c
}
