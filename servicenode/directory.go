package servicenode

import (
	"net/netip"
	"sync/atomic"

	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/policy"
)

// Directory answers Config.Endpoint and Config.Edge from an edge's cache
// (the VPCs with endpoints, and the registered edges serving endpoints),
// indexed once per snapshot so a packet costs a map lookup.
type Directory struct {
	t   *tables.Tables
	cur atomic.Pointer[directoryIndex]
}

type directoryIndex struct {
	snap      *tables.Snapshot
	endpoints map[uint64]Endpoint
	edges     map[netip.Addr]bool
	policies  map[string]*policy.Policy // by vpce-…, for every known endpoint; absent: unknown, denied
	parsed    map[string]*policy.Policy // by document text: kept across snapshots, so a new snapshot parses only new documents
	nodes     map[netip.Addr]bool       // Catalog: the service's nodes
}

// policyFor is the parsed endpoint policy doc, reusing prev's parse of
// the same text: a new snapshot (on the packet path, at its first packet)
// then costs map lookups, not a parse per endpoint.
func (ix *directoryIndex) policyFor(doc string, prev *directoryIndex) *policy.Policy {
	if doc == "" {
		return policy.FullAccessPolicy() // the default, stated: nil means "unknown endpoint"
	}
	if p := ix.parsed[doc]; p != nil {
		return p
	}
	p := (*policy.Policy)(nil)
	if prev != nil {
		p = prev.parsed[doc]
	}
	if p == nil {
		var err error
		if p, err = policy.Parse([]byte(doc)); err != nil {
			p = denyAll // the API validated it; a policy we cannot read grants nothing
		}
	}
	ix.parsed[doc] = p
	return p
}

// NewDirectory returns a directory over t.
func NewDirectory(t *tables.Tables) *Directory { return &Directory{t: t} }

func (d *Directory) index() *directoryIndex {
	snap := d.t.Load()
	prev := d.cur.Load()
	if prev != nil && prev.snap == snap {
		return prev
	}
	ix := newIndex()
	ix.snap = snap
	if snap != nil {
		for v := range snap.VPCs() {
			for _, e := range v.Endpoints {
				ix.endpoints[e.ID] = Endpoint{ID: e.ID, VNI: v.VNI, VPC: v.ID}
				ix.policies[model.FormatID(model.KindEndpoint, e.ID)] = ix.policyFor(e.Policy, prev)
			}
		}
		for _, h := range snap.Edges() {
			if h.Serves(tables.Target{Kind: tables.TargetEndpoint}) || servesEndpoints(h) {
				ix.edges[h.Underlay] = true
			}
		}
	}
	d.cur.Store(ix)
	return ix
}

// servesEndpoints: an edge serving endpoints for some targets only.
func servesEndpoints(h tables.Host) bool {
	for _, f := range h.FunctionList() {
		if f.Kind == tables.TargetEndpoint {
			return true
		}
	}
	return false
}

// Endpoint implements Config.Endpoint.
func (d *Directory) Endpoint(id uint64) (Endpoint, bool) {
	e, ok := d.index().endpoints[id]
	return e, ok
}

func newIndex() *directoryIndex {
	return &directoryIndex{endpoints: map[uint64]Endpoint{}, edges: map[netip.Addr]bool{}, policies: map[string]*policy.Policy{},
		parsed: map[string]*policy.Policy{}, nodes: map[netip.Addr]bool{}}
}

// Policy is the endpoint policy of vpce — full access for one without a
// document — or nil for an endpoint the cache does not have, which the
// store denies; for objectstore.Config.EndpointPolicy.
func (d *Directory) Policy(vpce string) *policy.Policy { return d.index().policies[vpce] }

var denyAll, _ = policy.Parse([]byte(`{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`))

// Edge implements Config.Edge.
func (d *Directory) Edge(addr netip.Addr) bool { return d.index().edges[addr] }

// Catalog is a directory set from outside, for a service node that runs
// apart from any edge: its owner polls its service's catalog
// (EndpointService.DescribeServiceCatalog) and calls Set.
// Until the first Set it knows no endpoint and no edge, so it drops all.
type Catalog struct {
	cur atomic.Pointer[directoryIndex]
}

// CatalogEndpoint is one endpoint for Catalog.Set.
type CatalogEndpoint struct {
	Endpoint
	Policy string // the endpoint policy document, "" for full access
}

// Set replaces what the catalog knows. A policy that does not parse
// grants nothing.
// nodes are the service's nodes, whose connections the store believes
// (ServiceNode).
func (c *Catalog) Set(endpoints []CatalogEndpoint, edges, nodes []netip.Addr) {
	prev := c.cur.Load()
	ix := newIndex()
	for _, e := range endpoints {
		ix.endpoints[e.ID] = e.Endpoint
		ix.policies[model.FormatID(model.KindEndpoint, e.ID)] = ix.policyFor(e.Policy, prev)
	}
	for _, a := range edges {
		ix.edges[a] = true
	}
	for _, a := range nodes {
		ix.nodes[a.Unmap()] = true
	}
	c.cur.Store(ix)
}

// ServiceNode reports whether addr is one of the service's nodes: for
// objectstore.Config.TrustPeer on a TCP endpoints listener.
func (c *Catalog) ServiceNode(addr netip.Addr) bool { return c.index().nodes[addr.Unmap()] }

func (c *Catalog) index() *directoryIndex {
	if ix := c.cur.Load(); ix != nil {
		return ix
	}
	return &directoryIndex{}
}

// Endpoint implements Config.Endpoint.
func (c *Catalog) Endpoint(id uint64) (Endpoint, bool) {
	e, ok := c.index().endpoints[id]
	return e, ok
}

// Edge implements Config.Edge.
func (c *Catalog) Edge(addr netip.Addr) bool { return c.index().edges[addr] }

// Policy is the endpoint policy of vpce, nil for an unknown one (denied).
func (c *Catalog) Policy(vpce string) *policy.Policy { return c.index().policies[vpce] }
