package mapping_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
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

	// Emptied, the rule allows nothing: hosts do not get it (they refuse a
	// rule without a peer), and get it back with the next entry.
	if _, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(&pb.ModifyPrefixListRequest{Ref: plID, RemoveCidrs: []string{"10.9.0.0/16"}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b, c)
	if g := group(facts(t, a, w.red.Vni), w.red.DefaultSecurityGroupId); slices.ContainsFunc(g.Ingress, func(r *pb.SecurityGroupRule) bool { return r.PrefixListId != "" }) {
		t.Fatalf("host-a holds red's rule naming the empty list: %v", g)
	}
	if _, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(&pb.ModifyPrefixListRequest{Ref: plID, AddEntries: []*pb.PrefixListEntry{{Cidr: "10.7.0.0/16"}}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b, c)
	if r := rule(a, w.red, false); !slices.Equal(r.PrefixCidrs, []string{"10.7.0.0/16"}) {
		t.Fatalf("host-a with the list refilled: red's rule %v", r)
	}
}

// TestPrefixListChurn: concurrent list modifications, rules naming lists
// authorized and revoked, while hosts disconnect and reconnect; at the end
// every host's cache equals what the store says, the lists' CIDRs in the
// rules included.
func TestPrefixListChurn(t *testing.T) {
	ops := 300
	if testing.Short() {
		ops = 100
	}
	w := newWorld(t)
	ctx, vpc := w.c.Ctx(), w.api.VPC
	var hosts []*testcloud.Host
	for i := range 3 {
		hosts = append(hosts, w.c.AddHost(w.api.URL, fmt.Sprintf("host-%d", i), addr(i+1)))
	}
	for i, sn := range []string{"red-a", "yellow-a", "green-a"} {
		w.run(t, sn, hosts[i].ID)
	}
	for _, name := range []string{"pl0", "pl1"} {
		if _, err := vpc.CreatePrefixList(ctx, connect.NewRequest(&pb.CreatePrefixListRequest{Name: name, MaxEntries: 4})); err != nil {
			t.Fatal(err)
		}
	}
	vpcs := []*pb.Vpc{w.red, w.yellow, w.green}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(5, 6))
	intn := func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(n)
	}
	tolerated := func(err error) error {
		switch connect.CodeOf(err) {
		case connect.CodeAlreadyExists, connect.CodeNotFound, connect.CodeFailedPrecondition, connect.CodeInvalidArgument:
			return nil
		}
		return err
	}
	step := func() error {
		g := vpcs[intn(len(vpcs))].DefaultSecurityGroupId
		pl := fmt.Sprintf("pl%d", intn(2))
		cidr := fmt.Sprintf("10.%d.0.0/16", 100+intn(6))
		switch k := intn(100); {
		case k < 30:
			_, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: g, Rule: &pb.SecurityGroupRuleSpec{
				Egress: intn(2) == 0, Match: &pb.RuleMatch{Protocol: "tcp", Port: fmt.Sprint(intn(4))}, PrefixList: pl,
			}}))
			return tolerated(err)
		case k < 45:
			r, err := vpc.GetSecurityGroup(ctx, connect.NewRequest(&pb.GetSecurityGroupRequest{Ref: g}))
			if err != nil {
				return err
			}
			rules := append(r.Msg.SecurityGroup.Ingress, r.Msg.SecurityGroup.Egress...)
			if len(rules) == 0 {
				return nil
			}
			_, err = vpc.RevokeSecurityGroupRule(ctx, connect.NewRequest(&pb.RevokeSecurityGroupRuleRequest{Ref: g, RuleId: rules[intn(len(rules))].RuleId}))
			return tolerated(err)
		case k < 70:
			_, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(&pb.ModifyPrefixListRequest{Ref: pl, AddEntries: []*pb.PrefixListEntry{{Cidr: cidr}}}))
			return tolerated(err)
		case k < 94:
			_, err := vpc.ModifyPrefixList(ctx, connect.NewRequest(&pb.ModifyPrefixListRequest{Ref: pl, RemoveCidrs: []string{cidr}}))
			return tolerated(err)
		case k < 97:
			hosts[intn(len(hosts))].Disconnect()
		default:
			hosts[intn(len(hosts))].Connect()
		}
		return nil
	}
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for op := i; op < ops; op += workers {
				if err := step(); err != nil {
					errs <- fmt.Errorf("op %d: %w", op, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, h := range hosts {
		h.Connect()
	}
	w.c.Converge(w.api, hosts...)
	expanded := 0
	for _, h := range hosts {
		for _, f := range h.Mirror.State().VPCs {
			for _, g := range f.SecurityGroups {
				for _, r := range slices.Concat(g.Ingress, g.Egress) {
					if r.PrefixListId != "" && len(r.PrefixCidrs) > 0 {
						expanded++
					}
				}
			}
		}
	}
	if expanded == 0 {
		t.Fatal("the churn left no rule naming a non-empty list on any host; it tested nothing")
	}
}
