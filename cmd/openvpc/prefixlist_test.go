package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

type (
	plEntryJ struct {
		CIDR        string `json:"cidr"`
		Description string `json:"description"`
	}
	prefixListJ struct {
		ID         string     `json:"id"`
		Name       string     `json:"name"`
		MaxEntries uint32     `json:"maxEntries"`
		Version    uint64     `json:"version"`
		Entries    []plEntryJ `json:"entries"`
	}
	plRuleJ struct {
		RuleID       string `json:"ruleId"`
		PrefixListID string `json:"prefixListId"`
	}
	sgPLJ struct {
		ID      string    `json:"id"`
		Ingress []plRuleJ `json:"ingress"`
		Egress  []plRuleJ `json:"egress"`
	}
)

func cidrs(pl prefixListJ) []string {
	var out []string
	for _, e := range pl.Entries {
		out = append(out, e.CIDR)
	}
	return out
}

// TestPrefixListsCLI drives prefix lists through the binary: create with
// entries, get, list, modify, every refusal with its code, rules naming a
// list (authorize, the quota, revoke by match), and delete refused while a
// rule names the list.
func TestPrefixListsCLI(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")

	pl := okJSON[prefixListJ](t, s, "prefix-list", "create", "--name", "office", "--max-entries", "4",
		"--entry", "192.168.1.0/24,hq", "--entry", "192.168.2.0/24")
	if !strings.HasPrefix(pl.ID, "pl-") || pl.MaxEntries != 4 || pl.Version != 1 || !slices.Equal(cidrs(pl), []string{"192.168.1.0/24", "192.168.2.0/24"}) || pl.Entries[0].Description != "hq" {
		t.Fatalf("created %+v", pl)
	}
	if got := okJSON[prefixListJ](t, s, "prefix-list", "get", "office"); got.ID != pl.ID {
		t.Fatalf("get office = %+v", got)
	}
	table := s.ok(t, "prefix-list", "list")
	for _, w := range []string{"MAX-ENTRIES", pl.ID, "office", "192.168.1.0/24(hq)"} {
		if !strings.Contains(table, w) {
			t.Errorf("prefix-list list lacks %q:\n%s", w, table)
		}
	}
	pl = okJSON[prefixListJ](t, s, "prefix-list", "modify", pl.ID, "--add-entry", "10.9.0.0/16,lab", "--remove-entry", "192.168.2.0/24")
	if !slices.Equal(cidrs(pl), []string{"192.168.1.0/24", "10.9.0.0/16"}) || pl.Version != 2 || pl.Entries[1].Description != "lab" {
		t.Fatalf("modified: %+v", pl)
	}

	for _, c := range []struct {
		code  string
		wants []string
		args  []string
	}{
		{"", []string{`"name"`}, []string{"create", "--max-entries", "3"}},
		{"", []string{`"max-entries"`}, []string{"create", "--name", "x"}},
		{"invalid_argument", []string{"max entries 0 is outside 1–1000"}, []string{"create", "--name", "x", "--max-entries", "0"}},
		{"invalid_argument", []string{"max entries 1001 is outside 1–1000"}, []string{"create", "--name", "x", "--max-entries", "1001"}},
		{"invalid_argument", []string{"not IPv4"}, []string{"create", "--name", "x", "--max-entries", "2", "--entry", "2001:db8::/32"}},
		{"invalid_argument", []string{"host bits", "10.0.0.0/8"}, []string{"create", "--name", "x", "--max-entries", "2", "--entry", "10.1.2.3/8"}},
		{"invalid_argument", []string{"given twice"}, []string{"create", "--name", "x", "--max-entries", "2", "--entry", "10.0.0.0/8", "--entry", "10.0.0.0/8"}},
		{"invalid_argument", []string{"would hold 2 entries; its max entries is 1"}, []string{"create", "--name", "x", "--max-entries", "1", "--entry", "10.0.0.0/8", "--entry", "10.1.0.0/16"}},
		{"invalid_argument", []string{"looks like a prefix list id"}, []string{"create", "--name", "pl-0123456789abcdef", "--max-entries", "1"}},
		{"already_exists", []string{`"office" already exists`}, []string{"create", "--name", "office", "--max-entries", "1"}},
		{"already_exists", []string{"already has entry 10.9.0.0/16"}, []string{"modify", "office", "--add-entry", "10.9.0.0/16"}},
		{"not_found", []string{"no entry 10.8.0.0/16"}, []string{"modify", "office", "--remove-entry", "10.8.0.0/16"}},
		{"invalid_argument", []string{"both added and removed"}, []string{"modify", "office", "--add-entry", "10.9.0.0/16", "--remove-entry", "10.9.0.0/16"}},
		{"invalid_argument", []string{"would hold 5 entries; its max entries is 4"}, []string{"modify", "office", "--add-entry", "10.1.0.0/16", "--add-entry", "10.2.0.0/16", "--add-entry", "10.3.0.0/16"}},
		{"invalid_argument", []string{"nothing to change"}, []string{"modify", "office"}},
		{"not_found", []string{`prefix list "ghost" not found`}, []string{"get", "ghost"}},
		{"not_found", []string{`prefix list "ghost" not found`}, []string{"modify", "ghost", "--add-entry", "10.1.0.0/16"}},
		{"not_found", []string{`prefix list "ghost" not found`}, []string{"delete", "ghost"}},
	} {
		s.fail(t, c.code, c.wants, append([]string{"prefix-list"}, c.args...)...)
	}
	if got := okJSON[prefixListJ](t, s, "prefix-list", "get", "office"); got.Version != 2 || len(got.Entries) != 2 {
		t.Fatalf("after the refusals: %+v; want version 2 and its 2 entries, unchanged", got)
	}

	// A rule names the list: authorized, counted as 4 toward the quota,
	// holding the list, revoked by what it matches.
	s.ok(t, "sg", "create", "--vpc", "red", "--name", "web")
	g := okJSON[sgPLJ](t, s, "sg", "authorize", "web", "--proto", "tcp", "--port", "22", "--prefix-list", "office")
	if len(g.Ingress) != 1 || g.Ingress[0].PrefixListID != pl.ID {
		t.Fatalf("web's ingress %+v; want a rule naming %s", g.Ingress, pl.ID)
	}
	s.fail(t, "already_exists", []string{"already has this ingress rule"}, "sg", "authorize", "web", "--proto", "tcp", "--port", "22", "--prefix-list", pl.ID)
	s.fail(t, "invalid_argument", []string{"exactly one"}, "sg", "authorize", "web", "--proto", "tcp", "--port", "22", "--prefix-list", "office", "--cidr", "10.0.0.0/8")
	egress := okJSON[sgPLJ](t, s, "sg", "authorize", "red/default", "--egress", "--proto", "tcp", "--port", "443", "--prefix-list", "office")
	for i := range 56 {
		s.ok(t, "sg", "authorize", "web", "--proto", "tcp", "--port", fmt.Sprint(1000+i), "--cidr", "10.0.0.0/8")
	}
	s.fail(t, "failed_precondition", []string{"already has 60 ingress rules", "counts as its max entries"}, "sg", "authorize", "web", "--proto", "tcp", "--port", "2000", "--cidr", "10.0.0.0/8")
	s.ok(t, "prefix-list", "create", "--name", "wide", "--max-entries", "100")
	s.fail(t, "failed_precondition", []string{"would count as", "counts as its max entries (100)"}, "sg", "authorize", "red/default", "--proto", "tcp", "--port", "22", "--prefix-list", "wide")

	s.fail(t, "failed_precondition", []string{"named by rules of security groups", g.ID, egress.ID}, "prefix-list", "delete", "office")
	s.ok(t, "sg", "revoke", "web", "--proto", "tcp", "--port", "22", "--prefix-list", "office")
	s.fail(t, "not_found", []string{"no ingress rule tcp:22 from " + pl.ID}, "sg", "revoke", "web", "--proto", "tcp", "--port", "22", "--prefix-list", "office")
	s.fail(t, "failed_precondition", []string{egress.ID}, "prefix-list", "delete", pl.ID)
	s.ok(t, "sg", "revoke", "red/default", "--egress", "--proto", "tcp", "--port", "443", "--prefix-list", pl.ID)
	s.ok(t, "prefix-list", "delete", "office")
	s.ok(t, "prefix-list", "delete", "wide")
	if out := s.ok(t, "prefix-list", "list"); strings.Contains(out, "pl-") {
		t.Fatalf("prefix lists left after delete:\n%s", out)
	}
}
