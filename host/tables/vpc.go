package tables

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// VPC holds the facts about one VPC that the data path needs besides mappings.
// Values returned by a Snapshot are shared and must not be modified.
type VPC struct {
	VNI         uint32
	ID          uint64 // vpc-…
	Name        string // its instances' names resolve in <Name>.internal
	DNSDisabled bool   // the VPC resolver answers nothing (enableDnsSupport off)
	// HostnamesDisabled: the resolver answers no instance name or its PTR
	// (enableDnsHostnames off).
	HostnamesDisabled bool
	CIDR              netip.Prefix
	MainRouteTable    uint64 // rtb-…; used by subnets that name no route table
	Subnets           []Subnet
	RouteTables       []RouteTable
	Peerings          []Peering // active peerings only
	// InternetGateway is the attached igw-…, 0 if none: routes to any other
	// internet gateway carry nothing.
	InternetGateway uint64
	// SecurityGroups and NetworkACLs are the VPC's firewalls; DefaultGroup
	// is the group of ENIs that name none, DefaultACL the ACL of subnets
	// that name none. No groups at all: the VPC is not filtered.
	SecurityGroups []SecurityGroup
	NetworkACLs    []NetworkACL
	DefaultGroup   uint64
	DefaultACL     uint64
	// FlowLogs are the VPC's flow logs (flowlog.go).
	FlowLogs []FlowLog
	// Zones are the private hosted zones associated with the VPC (zone.go),
	// for the VPC resolver; each is immutable and shared.
	Zones []*Zone
	// Endpoints are the VPC's gateway endpoints (endpoint.go).
	Endpoints []Endpoint

	// Compiled forms of the above, built once per UpsertVPC so that lookups are
	// mask-and-compare loops over flat slices.
	subnets []subnetMatch // most specific first
	tables  []tableMatch
	// defaultGroups is DefaultGroup as a group list.
	defaultGroups []uint64
}

// prefix4 is an IPv4 prefix as a masked address and a mask.
type prefix4 struct{ addr, mask uint32 }

func (p prefix4) contains(ip uint32) bool { return ip&p.mask == p.addr }

type subnetMatch struct {
	prefix4
	subnet int // index into VPC.Subnets
	table  int // index into VPC.tables, -1 when the subnet has no route table
	acl    int // index into VPC.NetworkACLs, -1 when the VPC has none
}

type tableMatch struct {
	id     uint64
	routes []routeMatch // longest prefix first, so the first match wins
}

type routeMatch struct {
	prefix4
	route Route
}

// Subnet returns the subnet containing ip.
func (v *VPC) Subnet(ip netip.Addr) (Subnet, bool) {
	if m := v.subnetOf(ip); m != nil {
		return v.Subnets[m.subnet], true
	}
	return Subnet{}, false
}

// Route returns the route for a packet from src to dst: the longest prefix
// match for dst in the route table of the subnet that contains src; nil if
// there is none. The Route belongs to the snapshot: do not modify it. (A
// pointer because copying the result out would cost half the lookup.)
func (v *VPC) Route(src, dst netip.Addr) *Route {
	m := v.subnetOf(src)
	if m == nil || m.table < 0 || !dst.Is4() {
		return nil
	}
	return v.tables[m.table].lookup(ip4(dst))
}

// RouteIn returns the longest prefix match for dst in route table rtb, or nil.
func (v *VPC) RouteIn(rtb uint64, dst netip.Addr) *Route {
	if !dst.Is4() {
		return nil
	}
	for i := range v.tables {
		if v.tables[i].id == rtb {
			return v.tables[i].lookup(ip4(dst))
		}
	}
	return nil
}

// PeerVNI returns the VNI on the other side of the active peering pcx.
func (v *VPC) PeerVNI(pcx uint64) (uint32, bool) {
	for _, p := range v.Peerings {
		if p.ID == pcx {
			return p.PeerVNI, true
		}
	}
	return 0, false
}

