package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

func (cl *clients) dx() openvpcv1connect.DirectConnectServiceClient {
	return openvpcv1connect.NewDirectConnectServiceClient(cl.conn.HTTP, cl.conn.URL)
}

func dxCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "dx", Short: "Direct Connect: dedicated ports on edges, a VLAN and a BGP session per virtual interface"}
	c.AddCommand(dxConnectionCmd(o), dxVIFCmd(o), dxGatewayCmd(o))
	return c
}

var dxconHeader = []string{"ID", "NAME", "EDGE", "PORT", "STATE"}

func dxconRow(x *pb.DxConnection) []string { return []string{x.Id, x.Name, x.Edge, x.Port, x.State} }

func dxConnectionCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "connection", Aliases: []string{"con"}, Short: "Connections: a dedicated port on an edge, cabled to your router"}
	var name, edge, port string
	create := &cobra.Command{
		Use: "create --edge EDGE --port IFACE [--name NAME]", Short: "Make an edge's interface a Direct Connect port", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.dx().CreateConnection(cmd.Context(), call(&pb.CreateConnectionRequest{Name: name, Edge: edge, Port: port}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Connection, dxconHeader, dxconRow(r.Msg.Connection))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the connection")
	create.Flags().StringVar(&edge, "edge", "", "the edge holding the port: its host id (required)")
	create.Flags().StringVar(&port, "port", "", "the port's interface name on the edge (required)")
	required(create, "edge", "port")
	get := &cobra.Command{
		Use: "get CONNECTION", Short: "Show a connection", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.dx().GetConnection(cmd.Context(), call(&pb.GetConnectionRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Connection, dxconHeader, dxconRow(r.Msg.Connection))
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List connections", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.dx().ListConnections(cmd.Context(), call(&pb.ListConnectionsRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Connections, dxconHeader, dxconRow)
		}),
	}
	del := &cobra.Command{
		Use: "delete CONNECTION", Short: "Delete a connection with no virtual interfaces", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.dx().DeleteConnection(cmd.Context(), call(&pb.DeleteConnectionRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted connection "+args[0])
		}),
	}
	c.AddCommand(create, get, listCmd, del)
	return c
}

var dxvifHeader = []string{"ID", "NAME", "CONNECTION", "VLAN", "ASN (YOURS/AMAZON)", "PEERS (AMAZON/YOURS)", "GATEWAY", "BGP", "RECEIVED", "ADVERTISED"}

func dxvifRow(v *pb.DxVirtualInterface) []string {
	gw := v.VpnGatewayId + v.DxGatewayId
	bgp, rx, tx := "unknown", "-", "-"
	if st := v.Status; st != nil {
		bgp = st.BgpState
		if st.Since != nil {
			bgp += " " + ago(st.Since)
		}
		if st.Reason != "" {
			bgp += " (" + st.Reason + ")"
		}
		rx, tx = prefixes(st.PrefixesReceived), prefixes(st.PrefixesAdvertised)
	}
	return []string{v.Id, v.Name, v.ConnectionId, fmt.Sprint(v.Vlan), fmt.Sprintf("%d/%d", v.CustomerAsn, v.AmazonAsn),
		v.AmazonAddress + " " + v.CustomerAddress, gw, bgp, rx, tx}
}

func prefixes(ps []string) string {
	if len(ps) == 0 {
		return "-"
	}
	return strings.Join(ps, ",")
}

