package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var vpnHeader = []string{"ID", "NAME", "CGW", "VGW", "ROUTING", "TUNNEL 1", "TUNNEL 2", "ROUTES"}

// tunnelCell is a tunnel in one cell: address, state, since, edge, and
// why it is down or that it carries the traffic.
func tunnelCell(t *pb.VpnTunnel) string {
	st := t.GetStatus()
	s := fmt.Sprintf("%s %s", t.OutsideAddress, enum(st.GetState(), "TUNNEL_STATE_"))
	if st.GetSince() != nil {
		s += " " + ago(st.Since)
	}
	if t.EdgeId != "" {
		s += " on " + t.EdgeId
	}
	if t.Preferred {
		s += " (carries traffic)"
	}
	if st.GetState() != pb.TunnelState_TUNNEL_STATE_UP && st.GetDetail() != "" {
		s += ": " + st.Detail
	}
	if b := st.GetBgp(); b != nil {
		s += fmt.Sprintf("; bgp %s, %d prefixes", b.State, len(b.Learned))
		if b.State != "established" && b.Reason != "" {
			s += " (" + b.Reason + ")"
		}
	}
	return s
}

func vpnRow(c *pb.VpnConnection) []string {
	routing := "bgp"
	if c.StaticRoutesOnly {
		routing = "static"
	}
	row := []string{c.Id, c.Name, c.CustomerGatewayId, c.VpnGatewayId, routing, "", "", strings.Join(c.Routes, " ")}
	for i, t := range c.Tunnels {
		if i < 2 {
			row[5+i] = tunnelCell(t)
		}
	}
	return row
}

func vpnCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "vpn", Short: "Site-to-site VPN connections: two IPsec tunnels between a customer gateway and a VPC's virtual private gateway"}
	one := func(cmd *cobra.Command, v *pb.VpnConnection) error {
		return o.printer(cmd).one(v, vpnHeader, vpnRow(v))
	}
	var name, cgw, vgw string
	var static bool
	var inside, psk []string
	var dpd uint32
	create := &cobra.Command{
		Use:   "create --cgw CGW --vgw VGW [--static-routes-only] [--inside-cidr C1,C2] [--psk K1,K2] [--dpd-timeout S] [--name NAME]",
		Short: "Create a VPN connection with two tunnels (addresses, inside CIDRs and keys generated unless given)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			if len(inside) > 2 || len(psk) > 2 {
				return fmt.Errorf("a VPN connection has two tunnels: give at most two inside CIDRs and two keys, comma-separated")
			}
			req := &pb.CreateVpnConnectionRequest{Name: name, CustomerGateway: cgw, VpnGateway: vgw, StaticRoutesOnly: static}
			for i := range 2 {
				t := &pb.TunnelOptions{DpdTimeoutSeconds: dpd}
				if i < len(inside) {
					t.InsideCidr = inside[i]
				}
				if i < len(psk) {
					t.PreSharedKey = psk[i]
				}
				req.Tunnels = append(req.Tunnels, t)
			}
			r, err := cl.vpn.CreateVpnConnection(cmd.Context(), call(req))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnConnection)
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the connection")
	create.Flags().StringVar(&cgw, "cgw", "", "customer gateway name or id (required)")
	create.Flags().StringVar(&vgw, "vgw", "", "virtual private gateway name or id (required)")
	create.Flags().BoolVar(&static, "static-routes-only", false, "route by static routes (vpn route add) instead of BGP")
	create.Flags().StringSliceVar(&inside, "inside-cidr", nil, "tunnels' inside /30s in 169.254.0.0/16 (default: random free ones)")
	create.Flags().StringSliceVar(&psk, "psk", nil, "tunnels' pre-shared keys: 8–64 of A-Z a-z 0-9 . _, not starting with 0 (default: generated)")
	create.Flags().Uint32Var(&dpd, "dpd-timeout", 0, "seconds without an answer before a peer is dead (default 30)")
	required(create, "cgw", "vgw")
	get := &cobra.Command{
		Use: "get VPN", Short: "Show a VPN connection and its tunnels' state (keys are shown by vpn config only)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.GetVpnConnection(cmd.Context(), call(&pb.GetVpnConnectionRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnConnection)
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List VPN connections and their tunnels' state", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpn.ListVpnConnections(cmd.Context(), call(&pb.ListVpnConnectionsRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.VpnConnections, vpnHeader, vpnRow)
		}),
	}
	del := &cobra.Command{
		Use: "delete VPN", Short: "Delete a VPN connection (its tunnels go down)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpn.DeleteVpnConnection(cmd.Context(), call(&pb.DeleteVpnConnectionRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted VPN connection "+args[0])
		}),
	}
	var format string
	var announce []string
	config := &cobra.Command{
		Use: "config VPN [--format strongswan|frr]", Short: "Print the customer gateway's configuration (a swanctl.conf with both tunnels and their keys; frr: its bgpd for a BGP connection)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if len(announce) > 0 && format != "frr" {
				return fmt.Errorf("--announce is for --format frr (the prefixes the site's bgpd announces)")
			}
			r, err := cl.vpn.GetVpnConnectionConfig(cmd.Context(), call(&pb.GetVpnConnectionConfigRequest{Ref: args[0], Format: format, Announce: announce}))
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), r.Msg.Config)
			return err
		}),
	}
	config.Flags().StringVar(&format, "format", "strongswan", "configuration format: strongswan (swanctl.conf) or frr (the site's bgpd, BGP connections)")
	config.Flags().StringSliceVar(&announce, "announce", nil, "--format frr: the site prefixes its bgpd announces, comma-separated (default: a placeholder to edit)")
	c.AddCommand(create, get, listCmd, del, config, vpnRouteCmd(o, one))
	return c
}

// vpnRouteCmd is `vpn route add|delete`: a static-routes-only
// connection's site prefixes.
func vpnRouteCmd(o *Options, one func(*cobra.Command, *pb.VpnConnection) error) *cobra.Command {
	c := &cobra.Command{Use: "route", Short: "Add and delete a static VPN connection's routes (the site's prefixes)"}
	var dest string
	add := &cobra.Command{
		Use: "add VPN --dest CIDR", Short: "Route a site prefix over the connection (propagated to route tables that enable it)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.CreateVpnConnectionRoute(cmd.Context(), call(&pb.CreateVpnConnectionRouteRequest{Ref: args[0], DestinationCidr: dest}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnConnection)
		}),
	}
	add.Flags().StringVar(&dest, "dest", "", "the site prefix, e.g. 192.168.0.0/16 (required)")
	required(add, "dest")
	var ddest string
	del := &cobra.Command{
		Use: "delete VPN --dest CIDR", Short: "Stop routing a site prefix over the connection", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.DeleteVpnConnectionRoute(cmd.Context(), call(&pb.DeleteVpnConnectionRouteRequest{Ref: args[0], DestinationCidr: ddest}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnConnection)
		}),
	}
	del.Flags().StringVar(&ddest, "dest", "", "the site prefix (required)")
	required(del, "dest")
	c.AddCommand(add, del)
	return c
}
