package tables

import (
	"cmp"
	"net/netip"
	"slices"
)

// ProtoAll in a rule or entry matches every IP protocol.
const ProtoAll = -1

// Protocols rules name ports for; others match on the protocol alone.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// SecurityGroup is a VPC's security group as hosts enforce it: allow rules
// only, per direction.
type SecurityGroup struct {
	ID      uint64 // sg-…
	Ingress []SGRule
	Egress  []SGRule
}

// SGRule allows one protocol and port range to or from a peer: prefixes
// (a CIDR, or the CIDRs of a prefix list) or the members of a group.
type SGRule struct {
	ID    uint64 // sgr-…
	Proto int16  // ProtoAll, or an IP protocol number
	// From and To bound the port range (tcp, udp), or are the ICMP type and
	// code (-1: any).
	From, To int32
	Prefixes []netip.Prefix
	Group    uint64 // sg-… whose members' private addresses match; 0: none
}

// NetworkACL is a VPC's network ACL: numbered entries per direction, lowest
// first, first match wins, then an implicit deny.
type NetworkACL struct {
	ID       uint64 // acl-…
	Inbound  []ACLEntry
	Outbound []ACLEntry
}

// ACLEntry is one numbered rule of a network ACL.
type ACLEntry struct {
	Number   int32 // 1–32766
	Proto    int16
	From, To int32
	Prefix   netip.Prefix
	Allow    bool
}

// Flow is what the firewall matches a packet on: its protocol and ports
// (for ICMP, its type and code).
type Flow struct {
	Proto            uint8
	SrcPort, DstPort uint16 // tcp, udp
	Type, Code       uint8  // icmp
}

// port is what a rule's range is matched against for a flow toward the
// rule's side: the destination port, or the ICMP type and code.
func (r *SGRule) matches(f *Flow, peer uint32, groups []uint64) bool {
	return protoMatch(r.Proto, r.From, r.To, f) && r.peerMatch(peer, groups)
}

func (r *SGRule) peerMatch(peer uint32, groups []uint64) bool {
	if r.Group != 0 {
		return slices.Contains(groups, r.Group)
	}
	for _, p := range r.Prefixes {
		if toPrefix4(p).contains(peer) {
			return true
		}
	}
	return false
}

// protoMatch matches a rule's protocol and range against a flow. For TCP
// and UDP the range bounds the destination port (ingress: the ENI's own
// port; egress: the remote one).
func protoMatch(proto int16, from, to int32, f *Flow) bool {
	switch {
	case proto == ProtoAll:
		return true
	case uint8(proto) != f.Proto:
		return false
	}
	switch f.Proto {
	case protoTCP, protoUDP:
		return int32(f.DstPort) >= from && int32(f.DstPort) <= to
	case protoICMP:
		return (from < 0 || int32(f.Type) == from) && (to < 0 || int32(f.Code) == to)
	}
	return true
}

