package tables

import "net/netip"

// The cache stores what the Mapping Service sends; it checks only what its own
// lookups depend on (address families, ranges, references between facts), so a
// broken stream is reported instead of turning into silent wrong answers.

func checkHost(h Host) error {
	switch {
	case h.ID == 0:
		return invalidf("host with id 0")
	case !h.Underlay.Is4():
		return invalidf("%s: underlay address %v is not IPv4", formatID("host", h.ID), h.Underlay)
	case h.Role != RoleHost && h.Role != RoleEdge:
		return invalidf("%s: unknown role %v", formatID("host", h.ID), h.Role)
	case h.Role == RoleHost && h.Functions != nil:
		return invalidf("%s: a host serves no edge functions", formatID("host", h.ID))
	}
	for _, f := range h.FunctionList() {
		if !f.Kind.Edge() {
			return invalidf("%s: %v is not an edge function", formatID("host", h.ID), f.Kind)
		}
	}
	return nil
}

func checkMapping(m Mapping) error {
	switch {
	case m.VNI > MaxVNI:
		return invalidf("mapping %v: VNI %d does not fit in 24 bits", m.IP, m.VNI)
	case !m.IP.Is4():
		return invalidf("mapping %v in VNI %d: not an IPv4 address", m.IP, m.VNI)
	case m.HostID == 0:
		return invalidf("mapping %v in VNI %d: host id 0", m.IP, m.VNI)
	case m.ENI == 0:
		return invalidf("mapping %v in VNI %d: ENI id 0", m.IP, m.VNI)
	case m.Public.IsValid() && !m.Public.Is4():
		return invalidf("mapping %v in VNI %d: Elastic IP %v is not IPv4", m.IP, m.VNI, m.Public)
	}
	return nil
}

func checkVPC(v *VPC) error {
	name := formatID("vpc", v.ID)
	switch {
	case v.ID == 0:
		return invalidf("VPC with id 0 (VNI %d)", v.VNI)
	case v.VNI > MaxVNI:
		return invalidf("%s: VNI %d does not fit in 24 bits", name, v.VNI)
	case !is4Prefix(v.CIDR):
		return invalidf("%s: CIDR %v is not an IPv4 prefix", name, v.CIDR)
	}
	tables := make(map[uint64]bool, len(v.RouteTables))
	for _, rt := range v.RouteTables {
		if err := checkRouteTable(name, rt, tables); err != nil {
			return err
		}
	}
	if v.MainRouteTable != 0 && !tables[v.MainRouteTable] {
		return invalidf("%s: main route table %s is not among its route tables",
			name, formatID("rtb", v.MainRouteTable))
	}
	if err := checkSubnets(name, v.Subnets, tables); err != nil {
		return err
	}
	if err := checkFirewall(name, v); err != nil {
		return err
	}
	if err := checkEndpoints(name, v.Endpoints); err != nil {
		return err
	}
	return checkPeerings(name, v.Peerings)
}

func checkRouteTable(vpc string, rt RouteTable, seen map[uint64]bool) error {
	name := formatID("rtb", rt.ID)
	switch {
	case rt.ID == 0:
		return invalidf("%s: route table with id 0", vpc)
	case seen[rt.ID]:
		return invalidf("%s: route table %s listed twice", vpc, name)
	}
	seen[rt.ID] = true
	dsts := make(map[netip.Prefix]bool, len(rt.Routes))
	for _, r := range rt.Routes {
		dst := r.Dst.Masked()
		switch {
		case !is4Prefix(r.Dst):
			return invalidf("%s %s: destination %v is not an IPv4 prefix", vpc, name, r.Dst)
		case !r.Target.Kind.valid():
			return invalidf("%s %s: route to %v has unknown target kind %v", vpc, name, dst, r.Target.Kind)
		case dsts[dst]:
			return invalidf("%s %s: two routes to %v", vpc, name, dst)
		}
		dsts[dst] = true
	}
	return nil
}

func checkSubnets(vpc string, subnets []Subnet, tables map[uint64]bool) error {
	seen := make(map[uint64]bool, len(subnets))
	for _, s := range subnets {
		name := formatID("subnet", s.ID)
		switch {
		case s.ID == 0:
			return invalidf("%s: subnet with id 0", vpc)
		case seen[s.ID]:
			return invalidf("%s: subnet %s listed twice", vpc, name)
		case !is4Prefix(s.CIDR):
			return invalidf("%s %s: CIDR %v is not an IPv4 prefix", vpc, name, s.CIDR)
		case s.RouteTable != 0 && !tables[s.RouteTable]:
			return invalidf("%s %s: route table %s is not among the VPC's route tables",
				vpc, name, formatID("rtb", s.RouteTable))
		}
		seen[s.ID] = true
	}
	return nil
}

func checkPeerings(vpc string, peerings []Peering) error {
	seen := make(map[uint64]bool, len(peerings))
	for _, p := range peerings {
		name := formatID("pcx", p.ID)
		switch {
		case p.ID == 0:
			return invalidf("%s: peering with id 0", vpc)
		case seen[p.ID]:
			return invalidf("%s: peering %s listed twice", vpc, name)
		case p.PeerVNI > MaxVNI:
			return invalidf("%s %s: peer VNI %d does not fit in 24 bits", vpc, name, p.PeerVNI)
		}
		seen[p.ID] = true
	}
	return nil
}

func is4Prefix(p netip.Prefix) bool { return p.IsValid() && p.Addr().Is4() }
