package tables

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrInvalid is wrapped by every error a Txn returns for an update it refuses:
// the update is not applied and the rest of the transaction is unaffected.
var ErrInvalid = errors.New("tables: invalid update")

// ErrUnknownVPC is wrapped when a mapping names a VNI whose VPC facts are not in
// the cache: scope-add sends the VPC before its mappings, so this is a stream bug.
var ErrUnknownVPC = errors.New("tables: unknown VPC")

// MaxVNI is the largest VNI Geneve can carry (24 bits).
const MaxVNI = 1<<24 - 1

// Role tells hosts, which run instances, from edges, which run Blackfoot functions.
type Role uint8

// Roles. The zero Role is refused so that a forgotten field is caught.
const (
	RoleHost Role = 1 + iota
	RoleEdge
)

func (r Role) String() string {
	switch r {
	case RoleHost:
		return "host"
	case RoleEdge:
		return "edge"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Host is a registered underlay endpoint: a host or an edge.
type Host struct {
	ID       uint64     // host-…
	Underlay netip.Addr // IPv4 address Geneve packets are sent to
	Role     Role
	Healthy  bool
	// Functions are what an edge serves (nil for a host): hosts send it only
	// packets whose next hop is one of them. A pointer so that a Host stays
	// a comparable value; what it points to is never modified.
	Functions *[]Function
}

// Function is one edge function an edge serves: the kind of route target
// (TargetInternetGateway, TargetVPNGateway, …) and the targets it serves it
// for; no targets means every target of the kind (any edge translates for
// any internet gateway).
type Function struct {
	Kind    TargetKind
	Targets []uint64
	// Standby are targets hosts accept this edge's packets for but never
	// send to it: a VPN connection whose up tunnel here is not the
	// preferred one (a site may answer over either tunnel).
	Standby []uint64
}

// FunctionList returns the edge functions of h, none for a host.
func (h *Host) FunctionList() []Function {
	if h.Functions == nil {
		return nil
	}
	return *h.Functions
}

// Serves reports whether h is an edge that serves target t.
func (h *Host) Serves(t Target) bool {
	if h.Role != RoleEdge || h.Functions == nil {
		return false
	}
	for _, f := range *h.Functions {
		if f.Kind != t.Kind {
			continue
		}
		if len(f.Targets) == 0 && len(f.Standby) == 0 {
			return true // every target of the kind (an edge standing by serves none)
		}
		for _, id := range f.Targets {
			if id == t.ID {
				return true
			}
		}
	}
	return false
}

// Accepts reports whether h is an edge that hosts take packets of target
// t from: one it serves, or one it stands by for.
func (h *Host) Accepts(t Target) bool {
	if h.Serves(t) {
		return true
	}
	if h.Role != RoleEdge || h.Functions == nil {
		return false
	}
	for _, f := range *h.Functions {
		if f.Kind != t.Kind {
			continue
		}
		for _, id := range f.Standby {
			if id == t.ID {
				return true
			}
		}
	}
	return false
}

// Mapping is the Mapping Service record (VNI, private IP) → (host, ENI, MAC).
//
// As an update, HostID names the host by id; Underlay and Local are ignored.
// As a lookup result, Underlay is the host's current underlay address — the zero
// Addr if that host is not registered (then the data path drops, as for a miss) —
// and Local reports that the ENI is on this host.
type Mapping struct {
	VNI    uint32
	IP     netip.Addr // private IPv4 address of the ENI
	HostID uint64     // host-… the ENI is placed on
	ENI    uint64     // eni-…
	MAC    [6]byte
	// Public is the ENI's Elastic IP, if any. As an update it sets or (when
	// zero) clears it. Lookup leaves it alone — the edge asks PublicIP and
	// ByPublicIP, so the hosts' hot path pays nothing for it — while
	// Mappings fills it.
	Public   netip.Addr
	Underlay netip.Addr
	Local    bool
	// Name is the instance's name ("" for none), which the VPC resolver
	// answers. As an update it sets or clears it; like Public, Lookup
	// leaves it alone while Mappings fills it.
	Name string
	// Groups are the ENI's security groups (empty: the VPC's default).
	// As a lookup result the slice belongs to the snapshot: do not modify.
	Groups []uint64
}

// TargetKind is what a route sends traffic to.
type TargetKind uint8

// Route targets. The zero TargetKind is refused.
const (
	TargetLocal           TargetKind = 1 + iota // inside the VPC: mapping lookup in the same VNI
	TargetPeering                               // pcx-…: mapping lookup in the peer's VNI
	TargetInternetGateway                       // igw-…: to an edge
	TargetVPNGateway                            // vgw-…: to an edge
	TargetDirectConnect                         // dxvif-…: to an edge
	TargetEndpoint                              // vpce-…: to an edge
	TargetBlackhole                             // drop
	// TargetVPNConnection is vpn-…: a route propagated from a site-to-site
	// VPN connection, sent to the edge holding its preferred up tunnel.
	// (After TargetBlackhole so that the numbers of the others stay.)
	TargetVPNConnection
)

var targetNames = [...]string{
	TargetLocal:           "local",
	TargetPeering:         "pcx",
	TargetInternetGateway: "igw",
	TargetVPNGateway:      "vgw",
	TargetDirectConnect:   "dxvif",
	TargetEndpoint:        "vpce",
	TargetBlackhole:       "blackhole",
	TargetVPNConnection:   "vpn",
}

func (k TargetKind) valid() bool { return k >= TargetLocal && k <= TargetVPNConnection }

// Edge reports whether traffic to targets of kind k goes to an edge.
func (k TargetKind) Edge() bool {
	return k == TargetInternetGateway || k == TargetVPNGateway || k == TargetDirectConnect || k == TargetEndpoint || k == TargetVPNConnection
}

// String returns the AWS id prefix of the target kind ("pcx", "igw", …), or
// "local" and "blackhole".
func (k TargetKind) String() string {
	if k.valid() {
		return targetNames[k]
	}
	return fmt.Sprintf("TargetKind(%d)", uint8(k))
}

// Target is where a route sends traffic: a kind and, except for local and
// blackhole, the id of the peering, gateway or endpoint.
type Target struct {
	Kind TargetKind
	ID   uint64
}

func (t Target) String() string {
	if t.Kind == TargetLocal || t.Kind == TargetBlackhole {
		return t.Kind.String()
	}
	return formatID(t.Kind.String(), t.ID)
}

// Route is one route table entry.
type Route struct {
	Dst    netip.Prefix
	Target Target
}

// RouteTable is a VPC route table. The control plane includes the VPC's local
// route in it, as AWS shows it; the cache adds nothing.
type RouteTable struct {
	ID     uint64 // rtb-…
	Routes []Route
}

// Subnet is a VPC subnet and the route table its traffic uses.
type Subnet struct {
	ID         uint64 // subnet-…
	CIDR       netip.Prefix
	RouteTable uint64 // rtb-…; 0 means the VPC's main route table
	NetworkACL uint64 // acl-…; 0 means the VPC's default ACL
}

// Peering is an active VPC peering as seen from one side.
type Peering struct {
	ID      uint64 // pcx-…
	PeerVNI uint32
	// RemoteDNS: the VPC resolver answers the peer's instance names
	// (peering modify --allow-remote-dns).
	RemoteDNS bool
}

// formatID renders an id the way the control plane spells it (eni-0123456789abcdef),
// so that error messages can be matched against the API.
func formatID(prefix string, id uint64) string {
	return fmt.Sprintf("%s-%016x", prefix, id)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
