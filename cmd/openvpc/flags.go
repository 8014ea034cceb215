package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// prefixList is a repeatable (or comma-separated) CIDR flag. The first
// value given replaces the default; further ones add to it.
type prefixList struct {
	p   *[]netip.Prefix
	set *bool
}

func newPrefixList(p *[]netip.Prefix) prefixList { return prefixList{p: p, set: new(bool)} }

func (l prefixList) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, p := range *l.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l prefixList) Set(v string) error {
	if !*l.set {
		*l.p, *l.set = nil, true
	}
	for _, part := range strings.Split(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil || !p.Addr().Is4() || p != p.Masked() {
			return fmt.Errorf("%q is not an IPv4 CIDR block such as 198.51.100.0/24", part)
		}
		*l.p = append(*l.p, p)
	}
	return nil
}

func (l prefixList) Type() string { return "cidr" }
