package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var aclHeader = []string{"ID", "NAME", "VPC", "DEFAULT", "INBOUND", "OUTBOUND", "SUBNETS"}

func aclRow(a *pb.NetworkAcl) []string {
	return []string{a.Id, a.Name, a.VpcId, yesNo(a.IsDefault), aclEntries(a.Inbound), aclEntries(a.Outbound), strings.Join(a.SubnetIds, " ")}
}

// aclEntries spells entries lowest first, ending with the implicit deny:
// 100:allow:tcp:80:0.0.0.0/0 *:deny.
func aclEntries(es []*pb.NetworkAclEntry) string {
	parts := make([]string, 0, len(es)+1)
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%d:%s:%s:%s", e.RuleNumber, verbOf(e.Allow), matchString(e.Protocol, e.FromPort, e.ToPort), e.Cidr))
	}
	return strings.Join(append(parts, "*:deny"), " ")
}

func verbOf(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func aclCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "acl", Short: "Network ACLs: stateless numbered rules for subnets (a VPC's default ACL: VPC/default)"}
	var vpc, name string
	create := &cobra.Command{
		Use: "create --vpc VPC [--name NAME]", Short: "Create a network ACL (it denies everything until entries are added)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreateNetworkAcl(cmd.Context(), call(&pb.CreateNetworkAclRequest{Vpc: vpc, Name: name}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.NetworkAcl, aclHeader, aclRow(r.Msg.NetworkAcl))
		}),
	}
	create.Flags().StringVar(&vpc, "vpc", "", "VPC name or id (required)")
	create.Flags().StringVar(&name, "name", "", "unique name of the ACL")
	required(create, "vpc")

	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc VPC]", Short: "List network ACLs, their entries and subnets", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListNetworkAcls(cmd.Context(), call(&pb.ListNetworkAclsRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.NetworkAcls, aclHeader, aclRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only this VPC's ACLs")
	get := &cobra.Command{
		Use: "get ACL", Short: "Show a network ACL", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetNetworkAcl(cmd.Context(), call(&pb.GetNetworkAclRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.NetworkAcl, aclHeader, aclRow(r.Msg.NetworkAcl))
		}),
	}
	del := &cobra.Command{
		Use: "delete ACL", Short: "Delete a network ACL no subnet is associated with", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteNetworkAcl(cmd.Context(), call(&pb.DeleteNetworkAclRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted network ACL "+args[0])
		}),
	}
	var subnet string
	assoc := &cobra.Command{
		Use: "associate ACL --subnet SUBNET", Short: "Associate a subnet with this ACL (instead of the one it had)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.AssociateNetworkAcl(cmd.Context(), call(&pb.AssociateNetworkAclRequest{Ref: args[0], Subnet: subnet}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.NetworkAcl, aclHeader, aclRow(r.Msg.NetworkAcl))
		}),
	}
	assoc.Flags().StringVar(&subnet, "subnet", "", "subnet name or id (required)")
	required(assoc, "subnet")
	c.AddCommand(create, listCmd, get, del, assoc, aclEntryCmd(o))
	return c
}

func aclEntryCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "entry", Short: "Add and delete a network ACL's numbered entries"}
	var m matchFlags
	var number int32
	var allow, deny, egress bool
	var cidr string
	add := &cobra.Command{
		Use:   "add ACL --rule-number N (--allow|--deny) [--egress] --proto P [--port …] [--icmp-type T] --cidr CIDR",
		Short: "Add an entry (evaluated lowest number first; the first match decides)",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if allow == deny {
				return errors.New("say what the entry does: --allow or --deny")
			}
			r, err := cl.vpc.CreateNetworkAclEntry(cmd.Context(), call(&pb.CreateNetworkAclEntryRequest{
				Ref: args[0], RuleNumber: number, Egress: egress, Allow: allow, Match: m.msg(cmd), Cidr: cidr,
			}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.NetworkAcl, aclHeader, aclRow(r.Msg.NetworkAcl))
		}),
	}
	m.add(add, true)
	add.Flags().Int32Var(&number, "rule-number", 0, "the entry's number, 1–32766, unique per direction (required)")
	add.Flags().BoolVar(&allow, "allow", false, "allow matching traffic")
	add.Flags().BoolVar(&deny, "deny", false, "deny matching traffic")
	add.Flags().BoolVar(&egress, "egress", false, "an outbound entry (default: inbound)")
	add.Flags().StringVar(&cidr, "cidr", "", "the remote addresses: source (inbound) or destination (outbound), e.g. 0.0.0.0/0 (required)")
	required(add, "rule-number", "cidr")

	var dnumber int32
	var degress bool
	del := &cobra.Command{
		Use: "delete ACL --rule-number N [--egress]", Short: "Delete an entry", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.DeleteNetworkAclEntry(cmd.Context(), call(&pb.DeleteNetworkAclEntryRequest{Ref: args[0], RuleNumber: dnumber, Egress: degress}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.NetworkAcl, aclHeader, aclRow(r.Msg.NetworkAcl))
		}),
	}
	del.Flags().Int32Var(&dnumber, "rule-number", 0, "the entry's number (required)")
	del.Flags().BoolVar(&degress, "egress", false, "an outbound entry (default: inbound)")
	required(del, "rule-number")
	c.AddCommand(add, del)
	return c
}
