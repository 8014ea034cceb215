package node

import (
	"net/netip"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
)

// firewallFacts reads a VPC's security groups, network ACLs and defaults
// back from the tables in the Mapping Service's terms: what State()
// reports, so tests can check that what was sent is what is enforced. A
// rule's peer comes back as its CIDR or its group (the tables keep no
// prefix-list ids; the control plane makes no prefix-list rules yet).
func firewallFacts(v *tables.VPC, f *pb.VpcFacts) {
	if v.DefaultGroup != 0 {
		f.DefaultSecurityGroupId = model.FormatID(model.KindSecurityGroup, v.DefaultGroup)
	}
	if v.DefaultACL != 0 {
		f.DefaultNetworkAclId = model.FormatID(model.KindNetworkACL, v.DefaultACL)
	}
	for _, g := range v.SecurityGroups {
		f.SecurityGroups = append(f.SecurityGroups, &pb.SecurityGroupFacts{
			Id: model.FormatID(model.KindSecurityGroup, g.ID), Ingress: protoRules(g.Ingress), Egress: protoRules(g.Egress),
		})
	}
	for _, a := range v.NetworkACLs {
		f.NetworkAcls = append(f.NetworkAcls, &pb.NetworkAclFacts{
			Id: model.FormatID(model.KindNetworkACL, a.ID), Inbound: protoEntries(a.Inbound), Outbound: protoEntries(a.Outbound),
		})
	}
}

func protoRules(rs []tables.SGRule) []*pb.SecurityGroupRule {
	var out []*pb.SecurityGroupRule
	for _, r := range rs {
		p := &pb.SecurityGroupRule{RuleId: model.FormatID(model.KindSecurityGroupRule, r.ID), Protocol: int32(r.Proto), FromPort: r.From, ToPort: r.To}
		if r.Group != 0 {
			p.GroupId = model.FormatID(model.KindSecurityGroup, r.Group)
		}
		if len(r.Prefixes) > 0 {
			p.Cidr = r.Prefixes[0].String()
			for _, q := range r.Prefixes[1:] {
				p.PrefixCidrs = append(p.PrefixCidrs, q.String())
			}
		}
		out = append(out, p)
	}
	return out
}

func protoEntries(es []tables.ACLEntry) []*pb.NetworkAclEntry {
	var out []*pb.NetworkAclEntry
	for _, e := range es {
		cidr := ""
		if e.Prefix != (netip.Prefix{}) {
			cidr = e.Prefix.String()
		}
		out = append(out, &pb.NetworkAclEntry{RuleNumber: e.Number, Protocol: int32(e.Proto), FromPort: e.From, ToPort: e.To, Cidr: cidr, Allow: e.Allow})
	}
	return out
}

// protoGroups spells an ENI's groups.
func protoGroups(ids []uint64) []string {
	var out []string
	for _, id := range ids {
		out = append(out, model.FormatID(model.KindSecurityGroup, id))
	}
	return out
}