// AllowsAll reports whether r allows every packet of proto from and to
// anywhere: all ports, 0.0.0.0/0.
func (r *SGRule) allowsAll(proto uint8) bool {
	if r.Proto != ProtoAll && (uint8(r.Proto) != proto || (proto == protoTCP || proto == protoUDP) && (r.From > 0 || r.To < 65535) ||
		proto == protoICMP && (r.From >= 0 || r.To >= 0)) {
		return false
	}
	for _, p := range r.Prefixes {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// Allow finds a rule of the groups in direction (ingress: rules for the
// packet's source; egress: for its destination) that allows flow f with
// peer address peer, a member of peerGroups. It returns the group and rule
// that allowed it, or ok false.
func (v *VPC) Allow(groups []uint64, ingress bool, f *Flow, peer netip.Addr, peerGroups []uint64) (group, rule uint64, ok bool) {
	p := ip4(peer)
	for _, id := range groups {
		g := v.group(id)
		if g == nil {
			continue
		}
		rules := g.Egress
		if ingress {
			rules = g.Ingress
		}
		for i := range rules {
			if rules[i].matches(f, p, peerGroups) {
				return g.ID, rules[i].ID, true
			}
		}
	}
	return 0, 0, false
}

// Untracked reports whether the groups allow every packet of proto in both
// directions, to and from anywhere: then, as on AWS, its flows are not
// tracked and every packet is checked against the rules.
func (v *VPC) Untracked(groups []uint64, proto uint8) bool {
	in, out := false, false
	for _, id := range groups {
		g := v.group(id)
		if g == nil {
			continue
		}
		for i := range g.Ingress {
			in = in || g.Ingress[i].allowsAll(proto)
		}
		for i := range g.Egress {
			out = out || g.Egress[i].allowsAll(proto)
		}
	}
	return in && out
}

// Filtered reports whether the VPC's instances are behind security groups:
// a VPC whose facts name no groups (a Mapping Service before groups) is not.
func (v *VPC) Filtered() bool { return len(v.SecurityGroups) > 0 }

// GroupsOf returns the groups an ENI is in: its own, or the VPC's default
// group when its mapping names none.
func (v *VPC) GroupsOf(m *Mapping) []uint64 {
	if len(m.Groups) > 0 || v.DefaultGroup == 0 {
		return m.Groups
	}
	return v.defaultGroups
}

func (v *VPC) group(id uint64) *SecurityGroup {
	for i := range v.SecurityGroups {
		if v.SecurityGroups[i].ID == id {
			return &v.SecurityGroups[i]
		}
	}
	return nil
}

// Firewalled reports whether the VPC has security groups or network ACLs
// at all: when not, the data path skips both steps.
func (v *VPC) Firewalled() bool { return len(v.SecurityGroups) > 0 || len(v.NetworkACLs) > 0 }

// ACL returns the network ACL between an ENI's address local and a peer:
// the ACL of local's subnet, or nil when the peer is in that same subnet
// (traffic inside a subnet meets no ACL, as on AWS) or the VPC has none.
func (v *VPC) ACL(local, peer netip.Addr) *NetworkACL {
	m := v.subnetOf(local)
	if m == nil || m.acl < 0 || peer.Is4() && m.contains(ip4(peer)) {
		return nil
	}
	return &v.NetworkACLs[m.acl]
}

// Decide runs the ACL's entries of one direction on a packet with peer
// address peer (inbound: the source; outbound: the destination) and flow
// f, lowest number first: the first match decides, none denies. It
// returns the number of the entry that decided, 0 for the implicit deny.
func (a *NetworkACL) Decide(inbound bool, f *Flow, peer netip.Addr) (number int32, allow bool) {
	entries := a.Outbound
	if inbound {
		entries = a.Inbound
	}
	p := ip4(peer)
	for i := range entries {
		e := &entries[i]
		if protoMatch(e.Proto, e.From, e.To, f) && toPrefix4(e.Prefix).contains(p) {
			return e.Number, e.Allow
		}
	}
	return 0, false
}

// compileFirewall copies the groups and ACLs of v into c, entries sorted by
// number, and finds each subnet's ACL.
func (c *VPC) compileFirewall(v *VPC) {
	c.DefaultGroup, c.DefaultACL = v.DefaultGroup, v.DefaultACL
	if v.DefaultGroup != 0 {
		c.defaultGroups = []uint64{v.DefaultGroup}
	}
	c.SecurityGroups = make([]SecurityGroup, len(v.SecurityGroups))
	for i, g := range v.SecurityGroups {
		c.SecurityGroups[i] = SecurityGroup{ID: g.ID, Ingress: cloneRules(g.Ingress), Egress: cloneRules(g.Egress)}
	}
	c.NetworkACLs = make([]NetworkACL, len(v.NetworkACLs))
	for i, a := range v.NetworkACLs {
		c.NetworkACLs[i] = NetworkACL{ID: a.ID, Inbound: sortedEntries(a.Inbound), Outbound: sortedEntries(a.Outbound)}
	}
}

func cloneRules(rs []SGRule) []SGRule {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Prefixes = slices.Clone(out[i].Prefixes)
		for j := range out[i].Prefixes {
			out[i].Prefixes[j] = out[i].Prefixes[j].Masked()
		}
	}
	return out
}

func sortedEntries(es []ACLEntry) []ACLEntry {
	out := slices.Clone(es)
	for i := range out {
		out[i].Prefix = out[i].Prefix.Masked()
	}
	slices.SortFunc(out, func(a, b ACLEntry) int { return cmp.Compare(a.Number, b.Number) })
	return out
}

// aclIndex is the index in c.NetworkACLs of subnet s's ACL (its own, or
// the VPC's default), -1 for none.
func (c *VPC) aclIndex(s Subnet) int {
	id := s.NetworkACL
	if id == 0 {
		id = c.DefaultACL
	}
	return slices.IndexFunc(c.NetworkACLs, func(a NetworkACL) bool { return a.ID == id })
}

func checkFirewall(name string, v *VPC) error {
	groups := map[uint64]bool{}
	for _, g := range v.SecurityGroups {
		if g.ID == 0 || groups[g.ID] {
			return invalidf("%s: security group id %s missing or repeated", name, formatID("sg", g.ID))
		}
		groups[g.ID] = true
		for _, r := range append(slices.Clone(g.Ingress), g.Egress...) {
			if (r.Group == 0) == (len(r.Prefixes) == 0) {
				return invalidf("%s: rule %s of %s names no peer, or two", name, formatID("sgr", r.ID), formatID("sg", g.ID))
			}
			for _, p := range r.Prefixes {
				if !is4Prefix(p) {
					return invalidf("%s: rule %s: %v is not an IPv4 prefix", name, formatID("sgr", r.ID), p)
				}
			}
		}
	}
	if v.DefaultGroup != 0 && !groups[v.DefaultGroup] {
		return invalidf("%s: default group %s is not among its groups", name, formatID("sg", v.DefaultGroup))
	}
	acls := map[uint64]bool{}
	for _, a := range v.NetworkACLs {
		if a.ID == 0 || acls[a.ID] {
			return invalidf("%s: network ACL id %s missing or repeated", name, formatID("acl", a.ID))
		}
		acls[a.ID] = true
		for _, e := range append(slices.Clone(a.Inbound), a.Outbound...) {
			if !is4Prefix(e.Prefix) {
				return invalidf("%s: %s entry %d: %v is not an IPv4 prefix", name, formatID("acl", a.ID), e.Number, e.Prefix)
			}
		}
	}
	if v.DefaultACL != 0 && !acls[v.DefaultACL] {
		return invalidf("%s: default ACL %s is not among its ACLs", name, formatID("acl", v.DefaultACL))
	}
	for _, s := range v.Subnets {
		if s.NetworkACL != 0 && !acls[s.NetworkACL] {
			return invalidf("%s: subnet %s names ACL %s, which is not the VPC's", name, formatID("subnet", s.ID), formatID("acl", s.NetworkACL))
		}
	}
	return nil
}
