package testcloud_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestPrefixListRuleFollowsEntries: a rule naming a prefix list that holds
// the client's address admits it; removing that entry from the list
// refuses new connections, adding it back admits them again — the group
// untouched, nothing restarted. The same for an egress rule naming a list
// of the server's address.
func TestPrefixListRuleFollowsEntries(t *testing.T) {
	s := newScene(t)
	ctx, vpc := s.c.Ctx(), s.api.VPC
	if _, err := vpc.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "red", Name: "web"})); err != nil {
		t.Fatal(err)
	}
	web, webNS := s.runIn(t, "red-b", s.b, s.red, "web")
	client, clientNS := s.run(t, "red-a", s.a, s.red)
	serveHTTP(t, webNS, "web")
	clientCIDR := client.PrivateIp + "/32"

	pl, err := vpc.CreatePrefixList(ctx, connect.NewRequest(&pb.CreatePrefixListRequest{Name: "clients", MaxEntries: 5,
		Entries: []*pb.PrefixListEntry{{Cidr: "192.0.2.0/24", Description: "elsewhere"}, {Cidr: clientCIDR, Description: "the client"}}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "web", Rule: &pb.SecurityGroupRuleSpec{
		Match: &pb.RuleMatch{Protocol: "tcp", Port: "80"}, PrefixList: "clients",
	}})); err != nil {
		t.Fatal(err)
	}
	wantOK := func(why string) {
		t.Helper()
		waitFor(t, func() bool { _, err := get(clientNS, web.PrivateIp, time.Second); return err == nil })
		mustGet(t, clientNS, web.PrivateIp, "hello from web to "+client.PrivateIp)
		t.Logf("%s: connects", why)
	}
	wantRefused := func(why string) {
		t.Helper()
		waitFor(t, func() bool { _, err := get(clientNS, web.PrivateIp, 500*time.Millisecond); return err != nil })
		denied := func() uint64 {
			return s.a.Plane.Counters.Get(datapath.SGDenied) + s.b.Plane.Counters.Get(datapath.SGDenied)
		}
		before := denied()
		mustFail(t, clientNS, web.PrivateIp)
		if denied() == before {
			t.Fatalf("%s: refused, but no host counted %s", why, datapath.SGDenied)
		}
		t.Logf("%s: refused (%s)", why, datapath.SGDenied)
	}
	modify := func(req *pb.ModifyPrefixListRequest) {
		t.Helper()
		if req.Ref == "" {
			req.Ref = pl.Msg.PrefixList.Id
		}
		if _, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
	}

	wantOK("the list holds the client's address")
	modify(&pb.ModifyPrefixListRequest{RemoveCidrs: []string{clientCIDR}})
	wantRefused("the client's entry was removed from the list")
	modify(&pb.ModifyPrefixListRequest{AddEntries: []*pb.PrefixListEntry{{Cidr: clientCIDR}}})
	wantOK("the client's entry is back")

	// Egress: the client moved to a group whose only egress rule names a
	// list holding web's address.
	if _, err := vpc.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "red", Name: "out"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.RevokeSecurityGroupRule(ctx, connect.NewRequest(&pb.RevokeSecurityGroupRuleRequest{Ref: "out", Rule: &pb.SecurityGroupRuleSpec{
		Egress: true, Match: &pb.RuleMatch{Protocol: "all"}, Cidr: "0.0.0.0/0",
	}})); err != nil {
		t.Fatal(err)
	}
	webCIDR := web.PrivateIp + "/32"
	if _, err := vpc.CreatePrefixList(ctx, connect.NewRequest(&pb.CreatePrefixListRequest{Name: "servers", MaxEntries: 2,
		Entries: []*pb.PrefixListEntry{{Cidr: webCIDR}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "out", Rule: &pb.SecurityGroupRuleSpec{
		Egress: true, Match: &pb.RuleMatch{Protocol: "tcp", Port: "80"}, PrefixList: "servers",
	}})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.Inst.ModifyInstance(ctx, connect.NewRequest(&pb.ModifyInstanceRequest{Ref: client.Id, SecurityGroups: []string{"out"}})); err != nil {
		t.Fatal(err)
	}
	wantOK("the client's egress list holds web's address")
	modify(&pb.ModifyPrefixListRequest{Ref: "servers", RemoveCidrs: []string{webCIDR}})
	wantRefused("web's entry was removed from the client's egress list")
	modify(&pb.ModifyPrefixListRequest{Ref: "servers", AddEntries: []*pb.PrefixListEntry{{Cidr: webCIDR}}})
	wantOK("web's entry is back")
}