// Attached reports whether the edge target t belongs to this VPC, so that a
// route to it leads somewhere: the attached internet gateway. Targets of
// kinds whose facts the cache does not hold yet (virtual private gateways,
// Direct Connect, endpoints) lead nowhere: nothing is guessed.
func (v *VPC) Attached(t Target) bool {
	switch t.Kind {
	case TargetInternetGateway:
		return t.ID != 0 && t.ID == v.InternetGateway
	case TargetVPNConnection, TargetDirectConnect:
		// The Mapping Service pushes a route to a VPN connection only while
		// it is usable (a tunnel up, attached to this VPC's vgw), and one to
		// a Direct Connect VIF only while its session is up, so the route
		// is the attachment.
		return t.ID != 0
	case TargetEndpoint:
		_, ok := v.Endpoint(t.ID)
		return ok
	}
	return false
}

// PeeredWith reports whether this VPC has an active peering with VNI peer.
func (v *VPC) PeeredWith(peer uint32) bool {
	for _, p := range v.Peerings {
		if p.PeerVNI == peer {
			return true
		}
	}
	return false
}

func (v *VPC) subnetOf(ip netip.Addr) *subnetMatch {
	if !ip.Is4() {
		return nil
	}
	a := ip4(ip)
	for i := range v.subnets {
		if v.subnets[i].contains(a) {
			return &v.subnets[i]
		}
	}
	return nil
}

func (t *tableMatch) lookup(dst uint32) *Route {
	for i := range t.routes {
		if t.routes[i].contains(dst) {
			return &t.routes[i].route
		}
	}
	return nil
}

// compileVPC validates v and returns a private deep copy with its lookup forms
// built, so that the caller keeps no alias into an immutable snapshot.
func compileVPC(v VPC) (*VPC, error) {
	if err := checkVPC(&v); err != nil {
		return nil, err
	}
	c := &VPC{
		VNI:               v.VNI,
		ID:                v.ID,
		Name:              v.Name,
		DNSDisabled:       v.DNSDisabled,
		HostnamesDisabled: v.HostnamesDisabled,
		CIDR:              v.CIDR.Masked(),
		MainRouteTable:    v.MainRouteTable,
		Subnets:           slices.Clone(v.Subnets),
		RouteTables:       make([]RouteTable, len(v.RouteTables)),
		Peerings:          slices.Clone(v.Peerings),

		InternetGateway: v.InternetGateway,
		FlowLogs:        slices.Clone(v.FlowLogs), // plain values: the clone is deep
		Zones:           slices.Clone(v.Zones),    // zones are immutable
		Endpoints:       cloneEndpoints(v.Endpoints),
	}
	c.compileFirewall(&v)
	for i, rt := range v.RouteTables {
		c.RouteTables[i] = RouteTable{ID: rt.ID, Routes: slices.Clone(rt.Routes)}
		c.tables = append(c.tables, compileTable(rt))
	}
	for i := range c.Subnets {
		c.Subnets[i].CIDR = c.Subnets[i].CIDR.Masked()
		c.subnets = append(c.subnets, c.compileSubnet(i))
	}
	slices.SortStableFunc(c.subnets, func(a, b subnetMatch) int {
		return cmp.Compare(b.mask, a.mask) // more bits set sorts first
	})
	return c, nil
}

func (c *VPC) compileSubnet(i int) subnetMatch {
	s := c.Subnets[i]
	rtb := s.RouteTable
	if rtb == 0 {
		rtb = c.MainRouteTable
	}
	table := slices.IndexFunc(c.tables, func(t tableMatch) bool { return t.id == rtb })
	return subnetMatch{prefix4: toPrefix4(s.CIDR), subnet: i, table: table, acl: c.aclIndex(s)}
}

func compileTable(rt RouteTable) tableMatch {
	t := tableMatch{id: rt.ID, routes: make([]routeMatch, len(rt.Routes))}
	for i, r := range rt.Routes {
		r.Dst = r.Dst.Masked()
		t.routes[i] = routeMatch{prefix4: toPrefix4(r.Dst), route: r}
	}
	slices.SortFunc(t.routes, func(a, b routeMatch) int {
		if c := cmp.Compare(b.route.Dst.Bits(), a.route.Dst.Bits()); c != 0 {
			return c
		}
		return cmp.Compare(a.addr, b.addr)
	})
	return t
}

func toPrefix4(p netip.Prefix) prefix4 {
	mask := ^uint32(0) << (32 - p.Bits()) // a shift by 32 gives 0: /0 matches all
	return prefix4{addr: ip4(p.Addr()) & mask, mask: mask}
}

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr4(ip uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], ip)
	return netip.AddrFrom4(b)
}
