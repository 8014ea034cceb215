package api

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/control/trust"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/policy"
)

// Endpoints serves EndpointService: the services registry and gateway
// endpoints.
type Endpoints struct {
	Store *store.Store
	// Record stores a security event: a service node refused another
	// service's catalog.
	Record func(context.Context, *pb.SecurityEvent)
}

// Bounds of what a service may register.
const (
	maxServiceCIDRs = 64
	maxServiceNodes = 64
)

// checkServiceName accepts AWS-style service names: com.openvpc.<region>.<name>.
func checkServiceName(name string) error {
	parts := strings.Split(name, ".")
	if len(parts) < 4 || len(name) > 128 {
		return model.Invalidf("service name %q: use com.<vendor>.<region>.<service>, for example com.openvpc.local.s3", name)
	}
	for _, p := range parts {
		if p == "" {
			return model.Invalidf("service name %q has an empty part", name)
		}
		for _, c := range p {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return model.Invalidf("service name %q: only lower-case letters, digits and '-' between the dots", name)
			}
		}
	}
	return nil
}

// checkPolicy validates an endpoint policy; empty is full access.
func checkPolicy(doc string) error {
	if doc == "" {
		return nil
	}
	if _, err := policy.Parse([]byte(doc)); err != nil {
		return model.Invalidf("endpoint policy: %v", err)
	}
	return nil
}

func (h *Endpoints) RegisterService(ctx context.Context, req *connect.Request[pb.RegisterServiceRequest]) (*connect.Response[pb.RegisterServiceResponse], error) {
	m := req.Msg
	if err := checkServiceName(m.Name); err != nil {
		return nil, err
	}
	if err := count("cidrs", int64(len(m.Cidrs)), maxServiceCIDRs); err != nil {
		return nil, err
	}
	if err := count("node addresses", int64(len(m.NodeAddresses)), maxServiceNodes); err != nil {
		return nil, err
	}
	if len(m.Cidrs) == 0 {
		return nil, model.Invalidf("service %s needs at least one CIDR: the addresses it answers on", m.Name)
	}
	var cidrs []netip.Prefix
	for _, c := range m.Cidrs {
		p, err := model.ParseCIDR("service CIDR", c, 8, 32)
		if err != nil {
			return nil, err
		}
		cidrs = append(cidrs, p)
	}
	var nodes []netip.Addr
	for _, n := range m.NodeAddresses {
		a, err := model.ParseIPv4("service node address", n)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, a)
	}
	svc, err := h.Store.RegisterService(ctx, m.Name, cidrs, nodes)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RegisterServiceResponse{Service: svc}), nil
}

func (h *Endpoints) ListServices(ctx context.Context, _ *connect.Request[pb.ListServicesRequest]) (*connect.Response[pb.ListServicesResponse], error) {
	all, err := h.Store.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListServicesResponse{Services: all}), nil
}

func (h *Endpoints) CreateVpcEndpoint(ctx context.Context, req *connect.Request[pb.CreateVpcEndpointRequest]) (*connect.Response[pb.CreateVpcEndpointResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	if err := checkServiceName(m.ServiceName); err != nil {
		return nil, err
	}
	if err := h.routeTables(m.RouteTables); err != nil {
		return nil, err
	}
	if err := checkPolicy(m.PolicyDocument); err != nil {
		return nil, err
	}
	ep, err := h.Store.CreateVpcEndpoint(ctx, m.Vpc, m.ServiceName, m.RouteTables, m.PolicyDocument)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateVpcEndpointResponse{Endpoint: ep}), nil
}

func (h *Endpoints) routeTables(refs []string) error {
	if err := count("route tables", int64(len(refs)), 200); err != nil {
		return err
	}
	for _, r := range refs {
		if err := ref(model.KindRouteTable, "route table", r); err != nil {
			return err
		}
	}
	return nil
}

func (h *Endpoints) GetVpcEndpoint(ctx context.Context, req *connect.Request[pb.GetVpcEndpointRequest]) (*connect.Response[pb.GetVpcEndpointResponse], error) {
	if !model.IsID(model.KindEndpoint, req.Msg.Id) {
		return nil, model.Invalidf("%q is not an endpoint id (vpce-…)", req.Msg.Id)
	}
	ep, err := h.Store.GetVpcEndpoint(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetVpcEndpointResponse{Endpoint: ep}), nil
}

