package testcloud_test

import (
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/testcloud"
)

// runIn starts an instance with these security groups, once running.
func (s *scene) runIn(t *testing.T, subnet string, host *agent.Agent, vpc *pb.Vpc, groups ...string) (*pb.Instance, *nic.Netstack) {
	t.Helper()
	ctx := s.c.Ctx()
	r, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: subnet, Host: host.HostID, SecurityGroups: groups}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	ns, err := testcloud.Instance(host, vpc.Vni, r.Msg.Instance)
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Instance, ns
}

// TestFirewallChangesTakeEffect drives groups and ACLs through the API
// and watches real connections follow, with nothing restarted: a rule
// naming a group lets its members in; an instance moved out of the group
// loses new connections and moved back regains them; a custom ACL denies
// until entries are added, and without an ephemeral-port entry outbound
// the replies are lost, as on AWS; a revoked rule refuses new connections.
func TestFirewallChangesTakeEffect(t *testing.T) {
	s := newScene(t)
	ctx, vpc, inst := s.c.Ctx(), s.api.VPC, s.api.Inst
	for _, name := range []string{"web", "elsewhere"} {
		if _, err := vpc.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "red", Name: name})); err != nil {
			t.Fatal(err)
		}
	}
	web, webNS := s.runIn(t, "red-b", s.b, s.red, "web")
	client, clientNS := s.run(t, "red-a", s.a, s.red) // the default group
	serveHTTP(t, webNS, "web")
	wantOK := func(why string) {
		t.Helper()
		waitFor(t, func() bool { _, err := get(clientNS, web.PrivateIp, time.Second); return err == nil })
		mustGet(t, clientNS, web.PrivateIp, "hello from web to "+client.PrivateIp)
		t.Logf("%s: connects", why)
	}
	wantRefused := func(why string, v datapath.Verdict) {
		t.Helper()
		waitFor(t, func() bool { _, err := get(clientNS, web.PrivateIp, 500*time.Millisecond); return err != nil })
		before := s.a.Plane.Counters.Get(v) + s.b.Plane.Counters.Get(v)
		mustFail(t, clientNS, web.PrivateIp)
		if s.a.Plane.Counters.Get(v)+s.b.Plane.Counters.Get(v) == before {
			t.Fatalf("%s: refused, but no host counted %s", why, v)
		}
		t.Logf("%s: refused (%s)", why, v)
	}

	wantRefused("web admits nobody yet", datapath.SGDenied)
	rule, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "web", Rule: &pb.SecurityGroupRuleSpec{
		Match: &pb.RuleMatch{Protocol: "tcp", Port: "80"}, Group: s.red.DefaultSecurityGroupId,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	wantOK("web admits the default group's members")

	modify := func(groups ...string) {
		t.Helper()
		if _, err := inst.ModifyInstance(ctx, connect.NewRequest(&pb.ModifyInstanceRequest{Ref: client.Id, SecurityGroups: groups})); err != nil {
			t.Fatal(err)
		}
	}
	modify("elsewhere")
	wantRefused("the client left the default group", datapath.SGDenied)
	modify(s.red.DefaultSecurityGroupId, "elsewhere")
	wantOK("the client is back in the default group")

	// A custom ACL on web's subnet: deny all, then in but not back out,
	// then the ephemeral ports for the replies.
	acl, err := vpc.CreateNetworkAcl(ctx, connect.NewRequest(&pb.CreateNetworkAclRequest{Vpc: "red", Name: "strict"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.AssociateNetworkAcl(ctx, connect.NewRequest(&pb.AssociateNetworkAclRequest{Ref: acl.Msg.NetworkAcl.Id, Subnet: "red-b"})); err != nil {
		t.Fatal(err)
	}
	wantRefused("a new ACL denies everything", datapath.ACLDenied)
	entry := func(egress bool, port string) {
		t.Helper()
		if _, err := vpc.CreateNetworkAclEntry(ctx, connect.NewRequest(&pb.CreateNetworkAclEntryRequest{
			Ref: "strict", RuleNumber: 100, Egress: egress, Allow: true, Match: &pb.RuleMatch{Protocol: "tcp", Port: port}, Cidr: "10.0.1.0/24",
		})); err != nil {
			t.Fatal(err)
		}
	}
	entry(false, "80")
	// Once web's host holds the entry, the SYN gets in, but the SYN-ACK
	// meets the outbound entries: there are none.
	waitFor(t, func() bool {
		v, ok := s.b.Cache.Tables.Load().VPC(s.red.Vni)
		id, _ := model.ParseID(model.KindNetworkACL, acl.Msg.NetworkAcl.Id)
		return ok && slices.ContainsFunc(v.NetworkACLs, func(a tables.NetworkACL) bool { return a.ID == id && len(a.Inbound) == 1 })
	})
	wantRefused("in on 80 but no way back", datapath.ACLDenied)
	entry(true, "1024-65535")
	wantOK("the ephemeral ports let the replies out")

	if _, err := vpc.RevokeSecurityGroupRule(ctx, connect.NewRequest(&pb.RevokeSecurityGroupRuleRequest{Ref: "web", RuleId: rule.Msg.Rule.RuleId})); err != nil {
		t.Fatal(err)
	}
	wantRefused("the rule was revoked", datapath.SGDenied)
}
