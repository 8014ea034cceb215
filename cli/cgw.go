package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var cgwHeader = []string{"ID", "NAME", "IP ADDRESS", "BGP ASN"}

func cgwRow(g *pb.CustomerGateway) []string {
	return []string{g.Id, g.Name, g.IpAddress, strconv.FormatUint(uint64(g.BgpAsn), 10)}
}

func cgwCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "cgw", Short: "Customer gateways: the router at a site that VPN connections reach"}
	var name, ip string
	var asn uint32
	create := &cobra.Command{
		Use: "create --ip ADDRESS [--asn N] [--name NAME]", Short: "Record a site's router: its public address and BGP ASN", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpn.CreateCustomerGateway(cmd.Context(), call(&pb.CreateCustomerGatewayRequest{Name: name, IpAddress: ip, BgpAsn: asn}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.CustomerGateway, cgwHeader, cgwRow(r.Msg.CustomerGateway))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the customer gateway")
	create.Flags().StringVar(&ip, "ip", "", "the router's public IPv4 address (required)")
	create.Flags().Uint32Var(&asn, "asn", 0, "the site's BGP ASN (default 65000)")
	required(create, "ip")
	get := &cobra.Command{
		Use: "get CGW", Short: "Show a customer gateway", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpn.GetCustomerGateway(cmd.Context(), call(&pb.GetCustomerGatewayRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.CustomerGateway, cgwHeader, cgwRow(r.Msg.CustomerGateway))
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List customer gateways", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpn.ListCustomerGateways(cmd.Context(), call(&pb.ListCustomerGatewaysRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.CustomerGateways, cgwHeader, cgwRow)
		}),
	}
	del := &cobra.Command{
		Use: "delete CGW", Short: "Delete a customer gateway no VPN connection uses", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpn.DeleteCustomerGateway(cmd.Context(), call(&pb.DeleteCustomerGatewayRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted customer gateway "+args[0])
		}),
	}
	c.AddCommand(create, get, listCmd, del)
	return c
}
