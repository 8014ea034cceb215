package tables

import (
	"net/netip"
	"slices"
)

// Endpoint is a gateway endpoint of a VPC (vpce-…): the service's
// addresses its routes lead to, and the service nodes behind the edges
// that serve it.
type Endpoint struct {
	ID uint64 // vpce-…
	// Prefixes are the service's prefix list (pl-…): what the endpoint's
	// routes send to it, and the only sources replies through it may have.
	Prefixes []netip.Prefix
	// Nodes are the underlay addresses of the service's nodes.
	Nodes []netip.Addr
	// Policy is the endpoint policy document ("" for full access), for
	// the service behind the node, which enforces it; the data path
	// ignores it.
	Policy string
}

// Endpoint returns the VPC's gateway endpoint id.
func (v *VPC) Endpoint(id uint64) (*Endpoint, bool) {
	for i := range v.Endpoints {
		if v.Endpoints[i].ID == id {
			return &v.Endpoints[i], true
		}
	}
	return nil, false
}

// Serves reports whether ip is one of the endpoint's service addresses.
func (e *Endpoint) Serves(ip netip.Addr) bool {
	for _, p := range e.Prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// HasNode reports whether addr is one of the endpoint's service nodes.
func (e *Endpoint) HasNode(addr netip.Addr) bool { return slices.Contains(e.Nodes, addr) }

func cloneEndpoints(es []Endpoint) []Endpoint {
	out := slices.Clone(es)
	for i := range out {
		out[i].Prefixes = slices.Clone(out[i].Prefixes)
		out[i].Nodes = slices.Clone(out[i].Nodes)
	}
	return out
}

func checkEndpoints(vpc string, es []Endpoint) error {
	seen := map[uint64]bool{}
	for _, e := range es {
		if e.ID == 0 || seen[e.ID] {
			return invalidf("VPC %s: endpoint %s is zero or listed twice", vpc, formatID("vpce", e.ID))
		}
		seen[e.ID] = true
		for _, p := range e.Prefixes {
			if !p.IsValid() || !p.Addr().Is4() {
				return invalidf("VPC %s: endpoint %s: prefix %v is not IPv4", vpc, formatID("vpce", e.ID), p)
			}
		}
		for _, a := range e.Nodes {
			if !a.Is4() {
				return invalidf("VPC %s: endpoint %s: service node %v is not IPv4", vpc, formatID("vpce", e.ID), a)
			}
		}
	}
	return nil
}
