package mapping

import (
	"slices"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// applyEndpoint follows gateway endpoints: one is a fact of its VPC, and
// creating the first or deleting the last puts the VPC in or out of the
// scope of every edge serving endpoints.
func (w *world) applyEndpoint(r store.Record, d *delta) error {
	if err := applyVPCFact(r, d, new(pb.VpcEndpoint), w.vpces, w.vpcVpces); err != nil {
		return err
	}
	for h := range w.hosts {
		if w.serves(h, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT) {
			d.scopeDirty.add(h)
		}
	}
	return nil
}

// applyService follows the service registry: a service's addresses and
// nodes are facts of every VPC with an endpoint to it.
func (w *world) applyService(r store.Record, d *delta) error {
	svc, err := decode(r, new(pb.Service))
	if err != nil {
		return err
	}
	if r.Deleted {
		delete(w.services, r.ID)
	} else {
		w.services[r.ID] = svc
	}
	for _, ep := range w.vpces {
		if ep.ServiceName == r.ID {
			d.facts.add(ep.VpcId)
		}
	}
	return nil
}

// endpointFacts is an endpoint with its service's addresses and nodes.
func (w *world) endpointFacts(ep *pb.VpcEndpoint) *pb.EndpointFacts {
	f := &pb.EndpointFacts{Id: ep.Id, ServiceName: ep.ServiceName, PolicyDocument: ep.PolicyDocument}
	if svc := w.services[ep.ServiceName]; svc != nil {
		f.Cidrs, f.NodeAddresses = svc.Cidrs, svc.NodeAddresses // shared read-only
	}
	return f
}

// expandEndpointRoutes replaces each route whose destination is a
// service's prefix list by one route per CIDR of the list, so hosts match
// plain prefixes; a list whose service is gone (or has no CIDRs yet)
// routes nothing.
func (w *world) expandEndpointRoutes(rt *pb.RouteTable) *pb.RouteTable {
	if !slices.ContainsFunc(rt.Routes, func(r *pb.Route) bool { return r.DestinationPrefixListId != "" }) {
		return rt
	}
	var out []*pb.Route
	for _, r := range rt.Routes {
		if r.DestinationPrefixListId == "" {
			out = append(out, r)
			continue
		}
		ep := w.vpces[r.Target]
		if ep == nil {
			continue
		}
		svc := w.services[ep.ServiceName]
		if svc == nil || svc.PrefixListId != r.DestinationPrefixListId {
			continue
		}
		for _, c := range svc.Cidrs {
			out = append(out, &pb.Route{DestinationCidr: c, Target: r.Target})
		}
	}
	rt.Routes = out
	return rt
}