func (h *Endpoints) ListVpcEndpoints(ctx context.Context, req *connect.Request[pb.ListVpcEndpointsRequest]) (*connect.Response[pb.ListVpcEndpointsResponse], error) {
	vpcID := ""
	if req.Msg.Vpc != "" {
		v, err := h.Store.GetVPC(ctx, req.Msg.Vpc)
		if err != nil {
			return nil, err
		}
		vpcID = v.Id
	}
	all, err := h.Store.ListVpcEndpoints(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListVpcEndpointsResponse{Endpoints: all}), nil
}

func (h *Endpoints) ModifyVpcEndpoint(ctx context.Context, req *connect.Request[pb.ModifyVpcEndpointRequest]) (*connect.Response[pb.ModifyVpcEndpointResponse], error) {
	m := req.Msg
	if !model.IsID(model.KindEndpoint, m.Id) {
		return nil, model.Invalidf("%q is not an endpoint id (vpce-…)", m.Id)
	}
	if !m.SetPolicy && len(m.AddRouteTables)+len(m.RemoveRouteTables) == 0 {
		return nil, model.Invalidf("nothing to change: give --policy, --add-route-table or --remove-route-table")
	}
	if err := h.routeTables(append(append([]string(nil), m.AddRouteTables...), m.RemoveRouteTables...)); err != nil {
		return nil, err
	}
	if err := checkPolicy(m.PolicyDocument); err != nil {
		return nil, err
	}
	ep, err := h.Store.ModifyVpcEndpoint(ctx, m.Id, m.SetPolicy, m.PolicyDocument, m.AddRouteTables, m.RemoveRouteTables)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ModifyVpcEndpointResponse{Endpoint: ep}), nil
}

func (h *Endpoints) DeleteVpcEndpoint(ctx context.Context, req *connect.Request[pb.DeleteVpcEndpointRequest]) (*connect.Response[pb.DeleteVpcEndpointResponse], error) {
	if !model.IsID(model.KindEndpoint, req.Msg.Id) {
		return nil, model.Invalidf("%q is not an endpoint id (vpce-…)", req.Msg.Id)
	}
	if err := h.Store.DeleteVpcEndpoint(ctx, req.Msg.Id); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeleteVpcEndpointResponse{}), nil
}

// DescribeServiceCatalog answers a service node (or an administrator) with
// what the node needs of its own service. A service certificate asking
// about a service it is no node of, or one not registered, is refused,
// and the refusal recorded.
func (h *Endpoints) DescribeServiceCatalog(ctx context.Context, req *connect.Request[pb.DescribeServiceCatalogRequest]) (*connect.Response[pb.DescribeServiceCatalogResponse], error) {
	name := req.Msg.ServiceName
	if err := checkServiceName(name); err != nil {
		return nil, err
	}
	svc, err := h.Store.GetService(ctx, name)
	if unknown := (&pb.Service{Name: name}); errors.Is(err, model.ErrNotFound) && trust.ClaimService(ctx, unknown) != nil {
		// A service node is refused an unknown service as one it is no
		// node of: told apart, the refusals would say which services exist.
		svc, err = unknown, nil
	}
	if err != nil {
		return nil, err
	}
	if err := trust.ClaimService(ctx, svc); err != nil {
		h.refuse(ctx, name)
		return nil, err
	}
	cat, err := h.Store.ServiceCatalog(ctx, svc)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(cat), nil
}

// refuse records a service node refused the catalog of service.
func (h *Endpoints) refuse(ctx context.Context, service string) {
	if h.Record == nil {
		return
	}
	c, _ := trust.CallerFrom(ctx)
	h.Record(context.WithoutCancel(ctx), &pb.SecurityEvent{HostId: c.ID, Reason: trust.ReasonCatalogRefused, OuterSrc: c.Addr,
		Detail: fmt.Sprintf("%s %s asked for the catalog of service %s, which does not list its underlay address %s (or is not registered)", c.Role, c.ID, service, c.Underlay)})
}

// prefixListRoute checks a route whose destination is a prefix list: not
// with a CIDR too, a pl-… id, toward a gateway endpoint (vpce-…) only —
// AWS's rule: a service's prefix list is the destination of its
// endpoint's routes and of nothing else.
func prefixListRoute(cidr, pl, target string) error {
	if cidr != "" {
		return model.Invalidf("give a destination CIDR or a prefix list, not both")
	}
	if !model.IsID(model.KindPrefixList, pl) {
		return model.Invalidf("destination %q is not a prefix list id (pl-…)", pl)
	}
	if !model.IsID(model.KindEndpoint, target) {
		return model.Invalidf("a prefix list destination (%s) routes only to a gateway endpoint (vpce-…), not to %q", pl, target)
	}
	return nil
}
