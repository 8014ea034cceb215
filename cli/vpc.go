package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var vpcHeader = []string{"ID", "NAME", "CIDR", "VNI", "MAIN ROUTE TABLE", "DEFAULT SG", "DEFAULT ACL"}

func vpcRow(v *pb.Vpc) []string {
	return []string{v.Id, v.Name, v.Cidr, strconv.FormatUint(uint64(v.Vni), 10), v.MainRouteTableId, v.DefaultSecurityGroupId, v.DefaultNetworkAclId}
}

func vpcCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "vpc", Short: "Create, list, show, modify and delete VPCs"}
	var name, cidr string
	create := &cobra.Command{
		Use: "create --name NAME --cidr CIDR", Short: "Create a VPC (CIDR /16 to /28)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreateVpc(cmd.Context(), call(&pb.CreateVpcRequest{Name: name, Cidr: cidr}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Vpc, vpcHeader, vpcRow(r.Msg.Vpc))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the VPC (required)")
	create.Flags().StringVar(&cidr, "cidr", "", "IPv4 CIDR of the VPC, e.g. 10.0.0.0/16 (required)")
	required(create, "name", "cidr")

	listCmd := &cobra.Command{
		Use: "list", Short: "List VPCs", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListVpcs(cmd.Context(), call(&pb.ListVpcsRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Vpcs, vpcHeader, vpcRow)
		}),
	}
	get := &cobra.Command{
		Use: "get VPC", Short: "Show a VPC (by name or id)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetVpc(cmd.Context(), call(&pb.GetVpcRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Vpc, vpcHeader, vpcRow(r.Msg.Vpc))
		}),
	}
	del := &cobra.Command{
		Use: "delete VPC", Short: "Delete a VPC with no subnets, route tables or peerings left", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteVpc(cmd.Context(), call(&pb.DeleteVpcRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted VPC "+args[0])
		}),
	}
	var dnsSupport bool
	var dnsHostnames string
	modify := &cobra.Command{
		Use: "modify VPC [--enable-dns-support=true|false] [--enable-dns-hostnames true|false]", Short: "Change a VPC's attributes: whether its resolver (.2) answers, and whether it answers instance names", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			req := &pb.ModifyVpcRequest{Ref: args[0]}
			if cmd.Flags().Changed("enable-dns-support") {
				req.EnableDnsSupport = &dnsSupport
			}
			if cmd.Flags().Changed("enable-dns-hostnames") {
				on, err := strconv.ParseBool(dnsHostnames)
				if err != nil {
					return fmt.Errorf("--enable-dns-hostnames: %q is neither true nor false", dnsHostnames)
				}
				req.EnableDnsHostnames = &on
			}
			r, err := cl.vpc.ModifyVpc(cmd.Context(), call(req))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Vpc, vpcHeader, vpcRow(r.Msg.Vpc))
		}),
	}
	modify.Flags().BoolVar(&dnsSupport, "enable-dns-support", true, "whether the VPC resolver at .2 and 169.254.169.253 answers (AWS's enableDnsSupport)")
	modify.Flags().StringVar(&dnsHostnames, "enable-dns-hostnames", "", "true or false: whether the VPC resolver answers the instances' names (ip-….compute.internal, NAME.VPC.internal) and their PTRs (AWS's enableDnsHostnames)")
	c.AddCommand(create, listCmd, get, modify, del)
	return c
}

// done reports a mutation without a resource to print.
func done(cmd *cobra.Command, o *Options, msg string) error {
	if o.Output == "json" {
		_, err := fmt.Fprintln(cmd.OutOrStdout(), "{}")
		return err
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), msg)
	return err
}