// dxvifDetail is `dx vif get` as a table: one field a line, the session
// and its counters too.
func dxvifDetail(v *pb.DxVirtualInterface) ([]string, [][]string) {
	rows := [][]string{
		{"id", v.Id}, {"name", v.Name}, {"connection", v.ConnectionId}, {"vlan", fmt.Sprint(v.Vlan)},
		{"customer asn", fmt.Sprint(v.CustomerAsn)}, {"amazon asn", fmt.Sprint(v.AmazonAsn)},
		{"amazon address", v.AmazonAddress}, {"customer address", v.CustomerAddress},
		{"bgp key", v.AuthKey}, {"hold time", fmt.Sprintf("%d s", v.HoldTime)},
		{"gateway", v.VpnGatewayId + v.DxGatewayId},
	}
	if st := v.Status; st != nil {
		since := ""
		if st.Since != nil {
			since = " since " + ago(st.Since)
		}
		rows = append(rows, []string{"bgp state", st.BgpState + since})
		if st.Reason != "" {
			rows = append(rows, []string{"bgp reason", st.Reason})
		}
		if st.OverLimit {
			rows = append(rows, []string{"over limit", "yes: you announced more than 100 prefixes; announce fewer"})
		}
		rows = append(rows,
			[]string{"prefixes received", prefixes(st.PrefixesReceived)},
			[]string{"prefixes advertised", prefixes(st.PrefixesAdvertised)},
			[]string{"flaps", fmt.Sprint(st.Flaps)},
			[]string{"frames in/out", fmt.Sprintf("%d/%d", st.FramesIn, st.FramesOut)},
			[]string{"reported by", st.Edge + " " + ago(st.ReportTime)})
	} else {
		rows = append(rows, []string{"bgp state", "unknown: no edge has reported this VIF yet"})
	}
	return []string{"FIELD", "VALUE"}, rows
}

func dxVIFCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "vif", Short: "Private virtual interfaces: a VLAN on a connection and a BGP session with your router"}
	var m pb.CreateVirtualInterfaceRequest
	var vlan, asn, amazonASN, hold uint32
	create := &cobra.Command{
		Use:   "create --connection CON --vlan VID --asn ASN (--vgw VGW | --dx-gateway DXGW)",
		Short: "Create a private virtual interface (peer addresses and BGP key generated unless given)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			m.Vlan, m.CustomerAsn, m.AmazonAsn, m.HoldTime = vlan, asn, amazonASN, hold
			r, err := cl.dx().CreateVirtualInterface(cmd.Context(), call(&m))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.VirtualInterface, dxvifHeader, dxvifRow(r.Msg.VirtualInterface))
		}),
	}
	f := create.Flags()
	f.StringVar(&m.Name, "name", "", "unique name of the virtual interface")
	f.StringVar(&m.Connection, "connection", "", "connection name or id (required)")
	f.Uint32Var(&vlan, "vlan", 0, "802.1Q VLAN id, 1–4094, free on the connection (required)")
	f.Uint32Var(&asn, "asn", 0, "your router's BGP ASN (required)")
	f.Uint32Var(&amazonASN, "amazon-asn", 0, "Amazon-side ASN (default: the gateway's, 64512)")
	f.StringVar(&m.AmazonAddress, "amazon-address", "", "Amazon's peer address with its /30 (default: allocated from 169.254.0.0/16)")
	f.StringVar(&m.CustomerAddress, "customer-address", "", "your router's peer address with its /30")
	f.StringVar(&m.AuthKey, "auth-key", "", "BGP MD5 key, 6–80 printable characters (default: generated)")
	f.StringVar(&m.VpnGateway, "vgw", "", "virtual private gateway to attach to (vgw-…)")
	f.StringVar(&m.DxGateway, "dx-gateway", "", "Direct Connect gateway to attach to")
	f.Uint32Var(&hold, "hold-time", 0, "BGP hold time in seconds (default 90, at least 3)")
	required(create, "connection", "vlan", "asn")
	get := &cobra.Command{
		Use: "get VIF", Short: "Show a virtual interface: its BGP state, prefixes received and advertised, counters", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.dx().GetVirtualInterface(cmd.Context(), call(&pb.GetVirtualInterfaceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			p := o.printer(cmd)
			if p.format == "json" {
				return p.one(r.Msg.VirtualInterface, nil, nil)
			}
			h, rows := dxvifDetail(r.Msg.VirtualInterface)
			return p.table(h, rows)
		}),
	}
	var con string
	listCmd := &cobra.Command{
		Use: "list [--connection CON]", Short: "List virtual interfaces (keys are shown by get and config only)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.dx().ListVirtualInterfaces(cmd.Context(), call(&pb.ListVirtualInterfacesRequest{Connection: con}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.VirtualInterfaces, dxvifHeader, dxvifRow)
		}),
	}
	listCmd.Flags().StringVar(&con, "connection", "", "only this connection's")
	del := &cobra.Command{
		Use: "delete VIF", Short: "Delete a virtual interface: its session goes down and its routes are withdrawn", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.dx().DeleteVirtualInterface(cmd.Context(), call(&pb.DeleteVirtualInterfaceRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted virtual interface "+args[0])
		}),
	}
	var format, iface string
	var announce []string
	config := &cobra.Command{
		Use: "config VIF --format frr [--interface IFACE] [--announce PREFIX]…", Short: "Print your router's configuration for a virtual interface", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.dx().DescribeRouterConfiguration(cmd.Context(), call(&pb.DescribeRouterConfigurationRequest{Ref: args[0], Format: format, Interface: iface, Announce: announce}))
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), r.Msg.Config)
			return err
		}),
	}
	config.Flags().StringVar(&format, "format", "frr", "router configuration format: frr")
	config.Flags().StringVar(&iface, "interface", "eth1", "your router's interface cabled to the port")
	config.Flags().StringSliceVar(&announce, "announce", nil, "your prefixes to announce (repeat or comma-separate)")
	c.AddCommand(create, get, listCmd, del, config)
	return c
}

