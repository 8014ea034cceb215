package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Security groups and network ACLs: VpcService's firewall half.

// maxDescription bounds a security group's description, as on AWS.
const maxDescription = 255

func (h *VPCs) CreateSecurityGroup(ctx context.Context, req *connect.Request[pb.CreateSecurityGroupRequest]) (*connect.Response[pb.CreateSecurityGroupResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	if m.Name == "" {
		return nil, model.Invalidf("a security group needs a name (--name)")
	}
	if err := model.ValidateName(model.KindSecurityGroup, m.Name); err != nil {
		return nil, err
	}
	if len(m.Description) > maxDescription {
		return nil, model.Invalidf("description is %d characters long; the limit is %d", len(m.Description), maxDescription)
	}
	g, err := h.Store.CreateSecurityGroup(ctx, m.Vpc, m.Name, m.Description)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateSecurityGroupResponse{SecurityGroup: g}), nil
}

func (h *VPCs) GetSecurityGroup(ctx context.Context, req *connect.Request[pb.GetSecurityGroupRequest]) (*connect.Response[pb.GetSecurityGroupResponse], error) {
	return byRef(ctx, model.KindSecurityGroup, req.Msg.Ref, h.Store.GetSecurityGroup, func(m *pb.SecurityGroup) *pb.GetSecurityGroupResponse {
		return &pb.GetSecurityGroupResponse{SecurityGroup: m}
	})
}

func (h *VPCs) ListSecurityGroups(ctx context.Context, req *connect.Request[pb.ListSecurityGroupsRequest]) (*connect.Response[pb.ListSecurityGroupsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	gs, err := h.Store.ListSecurityGroups(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListSecurityGroupsResponse{SecurityGroups: gs}), nil
}

func (h *VPCs) DeleteSecurityGroup(ctx context.Context, req *connect.Request[pb.DeleteSecurityGroupRequest]) (*connect.Response[pb.DeleteSecurityGroupResponse], error) {
	return remove[pb.DeleteSecurityGroupResponse](ctx, model.KindSecurityGroup, req.Msg.Ref, h.Store.DeleteSecurityGroup)
}

// parseMatch checks a RuleMatch as the user wrote it.
func parseMatch(m *pb.RuleMatch) (model.Match, error) {
	if m == nil {
		return model.Match{}, model.Invalidf("no protocol given; use tcp, udp, icmp, all or an IP protocol number")
	}
	return model.MatchSpec{Protocol: m.Protocol, Port: m.Port, ICMPType: m.IcmpType, ICMPCode: m.IcmpCode}.Parse()
}

// ruleSpec checks a rule as the user wrote it.
func ruleSpec(r *pb.SecurityGroupRuleSpec) (store.RuleSpec, error) {
	if r == nil {
		return store.RuleSpec{}, model.Invalidf("no rule given")
	}
	match, err := parseMatch(r.Match)
	if err != nil {
		return store.RuleSpec{}, err
	}
	spec := store.RuleSpec{Egress: r.Egress, Match: match, Group: r.Group, PrefixList: r.PrefixList}
	if r.Cidr != "" {
		p, err := model.ParseCIDR("rule CIDR", r.Cidr, 0, 32)
		if err != nil {
			return store.RuleSpec{}, err
		}
		spec.CIDR = p.String()
	}
	if err := optionalRef(model.KindSecurityGroup, "peer security group", r.Group); err != nil {
		return store.RuleSpec{}, err
	}
	if err := optionalRef(model.KindPrefixList, "prefix list", r.PrefixList); err != nil {
		return store.RuleSpec{}, err
	}
	return spec, nil
}

func (h *VPCs) AuthorizeSecurityGroupRule(ctx context.Context, req *connect.Request[pb.AuthorizeSecurityGroupRuleRequest]) (*connect.Response[pb.AuthorizeSecurityGroupRuleResponse], error) {
	m := req.Msg
	if err := ref(model.KindSecurityGroup, "security group", m.Ref); err != nil {
		return nil, err
	}
	spec, err := ruleSpec(m.Rule)
	if err != nil {
		return nil, err
	}
	g, r, err := h.Store.AuthorizeRule(ctx, m.Ref, spec)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AuthorizeSecurityGroupRuleResponse{SecurityGroup: g, Rule: r}), nil
}

func (h *VPCs) RevokeSecurityGroupRule(ctx context.Context, req *connect.Request[pb.RevokeSecurityGroupRuleRequest]) (*connect.Response[pb.RevokeSecurityGroupRuleResponse], error) {
	m := req.Msg
	if err := ref(model.KindSecurityGroup, "security group", m.Ref); err != nil {
		return nil, err
	}
	var spec store.RuleSpec
	switch {
	case m.RuleId != "" && m.Rule != nil:
		return nil, model.Invalidf("name the rule by its id or by what it matches, not both")
	case m.RuleId != "":
		if !model.IsID(model.KindSecurityGroupRule, m.RuleId) {
			return nil, model.Invalidf("rule %q is not a rule id (sgr-…)", m.RuleId)
		}
	default:
		var err error
		if spec, err = ruleSpec(m.Rule); err != nil {
			return nil, err
		}
	}
	g, err := h.Store.RevokeRule(ctx, m.Ref, m.RuleId, spec)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RevokeSecurityGroupRuleResponse{SecurityGroup: g}), nil
}

