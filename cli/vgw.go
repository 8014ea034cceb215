package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var vgwHeader = []string{"ID", "NAME", "AMAZON-SIDE ASN", "VPC"}

func vgwRow(g *pb.VpnGateway) []string {
	return []string{g.Id, g.Name, strconv.FormatUint(uint64(g.AmazonSideAsn), 10), g.VpcId}
}

func vgwCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "vgw", Short: "Virtual private gateways: a VPC's side of VPN connections"}
	one := func(cmd *cobra.Command, g *pb.VpnGateway) error { return o.printer(cmd).one(g, vgwHeader, vgwRow(g)) }
	var name string
	var asn uint32
	create := &cobra.Command{
		Use: "create [--asn N] [--name NAME]", Short: "Create a virtual private gateway (detached)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpn.CreateVpnGateway(cmd.Context(), call(&pb.CreateVpnGatewayRequest{Name: name, AmazonSideAsn: asn}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnGateway)
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the gateway")
	create.Flags().Uint32Var(&asn, "asn", 0, "the VPC side's BGP ASN (default 64512)")
	var vpc string
	attach := &cobra.Command{
		Use: "attach VGW --vpc VPC", Short: "Attach a virtual private gateway to a VPC (one per VPC)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.AttachVpnGateway(cmd.Context(), call(&pb.AttachVpnGatewayRequest{Ref: args[0], Vpc: vpc}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnGateway)
		}),
	}
	attach.Flags().StringVar(&vpc, "vpc", "", "VPC name or id (required)")
	required(attach, "vpc")
	detach := &cobra.Command{
		Use: "detach VGW", Short: "Detach a virtual private gateway; its routes leave the VPC's route tables", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.DetachVpnGateway(cmd.Context(), call(&pb.DetachVpnGatewayRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnGateway)
		}),
	}
	get := &cobra.Command{
		Use: "get VGW", Short: "Show a virtual private gateway", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.GetVpnGateway(cmd.Context(), call(&pb.GetVpnGatewayRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return one(cmd, r.Msg.VpnGateway)
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List virtual private gateways", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpn.ListVpnGateways(cmd.Context(), call(&pb.ListVpnGatewaysRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.VpnGateways, vgwHeader, vgwRow)
		}),
	}
	del := &cobra.Command{
		Use: "delete VGW", Short: "Delete a detached virtual private gateway with no VPN connections", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpn.DeleteVpnGateway(cmd.Context(), call(&pb.DeleteVpnGatewayRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted virtual private gateway "+args[0])
		}),
	}
	c.AddCommand(create, attach, detach, get, listCmd, del)
	return c
}

// propagationCmd is `route-table propagation enable|disable`.
func propagationCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "propagation", Short: "Let a route table receive the routes of a virtual private gateway (VPN, Direct Connect)"}
	for _, on := range []bool{true, false} {
		verb, short := "enable", "Propagate a vgw's routes (its VPN connections' static or BGP routes) into the route table"
		if !on {
			verb, short = "disable", "Stop propagating a vgw's routes into the route table"
		}
		var vgw string
		cmd := &cobra.Command{
			Use: verb + " ROUTE-TABLE --vgw VGW", Short: short, Args: cobra.ExactArgs(1),
			RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
				var rt *pb.RouteTable
				if on {
					r, err := cl.vpn.EnableRoutePropagation(cmd.Context(), call(&pb.EnableRoutePropagationRequest{RouteTable: args[0], VpnGateway: vgw}))
					if err != nil {
						return err
					}
					rt = r.Msg.RouteTable
				} else {
					r, err := cl.vpn.DisableRoutePropagation(cmd.Context(), call(&pb.DisableRoutePropagationRequest{RouteTable: args[0], VpnGateway: vgw}))
					if err != nil {
						return err
					}
					rt = r.Msg.RouteTable
				}
				return o.printer(cmd).one(rt, rtbHeader, rtbRow(rt))
			}),
		}
		cmd.Flags().StringVar(&vgw, "vgw", "", "virtual private gateway name or id (required)")
		required(cmd, "vgw")
		c.AddCommand(cmd)
	}
	return c
}