var dxgwHeader = []string{"ID", "NAME", "AMAZON ASN", "VIRTUAL PRIVATE GATEWAYS"}

func dxgwRow(g *pb.DxGateway) []string {
	return []string{g.Id, g.Name, fmt.Sprint(g.AmazonAsn), prefixes(g.VpnGatewayIds)}
}

func dxGatewayCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "gateway", Aliases: []string{"gw"}, Short: "Direct Connect gateways: one set of VIFs for the virtual private gateways of several VPCs"}
	var name string
	var asn uint32
	create := &cobra.Command{
		Use: "create [--name NAME] [--amazon-asn ASN]", Short: "Create a Direct Connect gateway", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.dx().CreateGateway(cmd.Context(), call(&pb.CreateGatewayRequest{Name: name, AmazonAsn: asn}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Gateway, dxgwHeader, dxgwRow(r.Msg.Gateway))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the gateway")
	create.Flags().Uint32Var(&asn, "amazon-asn", 0, "Amazon-side ASN, private (default 64512)")
	get := &cobra.Command{
		Use: "get DXGW", Short: "Show a Direct Connect gateway", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.dx().GetGateway(cmd.Context(), call(&pb.GetGatewayRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Gateway, dxgwHeader, dxgwRow(r.Msg.Gateway))
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List Direct Connect gateways", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.dx().ListGateways(cmd.Context(), call(&pb.ListGatewaysRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Gateways, dxgwHeader, dxgwRow)
		}),
	}
	del := &cobra.Command{
		Use: "delete DXGW", Short: "Delete a Direct Connect gateway with no VIFs or associations", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.dx().DeleteGateway(cmd.Context(), call(&pb.DeleteGatewayRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted Direct Connect gateway "+args[0])
		}),
	}
	var vgw string
	assoc := func(use, short string, on bool) *cobra.Command {
		cmd := &cobra.Command{
			Use: use + " DXGW --vgw VGW", Short: short, Args: cobra.ExactArgs(1),
			RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
				var g *pb.DxGateway
				if on {
					r, err := cl.dx().AssociateGateway(cmd.Context(), call(&pb.AssociateGatewayRequest{Gateway: args[0], VpnGateway: vgw}))
					if err != nil {
						return err
					}
					g = r.Msg.Gateway
				} else {
					r, err := cl.dx().DisassociateGateway(cmd.Context(), call(&pb.DisassociateGatewayRequest{Gateway: args[0], VpnGateway: vgw}))
					if err != nil {
						return err
					}
					g = r.Msg.Gateway
				}
				return o.printer(cmd).one(g, dxgwHeader, dxgwRow(g))
			}),
		}
		cmd.Flags().StringVar(&vgw, "vgw", "", "virtual private gateway id (required)")
		required(cmd, "vgw")
		return cmd
	}
	c.AddCommand(create, get, listCmd, del,
		assoc("associate", "Associate a virtual private gateway: its VPC's CIDR is announced on the gateway's VIFs", true),
		assoc("disassociate", "Disassociate a virtual private gateway", false))
	return c
}
