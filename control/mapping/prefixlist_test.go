package mapping_test

import (
	"slices"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/testcloud"
)

// TestPrefixListsReachHosts: a rule naming a prefix list reaches the hosts
// of its VPC with the list's CIDRs; changing the list's entries reaches
// every host whose VPC has such a rule (red's and yellow's), without the
// groups changing; host-c (green) converges too.
func TestPrefixListsReachHosts(t *testing.T) {
	w := newWorld(t)
	ctx, vpc := w.c.Ctx(), w.api.VPC
	url := w.api.URL
	a, b, c := w.c.AddHost(url, "host-a", addr(1)), w.c.AddHost(url, "host-b", addr(2)), w.c.AddHost(url, "host-c", addr(3))
	w.run(t, "red-a", "host-a")
	w.run(t, "yellow-a", "host-b")
	w.run(t, "green-a", "host-c")

	pl, err := vpc.CreatePrefixList(ctx, connect.NewRequest(&pb.CreatePrefixListRequest{Name: "office", MaxEntries: 5,
		Entries: []*pb.PrefixListEntry{{Cidr: "192.168.1.0/24", Description: "hq"}}}))
	if err != nil {
		t.Fatal(err)
	}
	plID := pl.Msg.PrefixList.Id
	authorize := func(group string, egress bool) {
		t.Helper()
		if _, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: group, Rule: &pb.SecurityGroupRuleSpec{
			Egress: egress, Match: &pb.RuleMatch{Protocol: "tcp", Port: "22"}, PrefixList: "office",
		}})); err != nil {
			t.Fatal(err)
		}
	}
	authorize(w.red.DefaultSecurityGroupId, false)
	authorize(w.yellow.DefaultSecurityGroupId, true)
	w.c.Converge(w.api, a, b, c)

	rule := func(h *testcloud.Host, v *pb.Vpc, egress bool) *pb.SecurityGroupRule {
		t.Helper()
		g := group(facts(t, h, v.Vni), v.DefaultSecurityGroupId)
		rs := g.GetIngress()
		if egress {
			rs = g.GetEgress()
		}
		i := slices.IndexFunc(rs, func(r *pb.SecurityGroupRule) bool { return r.PrefixListId != "" })
		if i < 0 {
			t.Fatalf("%s: %s's default group has no rule naming a prefix list: %v", h.ID, v.Name, g)
		}
		return rs[i]
	}
	if r := rule(a, w.red, false); r.PrefixListId != plID || !slices.Equal(r.PrefixCidrs, []string{"192.168.1.0/24"}) || r.Cidr != "" {
		t.Fatalf("host-a: red's rule %v", r)
	}
	if r := rule(b, w.yellow, true); !slices.Equal(r.PrefixCidrs, []string{"192.168.1.0/24"}) {
		t.Fatalf("host-b: yellow's rule %v", r)
	}

	if _, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(&pb.ModifyPrefixListRequest{Ref: plID,
		AddEntries: []*pb.PrefixListEntry{{Cidr: "10.9.0.0/16"}}, RemoveCidrs: []string{"192.168.1.0/24"}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b, c)
	if r := rule(a, w.red, false); !slices.Equal(r.PrefixCidrs, []string{"10.9.0.0/16"}) {
		t.Fatalf("host-a after modify: red's rule %v", r)
	}
	if r := rule(b, w.yellow, true); !slices.Equal(r.PrefixCidrs, []string{"10.9.0.0/16"}) {
		t.Fatalf("host-b after modify: yellow's rule %v", r)
	}

	// Emptied, the rule allows nothing.
	if _, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(&pb.ModifyPrefixListRequest{Ref: plID, RemoveCidrs: []string{"10.9.0.0/16"}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b, c)
	if r := rule(a, w.red, false); len(r.PrefixCidrs) != 0 {
		t.Fatalf("host-a with the list empty: red's rule %v", r)
	}
}
