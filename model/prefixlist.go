package model

import (
	"strings"
	"unicode"
)

// Limits of customer-managed prefix lists, as AWS's.
const (
	MaxPrefixListEntries     = 1000
	MaxPrefixListDescription = 255
)

// PrefixListEntry is one CIDR of a prefix list, canonical once checked.
type PrefixListEntry struct {
	CIDR, Description string
}

// CheckMaxEntries validates a prefix list's max-entries.
func CheckMaxEntries(n uint32) error {
	if n < 1 || n > MaxPrefixListEntries {
		return Invalidf("max entries %d is outside 1–%d; give --max-entries, the most CIDRs the list may ever hold (a rule naming it counts as that many rules)", n, MaxPrefixListEntries)
	}
	return nil
}

// EditPrefixList returns have (checked entries of list, of max entries)
// with the CIDRs of remove taken out and add appended, or what is wrong
// with the change: a CIDR that is not a canonical IPv4 prefix, an entry
// given twice or already there, a removed CIDR that is not there, a CIDR
// both added and removed, or more than max entries in the end. have is
// not modified. list names the list in messages.
func EditPrefixList(list string, max uint32, have, add []PrefixListEntry, remove []string) ([]PrefixListEntry, error) {
	gone := map[string]bool{}
	for _, s := range remove {
		p, err := ParseCIDR("prefix list entry", s, 0, 32)
		if err != nil {
			return nil, err
		}
		c := p.String()
		if gone[c] {
			return nil, Invalidf("entry %s is removed twice; name it once", c)
		}
		gone[c] = true
	}
	out := make([]PrefixListEntry, 0, len(have)+len(add))
	present := map[string]bool{}
	for _, e := range have {
		present[e.CIDR] = true
		if !gone[e.CIDR] {
			out = append(out, e)
		}
	}
	for c := range gone {
		if !present[c] {
			return nil, NotFoundf("%s has no entry %s to remove; openvpc prefix-list get %s lists its entries", list, c, list)
		}
	}
	added := map[string]bool{}
	for _, e := range add {
		p, err := ParseCIDR("prefix list entry", e.CIDR, 0, 32)
		if err != nil {
			return nil, err
		}
		c := p.String()
		if err := checkEntryDescription(c, e.Description); err != nil {
			return nil, err
		}
		switch {
		case gone[c]:
			return nil, Invalidf("entry %s is both added and removed; do one or the other", c)
		case added[c]:
			return nil, Invalidf("entry %s is given twice; entries of a prefix list are unique", c)
		case present[c]:
			return nil, Existsf("%s already has entry %s", list, c)
		}
		added[c] = true
		out = append(out, PrefixListEntry{CIDR: c, Description: e.Description})
	}
	if len(out) > int(max) {
		return nil, Invalidf("%s would hold %d entries; its max entries is %d (remove some, or create a larger list)", list, len(out), max)
	}
	return out, nil
}

func checkEntryDescription(cidr, d string) error {
	if len(d) > MaxPrefixListDescription {
		return Invalidf("the description of entry %s is %d characters long; the limit is %d", cidr, len(d), MaxPrefixListDescription)
	}
	if strings.IndexFunc(d, unicode.IsControl) >= 0 {
		return Invalidf("the description of entry %s has control characters", cidr)
	}
	return nil
}
