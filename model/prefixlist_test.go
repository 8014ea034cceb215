package model

import (
	"errors"
	"strings"
	"testing"
)

func TestEditPrefixList(t *testing.T) {
	have := []PrefixListEntry{{"10.0.0.0/8", "a"}, {"192.168.1.0/24", ""}}
	got, err := EditPrefixList("pl-x", 3, have, []PrefixListEntry{{" 172.16.0.0/12", "b"}}, []string{"10.0.0.0/8"})
	if err != nil || len(got) != 2 || got[0].CIDR != "192.168.1.0/24" || got[1] != (PrefixListEntry{"172.16.0.0/12", "b"}) {
		t.Fatalf("EditPrefixList = %v, %v", got, err)
	}
	if len(have) != 2 || have[0].CIDR != "10.0.0.0/8" {
		t.Fatalf("have was modified: %v", have)
	}
	for _, tc := range []struct {
		max    uint32
		add    []PrefixListEntry
		remove []string
		kind   error
		says   string
	}{
		{3, []PrefixListEntry{{"10.0.0.1/8", ""}}, nil, ErrInvalid, "host bits"},
		{3, []PrefixListEntry{{"2001:db8::/32", ""}}, nil, ErrInvalid, "not IPv4"},
		{3, []PrefixListEntry{{"nope", ""}}, nil, ErrInvalid, "not a CIDR"},
		{3, []PrefixListEntry{{"10.1.0.0/16", ""}, {"10.1.0.0/16", ""}}, nil, ErrInvalid, "given twice"},
		{3, []PrefixListEntry{{"10.0.0.0/8", ""}}, nil, ErrExists, "pl-x already has entry 10.0.0.0/8"},
		{3, nil, []string{"10.9.0.0/16"}, ErrNotFound, "pl-x has no entry 10.9.0.0/16"},
		{3, nil, []string{"10.0.0.0/8", "10.0.0.0/8"}, ErrInvalid, "removed twice"},
		{3, []PrefixListEntry{{"10.0.0.0/8", ""}}, []string{"10.0.0.0/8"}, ErrInvalid, "both added and removed"},
		{2, []PrefixListEntry{{"10.1.0.0/16", ""}}, nil, ErrInvalid, "pl-x would hold 3 entries; its max entries is 2"},
		{3, []PrefixListEntry{{"10.1.0.0/16", strings.Repeat("x", 256)}}, nil, ErrInvalid, "limit is 255"},
		{3, []PrefixListEntry{{"10.1.0.0/16", "a\nb"}}, nil, ErrInvalid, "control characters"},
	} {
		_, err := EditPrefixList("pl-x", tc.max, have, tc.add, tc.remove)
		if !errors.Is(err, tc.kind) || err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("EditPrefixList(%d, +%v, -%v) = %v; want %v saying %q", tc.max, tc.add, tc.remove, err, tc.kind, tc.says)
		}
	}
	for n, ok := range map[uint32]bool{0: false, 1: true, 1000: true, 1001: false} {
		if err := CheckMaxEntries(n); (err == nil) != ok {
			t.Errorf("CheckMaxEntries(%d) = %v", n, err)
		}
	}
}

// FuzzEditPrefixList checks that an accepted edit is a list of unique
// canonical IPv4 CIDRs within max, holding every added entry.
func FuzzEditPrefixList(f *testing.F) {
	f.Add(uint32(2), "10.0.0.0/8", "x", "192.168.0.0/16")
	f.Add(uint32(1), "10.0.0.1/8", "", "")
	f.Fuzz(func(t *testing.T, max uint32, add, desc, remove string) {
		have := []PrefixListEntry{{"192.168.0.0/16", ""}}
		var rm []string
		if remove != "" {
			rm = []string{remove}
		}
		got, err := EditPrefixList("pl-x", max, have, []PrefixListEntry{{add, desc}}, rm)
		if err != nil {
			return
		}
		if len(got) > int(max) {
			t.Fatalf("%d entries over max %d", len(got), max)
		}
		seen := map[string]bool{}
		for _, e := range got {
			p, err := ParseCIDR("entry", e.CIDR, 0, 32)
			if err != nil || p.String() != e.CIDR || seen[e.CIDR] {
				t.Fatalf("entry %q not canonical or repeated: %v", e.CIDR, got)
			}
			seen[e.CIDR] = true
		}
	})
}
