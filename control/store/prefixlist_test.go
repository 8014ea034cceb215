package store

import (
	"fmt"
	"sync"
	"testing"

	"github.com/openvpc/openvpc/model"
)

// TestPrefixLists: create, modify and delete with AWS's checks; a rule
// naming a list holds it, counts as its max entries toward the quota, is
// revoked by what it matches, and goes with its group or VPC.
func TestPrefixLists(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	s, c := f.s, ctx(t)

	pl, err := s.CreatePrefixList(c, "office", 3, []model.PrefixListEntry{{CIDR: "192.168.1.0/24", Description: "hq"}})
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsID(model.KindPrefixList, pl.Id) || pl.Version != 1 || len(pl.Entries) != 1 || pl.Entries[0].Description != "hq" {
		t.Fatalf("created %v", pl)
	}
	_, err = s.CreatePrefixList(c, "office", 3, nil)
	wantKind(t, err, model.ErrExists, `"office" already exists`)
	_, err = s.CreatePrefixList(c, "big", 1001, nil)
	wantKind(t, err, model.ErrInvalid, "outside 1–1000")
	_, err = s.CreatePrefixList(c, "small", 1, []model.PrefixListEntry{{CIDR: "10.0.0.0/8"}, {CIDR: "10.1.0.0/16"}})
	wantKind(t, err, model.ErrInvalid, "would hold 2 entries; its max entries is 1")

	pl, err = s.ModifyPrefixList(c, "office", []model.PrefixListEntry{{CIDR: "10.9.0.0/16"}, {CIDR: "10.8.0.0/16"}}, []string{"192.168.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if pl.Version != 2 || len(pl.Entries) != 2 || pl.Entries[0].Cidr != "10.9.0.0/16" {
		t.Fatalf("modified %v", pl)
	}
	_, err = s.ModifyPrefixList(c, pl.Id, []model.PrefixListEntry{{CIDR: "10.7.0.0/16"}, {CIDR: "10.6.0.0/16"}}, nil)
	wantKind(t, err, model.ErrInvalid, "would hold 4 entries; its max entries is 3")
	_, err = s.ModifyPrefixList(c, pl.Id, []model.PrefixListEntry{{CIDR: "10.9.0.0/16"}}, nil)
	wantKind(t, err, model.ErrExists, "already has entry 10.9.0.0/16")
	_, err = s.ModifyPrefixList(c, pl.Id, nil, []string{"10.5.0.0/16"})
	wantKind(t, err, model.ErrNotFound, pl.Id+" has no entry 10.5.0.0/16")
	_, err = s.ModifyPrefixList(c, pl.Id, nil, nil)
	wantKind(t, err, model.ErrInvalid, "nothing to change")
	if got, _ := s.GetPrefixList(c, pl.Id); got.Version != 2 {
		t.Fatalf("a refused change wrote: version %d", got.Version)
	}

	// A rule naming the list holds it; the refusal names the group.
	g, err := s.CreateSecurityGroup(c, "red", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(443, 443), PrefixList: "office"})
	if err != nil {
		t.Fatal(err)
	}
	if r.PrefixListId != pl.Id || r.Cidr != "" || len(r.PrefixCidrs) != 0 {
		t.Fatalf("rule %v; want the list's id and no CIDRs (those are pushed, not stored)", r)
	}
	_, _, err = s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(443, 443), PrefixList: pl.Id})
	wantKind(t, err, model.ErrExists, "already has this ingress rule")
	if _, _, err := s.AuthorizeRule(c, f.vpc.DefaultSecurityGroupId, RuleSpec{Egress: true, Match: tcp(22, 22), PrefixList: pl.Id}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.DeletePrefixList(c, "office"), model.ErrPrecondition, "named by rules of security groups", g.Id, f.vpc.DefaultSecurityGroupId)
	_, _, err = s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(80, 80), PrefixList: "nope"})
	wantKind(t, err, model.ErrNotFound, `prefix list "nope" not found`)

	// Quota: the list counts as 3 rules, so 57 more fit, not 58.
	for i := range 57 {
		if _, _, err := s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(int32(1000+i), int32(1000+i)), CIDR: "10.0.0.0/8"}); err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
	}
	_, _, err = s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(2000, 2000), CIDR: "10.0.0.0/8"})
	wantKind(t, err, model.ErrPrecondition, "already has 60 ingress rules")
	big, err := s.CreatePrefixList(c, "big", 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := s.CreateSecurityGroup(c, "red", "g2", "")
	_, _, err = s.AuthorizeRule(c, g2.Id, RuleSpec{Match: tcp(80, 80), PrefixList: big.Id})
	wantKind(t, err, model.ErrPrecondition, "would count as 100 rules", "counts as its max entries (100)")

	// Revoked by what it matches, the list is free once no rule names it.
	if _, err := s.RevokeRule(c, g.Id, "", RuleSpec{Match: tcp(443, 443), PrefixList: "office"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.RevokeRule(c, g.Id, "", RuleSpec{Match: tcp(443, 443), PrefixList: "office"})
	wantKind(t, err, model.ErrNotFound, "no ingress rule tcp:443 from "+pl.Id)
	wantKind(t, s.DeletePrefixList(c, pl.Id), model.ErrPrecondition, f.vpc.DefaultSecurityGroupId)

	// Beside 57 CIDR rules, the list's 3 fit exactly. Deleting the groups,
	// and the default group with its VPC, takes their ref/ keys along.
	if _, _, err := s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(443, 443), PrefixList: "office"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AuthorizeRule(c, g2.Id, RuleSpec{Match: tcp(443, 443), PrefixList: "office"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{g.Id, g2.Id} {
		if err := s.DeleteSecurityGroup(c, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSubnet(c, f.subnet.Id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVPC(c, "red"); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"office", "big"} {
		if err := s.DeletePrefixList(c, ref); err != nil {
			t.Fatal(err)
		}
	}
	if all, err := s.ListPrefixLists(c); err != nil || len(all) != 0 {
		t.Fatalf("ListPrefixLists = %v, %v", all, err)
	}
	_, err = s.GetPrefixList(c, "office")
	wantKind(t, err, model.ErrNotFound, `prefix list "office" not found`)
}

// TestPrefixListRaces: a rule naming a list and the list's delete, run
// together, never leave a rule naming a list that is gone; concurrent
// modifications all land, each one version.
func TestPrefixListRaces(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	s, c := f.s, ctx(t)
	g, err := s.CreateSecurityGroup(c, "red", "busy", "")
	if err != nil {
		t.Fatal(err)
	}
	deletes := 0
	for round := range 8 {
		pl, err := s.CreatePrefixList(c, fmt.Sprintf("doomed-%d", round), 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ruleErr, delErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, ruleErr = s.AuthorizeRule(c, g.Id, RuleSpec{Match: tcp(int32(round), int32(round)), PrefixList: pl.Id})
		}()
		go func() { defer wg.Done(); delErr = s.DeletePrefixList(c, pl.Id) }()
		wg.Wait()
		_, getErr := s.GetPrefixList(c, pl.Id)
		switch {
		case delErr == nil:
			deletes++
			wantKind(t, ruleErr, model.ErrNotFound, pl.Id)
			wantKind(t, getErr, model.ErrNotFound)
		case ruleErr == nil:
			wantKind(t, delErr, model.ErrPrecondition, g.Id)
			if getErr != nil {
				t.Fatalf("round %d: the rule landed but the list is gone: %v", round, getErr)
			}
		default:
			t.Fatalf("round %d: both failed: %v; %v", round, ruleErr, delErr)
		}
	}
	t.Logf("%d of 8 deletes won", deletes)

	pl, err := s.CreatePrefixList(c, "shared", 20, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.ModifyPrefixList(c, pl.Id, []model.PrefixListEntry{{CIDR: fmt.Sprintf("10.%d.0.0/16", i)}}, nil)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.GetPrefixList(c, pl.Id); len(got.Entries) != n || got.Version != n+1 {
		t.Fatalf("%d concurrent modifications left %d entries, version %d", n, len(got.Entries), got.Version)
	}
}
