package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

var sgHeader = []string{"ID", "NAME", "VPC", "DEFAULT", "INGRESS", "EGRESS", "DESCRIPTION"}

func sgRow(g *pb.SecurityGroup) []string {
	return []string{g.Id, g.Name, g.VpcId, yesNo(g.IsDefault), sgRules(g.Ingress, false), sgRules(g.Egress, true), g.Description}
}

// sgRules spells rules one after another: sgr-…:tcp:80<-0.0.0.0/0.
func sgRules(rs []*pb.SecurityGroupRule, egress bool) string {
	arrow := "<-"
	if egress {
		arrow = "->"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		peer := r.Cidr
		switch {
		case r.GroupId != "":
			peer = r.GroupId
		case r.PrefixListId != "":
			peer = r.PrefixListId
		}
		parts[i] = r.RuleId + ":" + matchString(r.Protocol, r.FromPort, r.ToPort) + arrow + peer
	}
	return strings.Join(parts, " ")
}

func matchString(proto, from, to int32) string {
	return model.Match{Protocol: proto, From: from, To: to}.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// matchFlags are the flags that say what a rule or an ACL entry matches.
type matchFlags struct {
	proto, port        string
	icmpType, icmpCode int32
}

func (m *matchFlags) add(c *cobra.Command, protoRequired bool) {
	fs := c.Flags()
	fs.StringVar(&m.proto, "proto", "", "protocol: tcp, udp, icmp, all, or an IP protocol number (required)")
	fs.StringVar(&m.port, "port", "", "tcp and udp: a port (80) or a range (1000-2000; 0-65535 for all)")
	fs.Int32Var(&m.icmpType, "icmp-type", -1, "icmp: the type (8 echo request, 0 echo reply, 3 unreachable); default any")
	fs.Int32Var(&m.icmpCode, "icmp-code", -1, "icmp: the code (needs --icmp-type); default any")
	if protoRequired {
		_ = c.MarkFlagRequired("proto")
	}
}

func (m *matchFlags) msg(c *cobra.Command) *pb.RuleMatch {
	r := &pb.RuleMatch{Protocol: m.proto, Port: m.port}
	if c.Flags().Changed("icmp-type") {
		r.IcmpType = &m.icmpType
	}
	if c.Flags().Changed("icmp-code") {
		r.IcmpCode = &m.icmpCode
	}
	return r
}

// ruleFlags are the flags of sg authorize and sg revoke.
type ruleFlags struct {
	matchFlags
	ingress, egress               bool
	cidr, group, prefixList, rule string
}

func (r *ruleFlags) add(c *cobra.Command, revoke bool) {
	r.matchFlags.add(c, !revoke) // a revoke by id needs no match
	fs := c.Flags()
	fs.BoolVar(&r.ingress, "ingress", false, "an inbound rule: traffic to the group's members (the default)")
	fs.BoolVar(&r.egress, "egress", false, "an outbound rule: traffic from the group's members")
	fs.StringVar(&r.cidr, "cidr", "", "peer addresses: the source (ingress) or destination (egress), e.g. 0.0.0.0/0")
	fs.StringVar(&r.group, "source-group", "", "peer: the members of this security group (name, id, or VPC/default; this VPC's or an actively peered VPC's)")
	fs.StringVar(&r.prefixList, "prefix-list", "", "peer: the CIDRs of this prefix list (name or id; counts as its max entries toward the 60-rule quota)")
	if revoke {
		fs.StringVar(&r.rule, "rule", "", "the rule's id (sgr-…), instead of what it matches")
	}
}

func (r *ruleFlags) spec(c *cobra.Command) (*pb.SecurityGroupRuleSpec, error) {
	if r.ingress && r.egress {
		return nil, errors.New("give --ingress or --egress, not both (add the rule twice for both directions)")
	}
	return &pb.SecurityGroupRuleSpec{Egress: r.egress, Match: r.msg(c), Cidr: r.cidr, Group: r.group, PrefixList: r.prefixList}, nil
}

func sgCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "sg", Short: "Security groups: stateful allow rules for instances' network interfaces (a VPC's default group: VPC/default)"}
	var vpc, name, desc string
	create := &cobra.Command{
		Use: "create --vpc VPC --name NAME [--description D]", Short: "Create a security group (no ingress, all egress)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreateSecurityGroup(cmd.Context(), call(&pb.CreateSecurityGroupRequest{Vpc: vpc, Name: name, Description: desc}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.SecurityGroup, sgHeader, sgRow(r.Msg.SecurityGroup))
		}),
	}
	create.Flags().StringVar(&vpc, "vpc", "", "VPC name or id (required)")
	create.Flags().StringVar(&name, "name", "", "unique name of the group (required)")
	create.Flags().StringVar(&desc, "description", "", "what the group is for")
	required(create, "vpc", "name")

	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc VPC]", Short: "List security groups and their rules", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListSecurityGroups(cmd.Context(), call(&pb.ListSecurityGroupsRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.SecurityGroups, sgHeader, sgRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only this VPC's groups")
	get := &cobra.Command{
		Use: "get SG", Short: "Show a security group and its rules", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetSecurityGroup(cmd.Context(), call(&pb.GetSecurityGroupRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.SecurityGroup, sgHeader, sgRow(r.Msg.SecurityGroup))
		}),
	}
	del := &cobra.Command{
		Use: "delete SG", Short: "Delete a security group no instance uses and no rule names", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteSecurityGroup(cmd.Context(), call(&pb.DeleteSecurityGroupRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted security group "+args[0])
		}),
	}
	var auth ruleFlags
	authorize := &cobra.Command{
		Use:   "authorize SG [--ingress|--egress] --proto P [--port 80|1000-2000] [--icmp-type T [--icmp-code C]] (--cidr CIDR | --source-group SG)",
		Short: "Allow traffic to (ingress) or from (egress) the group's members; takes effect at once",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			spec, err := auth.spec(cmd)
			if err != nil {
				return err
			}
			r, err := cl.vpc.AuthorizeSecurityGroupRule(cmd.Context(), call(&pb.AuthorizeSecurityGroupRuleRequest{Ref: args[0], Rule: spec}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.SecurityGroup, sgHeader, sgRow(r.Msg.SecurityGroup))
		}),
	}
	auth.add(authorize, false)
	var rev ruleFlags
	revoke := &cobra.Command{
		Use:   "revoke SG (--rule sgr-… | [--ingress|--egress] --proto P [--port …] (--cidr CIDR | --source-group SG))",
		Short: "Remove a rule; connections already tracked continue, new ones are refused",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			req := &pb.RevokeSecurityGroupRuleRequest{Ref: args[0], RuleId: rev.rule}
			if rev.rule == "" {
				if rev.proto == "" {
					return errors.New("say which rule: --rule sgr-…, or what it matches (--proto … and --cidr or --source-group)")
				}
				spec, err := rev.spec(cmd)
				if err != nil {
					return err
				}
				req.Rule = spec
			} else if cmd.Flags().Changed("proto") || rev.cidr != "" || rev.group != "" {
				return errors.New("give --rule or what the rule matches, not both")
			}
			r, err := cl.vpc.RevokeSecurityGroupRule(cmd.Context(), call(req))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.SecurityGroup, sgHeader, sgRow(r.Msg.SecurityGroup))
		}),
	}
	rev.add(revoke, true)
	c.AddCommand(create, listCmd, get, del, authorize, revoke)
	return c
}
