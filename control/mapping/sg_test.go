package mapping_test

import (
	"slices"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/testcloud"
)

func facts(t *testing.T, h *testcloud.Host, vni uint32) *pb.VpcFacts {
	t.Helper()
	f, ok := h.Mirror.State().VPCs[vni]
	if !ok {
		t.Fatalf("%s does not hold VPC %d", h.ID, vni)
	}
	return f
}

func group(f *pb.VpcFacts, id string) *pb.SecurityGroupFacts {
	for _, g := range f.SecurityGroups {
		if g.Id == id {
			return g
		}
	}
	return nil
}

func acl(f *pb.VpcFacts, id string) *pb.NetworkAclFacts {
	for _, a := range f.NetworkAcls {
		if a.Id == id {
			return a
		}
	}
	return nil
}

func mapping(t *testing.T, h *testcloud.Host, vni uint32, ip string) *pb.MappingRecord {
	t.Helper()
	r, ok := h.Mirror.Lookup(vni, ip)
	if !ok {
		t.Fatalf("%s has no mapping of %d/%s", h.ID, vni, ip)
	}
	return r
}

// TestSecurityGroupsReachHosts: every host in scope holds the VPC's
// groups with their rules, its ACLs with their entries, the defaults and
// each subnet's ACL, and each ENI's groups in its mapping — also a peered
// VPC's, whose group rules can then name; rule changes, ACL changes and an
// instance's group change reach them as they happen.
func TestSecurityGroupsReachHosts(t *testing.T) {
	w := newWorld(t)
	ctx, vpc, inst := w.c.Ctx(), w.api.VPC, w.api.Inst
	url := w.api.URL
	a, b := w.c.AddHost(url, "host-a", addr(1)), w.c.AddHost(url, "host-b", addr(2))
	red := w.run(t, "red-a", "host-a")
	yellow := w.run(t, "yellow-a", "host-b")
	w.c.Converge(w.api, a, b)

	rf := facts(t, a, w.red.Vni)
	if rf.DefaultSecurityGroupId != w.red.DefaultSecurityGroupId || rf.DefaultNetworkAclId != w.red.DefaultNetworkAclId || rf.DefaultSecurityGroupId == "" {
		t.Fatalf("red's defaults on host-a: %q %q, want %q %q", rf.DefaultSecurityGroupId, rf.DefaultNetworkAclId, w.red.DefaultSecurityGroupId, w.red.DefaultNetworkAclId)
	}
	if g := group(rf, w.red.DefaultSecurityGroupId); g == nil || len(g.Ingress) != 1 || g.Ingress[0].GroupId != g.Id || len(g.Egress) != 1 || g.Egress[0].Cidr != "0.0.0.0/0" {
		t.Fatalf("red's default group on host-a: %v", g)
	}
	if d := acl(rf, w.red.DefaultNetworkAclId); d == nil || len(d.Inbound) != 1 || d.Inbound[0].RuleNumber != 100 || !d.Inbound[0].Allow {
		t.Fatalf("red's default ACL on host-a: %v", d)
	}
	if len(rf.Subnets) != 1 || rf.Subnets[0].NetworkAclId != w.red.DefaultNetworkAclId {
		t.Fatalf("red's subnets on host-a: %v", rf.Subnets)
	}
	if m := mapping(t, a, w.red.Vni, red.PrivateIp); !slices.Equal(m.SecurityGroupIds, []string{w.red.DefaultSecurityGroupId}) || m.Conntrack.GetTcpEstablishedSeconds() != 432000 {
		t.Fatalf("red instance's mapping: %v", m)
	}

	// A group with a rule, and the instance moved into it.
	web, err := vpc.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "red", Name: "web"}))
	if err != nil {
		t.Fatal(err)
	}
	webID := web.Msg.SecurityGroup.Id
	auth, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "web", Rule: &pb.SecurityGroupRuleSpec{
		Match: &pb.RuleMatch{Protocol: "tcp", Port: "80"}, Cidr: "0.0.0.0/0",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inst.ModifyInstance(ctx, connect.NewRequest(&pb.ModifyInstanceRequest{Ref: red.Id, SecurityGroups: []string{"web", w.red.DefaultSecurityGroupId}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b)
	g := group(facts(t, a, w.red.Vni), webID)
	if g == nil || len(g.Ingress) != 1 || g.Ingress[0].RuleId != auth.Msg.Rule.RuleId || g.Ingress[0].Protocol != 6 || g.Ingress[0].FromPort != 80 {
		t.Fatalf("web on host-a: %v", g)
	}
	if m := mapping(t, a, w.red.Vni, red.PrivateIp); !slices.Equal(m.SecurityGroupIds, []string{webID, w.red.DefaultSecurityGroupId}) {
		t.Fatalf("after modify, host-a maps red's instance with groups %v", m.SecurityGroupIds)
	}

	// Peered: yellow's host holds red's groups' members, with their groups,
	// and a yellow rule may name red's group.
	w.peer(t, "red", "yellow")
	db, err := vpc.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "yellow", Name: "db"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "db", Rule: &pb.SecurityGroupRuleSpec{
		Match: &pb.RuleMatch{Protocol: "tcp", Port: "5432"}, Group: "web",
	}})); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.ModifyInstance(ctx, connect.NewRequest(&pb.ModifyInstanceRequest{Ref: yellow.Id, SecurityGroups: []string{"db"}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b)
	if g := group(facts(t, b, w.yellow.Vni), db.Msg.SecurityGroup.Id); g == nil || len(g.Ingress) != 1 || g.Ingress[0].GroupId != webID {
		t.Fatalf("db on host-b: %v", g)
	}
	if m := mapping(t, b, w.red.Vni, red.PrivateIp); !slices.Contains(m.SecurityGroupIds, webID) {
		t.Fatalf("host-b maps red's instance with groups %v, want web among them", m.SecurityGroupIds)
	}
	if m := mapping(t, a, w.yellow.Vni, yellow.PrivateIp); !slices.Equal(m.SecurityGroupIds, []string{db.Msg.SecurityGroup.Id}) {
		t.Fatalf("host-a maps yellow's instance with groups %v", m.SecurityGroupIds)
	}

	// A custom ACL with an entry, associated with red's subnet; then a
	// revoke.
	strict, err := vpc.CreateNetworkAcl(ctx, connect.NewRequest(&pb.CreateNetworkAclRequest{Vpc: "red", Name: "strict"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.CreateNetworkAclEntry(ctx, connect.NewRequest(&pb.CreateNetworkAclEntryRequest{Ref: "strict", RuleNumber: 10, Allow: true, Match: &pb.RuleMatch{Protocol: "tcp", Port: "1024-65535"}, Cidr: "0.0.0.0/0"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.AssociateNetworkAcl(ctx, connect.NewRequest(&pb.AssociateNetworkAclRequest{Ref: "strict", Subnet: "red-a"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.RevokeSecurityGroupRule(ctx, connect.NewRequest(&pb.RevokeSecurityGroupRuleRequest{Ref: "web", RuleId: auth.Msg.Rule.RuleId})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b)
	for _, h := range []*testcloud.Host{a, b} {
		f := facts(t, h, w.red.Vni)
		s := acl(f, strict.Msg.NetworkAcl.Id)
		if s == nil || len(s.Inbound) != 1 || s.Inbound[0].FromPort != 1024 || s.Inbound[0].ToPort != 65535 || len(s.Outbound) != 0 {
			t.Fatalf("strict on %s: %v", h.ID, s)
		}
		if f.Subnets[0].NetworkAclId != strict.Msg.NetworkAcl.Id {
			t.Fatalf("red-a's ACL on %s: %s", h.ID, f.Subnets[0].NetworkAclId)
		}
		if g := group(f, webID); g == nil || len(g.Ingress) != 0 {
			t.Fatalf("web on %s after the revoke: %v", h.ID, g)
		}
	}
	// An ENI's own conntrack timeouts, over the defaults, reach every host.
	if _, err := inst.ModifyInstance(ctx, connect.NewRequest(&pb.ModifyInstanceRequest{Ref: red.Id, Conntrack: &pb.ConntrackSettings{TcpEstablishedSeconds: 3600}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b)
	want := &pb.ConntrackTimeouts{TcpEstablishedSeconds: 3600, UdpSeconds: 30, UdpStreamSeconds: 180, OtherSeconds: 600}
	for _, h := range []*testcloud.Host{a, b} {
		if m := mapping(t, h, w.red.Vni, red.PrivateIp); !proto.Equal(m.Conntrack, want) || len(m.SecurityGroupIds) != 2 {
			t.Fatalf("%s maps red's instance with conntrack %v groups %v; want %v and its two groups", h.ID, m.Conntrack, m.SecurityGroupIds, want)
		}
	}
	// Every live mapping names at least one group.
	for _, h := range []*testcloud.Host{a, b} {
		for k, m := range h.Mirror.State().Mappings {
			if len(m.SecurityGroupIds) == 0 {
				t.Errorf("%s: mapping %v has no security groups", h.ID, k)
			}
		}
	}
}
