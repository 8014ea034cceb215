package cli

import (
	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var igwHeader = []string{"ID", "NAME", "VPC"}

func igwRow(g *pb.InternetGateway) []string { return []string{g.Id, g.Name, g.VpcId} }

func igwCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "igw", Short: "Internet gateways: a VPC's way to the internet through the edges"}
	var name string
	create := &cobra.Command{
		Use: "create [--name NAME]", Short: "Create an internet gateway (detached)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreateInternetGateway(cmd.Context(), call(&pb.CreateInternetGatewayRequest{Name: name}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.InternetGateway, igwHeader, igwRow(r.Msg.InternetGateway))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the gateway")
	var vpc string
	attach := &cobra.Command{
		Use: "attach IGW --vpc VPC", Short: "Attach an internet gateway to a VPC (one per VPC)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.AttachInternetGateway(cmd.Context(), call(&pb.AttachInternetGatewayRequest{Ref: args[0], Vpc: vpc}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.InternetGateway, igwHeader, igwRow(r.Msg.InternetGateway))
		}),
	}
	attach.Flags().StringVar(&vpc, "vpc", "", "VPC name or id (required)")
	required(attach, "vpc")
	detach := &cobra.Command{
		Use: "detach IGW", Short: "Detach an internet gateway; routes to it become blackholes", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.DetachInternetGateway(cmd.Context(), call(&pb.DetachInternetGatewayRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.InternetGateway, igwHeader, igwRow(r.Msg.InternetGateway))
		}),
	}
	del := &cobra.Command{
		Use: "delete IGW", Short: "Delete a detached internet gateway", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteInternetGateway(cmd.Context(), call(&pb.DeleteInternetGatewayRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted internet gateway "+args[0])
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List internet gateways", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListInternetGateways(cmd.Context(), call(&pb.ListInternetGatewaysRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.InternetGateways, igwHeader, igwRow)
		}),
	}
	get := &cobra.Command{
		Use: "get IGW", Short: "Show an internet gateway", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetInternetGateway(cmd.Context(), call(&pb.GetInternetGatewayRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.InternetGateway, igwHeader, igwRow(r.Msg.InternetGateway))
		}),
	}
	c.AddCommand(create, attach, detach, del, listCmd, get)
	return c
}

var eipHeader = []string{"ALLOCATION ID", "NAME", "PUBLIC IP", "INSTANCE", "PRIVATE IP", "ENI"}

func eipRow(e *pb.ElasticIp) []string {
	return []string{e.AllocationId, e.Name, e.PublicIp, e.InstanceId, e.PrivateIp, e.EniId}
}

func eipCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "eip", Short: "Elastic IPs: public addresses the edges translate to an instance's private one (1:1 NAT)"}
	var name string
	alloc := &cobra.Command{
		Use: "allocate [--name NAME]", Short: "Allocate an Elastic IP from the server's pool", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.AllocateAddress(cmd.Context(), call(&pb.AllocateAddressRequest{Name: name}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Address, eipHeader, eipRow(r.Msg.Address))
		}),
	}
	alloc.Flags().StringVar(&name, "name", "", "unique name of the address")
	var inst string
	assoc := &cobra.Command{
		Use: "associate EIP --instance I", Short: "Give an instance an Elastic IP (EIP: allocation id, name or address)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.AssociateAddress(cmd.Context(), call(&pb.AssociateAddressRequest{Ref: args[0], Instance: inst}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Address, eipHeader, eipRow(r.Msg.Address))
		}),
	}
	assoc.Flags().StringVar(&inst, "instance", "", "instance name or id (required)")
	required(assoc, "instance")
	disassoc := &cobra.Command{
		Use: "disassociate EIP", Short: "Take an Elastic IP off its instance (it stays allocated)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.DisassociateAddress(cmd.Context(), call(&pb.DisassociateAddressRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Address, eipHeader, eipRow(r.Msg.Address))
		}),
	}
	release := &cobra.Command{
		Use: "release EIP", Short: "Return a disassociated Elastic IP to the pool", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.ReleaseAddress(cmd.Context(), call(&pb.ReleaseAddressRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "released Elastic IP "+args[0])
		}),
	}
	listCmd := &cobra.Command{
		Use: "list", Short: "List Elastic IPs", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListAddresses(cmd.Context(), call(&pb.ListAddressesRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Addresses, eipHeader, eipRow)
		}),
	}
	get := &cobra.Command{
		Use: "get EIP", Short: "Show an Elastic IP (EIP: allocation id, name or address)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetAddress(cmd.Context(), call(&pb.GetAddressRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Address, eipHeader, eipRow(r.Msg.Address))
		}),
	}
	c.AddCommand(alloc, assoc, disassoc, release, listCmd, get)
	return c
}