func (h *VPCs) CreateNetworkAcl(ctx context.Context, req *connect.Request[pb.CreateNetworkAclRequest]) (*connect.Response[pb.CreateNetworkAclResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	if err := optionalName(model.KindNetworkACL, m.Name); err != nil {
		return nil, err
	}
	a, err := h.Store.CreateNetworkACL(ctx, m.Vpc, m.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateNetworkAclResponse{NetworkAcl: a}), nil
}

func (h *VPCs) GetNetworkAcl(ctx context.Context, req *connect.Request[pb.GetNetworkAclRequest]) (*connect.Response[pb.GetNetworkAclResponse], error) {
	return byRef(ctx, model.KindNetworkACL, req.Msg.Ref, h.Store.GetNetworkACL, func(m *pb.NetworkAcl) *pb.GetNetworkAclResponse {
		return &pb.GetNetworkAclResponse{NetworkAcl: m}
	})
}

func (h *VPCs) ListNetworkAcls(ctx context.Context, req *connect.Request[pb.ListNetworkAclsRequest]) (*connect.Response[pb.ListNetworkAclsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	as, err := h.Store.ListNetworkACLs(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListNetworkAclsResponse{NetworkAcls: as}), nil
}

func (h *VPCs) DeleteNetworkAcl(ctx context.Context, req *connect.Request[pb.DeleteNetworkAclRequest]) (*connect.Response[pb.DeleteNetworkAclResponse], error) {
	return remove[pb.DeleteNetworkAclResponse](ctx, model.KindNetworkACL, req.Msg.Ref, h.Store.DeleteNetworkACL)
}

func (h *VPCs) CreateNetworkAclEntry(ctx context.Context, req *connect.Request[pb.CreateNetworkAclEntryRequest]) (*connect.Response[pb.CreateNetworkAclEntryResponse], error) {
	m := req.Msg
	if err := ref(model.KindNetworkACL, "network ACL", m.Ref); err != nil {
		return nil, err
	}
	if err := model.CheckACLRuleNumber(m.RuleNumber); err != nil {
		return nil, err
	}
	match, err := parseMatch(m.Match)
	if err != nil {
		return nil, err
	}
	if m.Cidr == "" {
		return nil, model.Invalidf("an ACL entry needs a CIDR (0.0.0.0/0 for every address)")
	}
	cidr, err := model.ParseCIDR("entry CIDR", m.Cidr, 0, 32)
	if err != nil {
		return nil, err
	}
	e := &pb.NetworkAclEntry{RuleNumber: m.RuleNumber, Protocol: match.Protocol, FromPort: match.From, ToPort: match.To, Cidr: cidr.String(), Allow: m.Allow}
	a, err := h.Store.AddACLEntry(ctx, m.Ref, m.Egress, e)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateNetworkAclEntryResponse{NetworkAcl: a}), nil
}

func (h *VPCs) DeleteNetworkAclEntry(ctx context.Context, req *connect.Request[pb.DeleteNetworkAclEntryRequest]) (*connect.Response[pb.DeleteNetworkAclEntryResponse], error) {
	m := req.Msg
	if err := ref(model.KindNetworkACL, "network ACL", m.Ref); err != nil {
		return nil, err
	}
	if err := model.CheckACLRuleNumber(m.RuleNumber); err != nil {
		return nil, err
	}
	a, err := h.Store.DeleteACLEntry(ctx, m.Ref, m.Egress, m.RuleNumber)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeleteNetworkAclEntryResponse{NetworkAcl: a}), nil
}

func (h *VPCs) AssociateNetworkAcl(ctx context.Context, req *connect.Request[pb.AssociateNetworkAclRequest]) (*connect.Response[pb.AssociateNetworkAclResponse], error) {
	m := req.Msg
	if err := ref(model.KindNetworkACL, "network ACL", m.Ref); err != nil {
		return nil, err
	}
	if err := ref(model.KindSubnet, "subnet", m.Subnet); err != nil {
		return nil, err
	}
	a, sn, err := h.Store.AssociateNetworkACL(ctx, m.Ref, m.Subnet)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AssociateNetworkAclResponse{NetworkAcl: a, Subnet: sn}), nil
}

// securityGroupRefs validates an instance's group arguments.
func securityGroupRefs(refs []string) error {
	for _, r := range refs {
		if err := ref(model.KindSecurityGroup, "security group", r); err != nil {
			return err
		}
	}
	return nil
}

func (h *Instances) ModifyInstance(ctx context.Context, req *connect.Request[pb.ModifyInstanceRequest]) (*connect.Response[pb.ModifyInstanceResponse], error) {
	m := req.Msg
	if err := ref(model.KindInstance, "instance", m.Ref); err != nil {
		return nil, err
	}
	if err := securityGroupRefs(m.SecurityGroups); err != nil {
		return nil, err
	}
	token, err := imdsV1(m.ImdsV1)
	if err != nil {
		return nil, err
	}
	inst, err := h.Store.ModifyInstance(ctx, m.Ref, store.InstanceChange{SecurityGroups: m.SecurityGroups, Conntrack: m.Conntrack, IMDSTokenRequired: token})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ModifyInstanceResponse{Instance: inst}), nil
}

// imdsV1 reads an IMDSv1 setting: whether a token is required, nil for
// "" (unchanged, or the default).
func imdsV1(s string) (*bool, error) {
	var required bool
	switch s {
	case "":
		return nil, nil
	case "optional":
	case "required-token":
		required = true
	default:
		return nil, model.Invalidf("IMDSv1 setting %q: use optional or required-token", s)
	}
	return &required, nil
}
