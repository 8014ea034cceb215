package api

import (
	"context"
	"net/netip"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/control/trust"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// VPNs implements VpnService: customer gateways, virtual private gateways,
// VPN connections, their static routes, route propagation, and the
// tunnel reports of edges.
type VPNs struct {
	Store *store.Store
}

func (h *VPNs) CreateCustomerGateway(ctx context.Context, req *connect.Request[pb.CreateCustomerGatewayRequest]) (*connect.Response[pb.CreateCustomerGatewayResponse], error) {
	m := req.Msg
	if err := optionalName(model.KindCustomerGateway, m.Name); err != nil {
		return nil, err
	}
	ip, err := model.ParseIPv4("customer gateway address", m.IpAddress)
	if err != nil {
		return nil, err
	}
	g, err := h.Store.CreateCustomerGateway(ctx, m.Name, ip, m.BgpAsn)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateCustomerGatewayResponse{CustomerGateway: g}), nil
}

func (h *VPNs) GetCustomerGateway(ctx context.Context, req *connect.Request[pb.GetCustomerGatewayRequest]) (*connect.Response[pb.GetCustomerGatewayResponse], error) {
	return byRef(ctx, model.KindCustomerGateway, req.Msg.Ref, h.Store.GetCustomerGateway, func(g *pb.CustomerGateway) *pb.GetCustomerGatewayResponse {
		return &pb.GetCustomerGatewayResponse{CustomerGateway: g}
	})
}

func (h *VPNs) ListCustomerGateways(ctx context.Context, _ *connect.Request[pb.ListCustomerGatewaysRequest]) (*connect.Response[pb.ListCustomerGatewaysResponse], error) {
	all, err := h.Store.ListCustomerGateways(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListCustomerGatewaysResponse{CustomerGateways: all}), nil
}

func (h *VPNs) DeleteCustomerGateway(ctx context.Context, req *connect.Request[pb.DeleteCustomerGatewayRequest]) (*connect.Response[pb.DeleteCustomerGatewayResponse], error) {
	return remove[pb.DeleteCustomerGatewayResponse](ctx, model.KindCustomerGateway, req.Msg.Ref, h.Store.DeleteCustomerGateway)
}

func (h *VPNs) CreateVpnGateway(ctx context.Context, req *connect.Request[pb.CreateVpnGatewayRequest]) (*connect.Response[pb.CreateVpnGatewayResponse], error) {
	if err := optionalName(model.KindVPNGateway, req.Msg.Name); err != nil {
		return nil, err
	}
	g, err := h.Store.CreateVpnGateway(ctx, req.Msg.Name, req.Msg.AmazonSideAsn)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateVpnGatewayResponse{VpnGateway: g}), nil
}

func (h *VPNs) GetVpnGateway(ctx context.Context, req *connect.Request[pb.GetVpnGatewayRequest]) (*connect.Response[pb.GetVpnGatewayResponse], error) {
	return byRef(ctx, model.KindVPNGateway, req.Msg.Ref, h.Store.GetVpnGateway, func(g *pb.VpnGateway) *pb.GetVpnGatewayResponse {
		return &pb.GetVpnGatewayResponse{VpnGateway: g}
	})
}

func (h *VPNs) ListVpnGateways(ctx context.Context, _ *connect.Request[pb.ListVpnGatewaysRequest]) (*connect.Response[pb.ListVpnGatewaysResponse], error) {
	all, err := h.Store.ListVpnGateways(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListVpnGatewaysResponse{VpnGateways: all}), nil
}

func (h *VPNs) AttachVpnGateway(ctx context.Context, req *connect.Request[pb.AttachVpnGatewayRequest]) (*connect.Response[pb.AttachVpnGatewayResponse], error) {
	if err := ref(model.KindVPC, "VPC", req.Msg.Vpc); err != nil {
		return nil, err
	}
	attach := func(ctx context.Context, r string) (*pb.VpnGateway, error) {
		return h.Store.AttachVpnGateway(ctx, r, req.Msg.Vpc)
	}
	return byRef(ctx, model.KindVPNGateway, req.Msg.Ref, attach, func(g *pb.VpnGateway) *pb.AttachVpnGatewayResponse {
		return &pb.AttachVpnGatewayResponse{VpnGateway: g}
	})
}

func (h *VPNs) DetachVpnGateway(ctx context.Context, req *connect.Request[pb.DetachVpnGatewayRequest]) (*connect.Response[pb.DetachVpnGatewayResponse], error) {
	return byRef(ctx, model.KindVPNGateway, req.Msg.Ref, h.Store.DetachVpnGateway, func(g *pb.VpnGateway) *pb.DetachVpnGatewayResponse {
		return &pb.DetachVpnGatewayResponse{VpnGateway: g}
	})
}

func (h *VPNs) DeleteVpnGateway(ctx context.Context, req *connect.Request[pb.DeleteVpnGatewayRequest]) (*connect.Response[pb.DeleteVpnGatewayResponse], error) {
	return remove[pb.DeleteVpnGatewayResponse](ctx, model.KindVPNGateway, req.Msg.Ref, h.Store.DeleteVpnGateway)
}

// tunnelOptions parses what a user gave for each tunnel.
func tunnelOptions(in []*pb.TunnelOptions) ([2]store.TunnelOptions, error) {
	var out [2]store.TunnelOptions
	if len(in) > 2 {
		return out, model.Invalidf("%d tunnel options given; a VPN connection has two tunnels", len(in))
	}
	for i, o := range in {
		if o.InsideCidr != "" {
			p, err := netip.ParsePrefix(o.InsideCidr)
			if err != nil {
				return out, model.Invalidf("tunnel %d: inside CIDR %q is not a prefix; give a /30 in 169.254.0.0/16, e.g. 169.254.10.0/30", i+1, o.InsideCidr)
			}
			out[i].InsideCIDR = p
		}
		out[i].PSK, out[i].DPDTimeout = o.PreSharedKey, o.DpdTimeoutSeconds
	}
	return out, nil
}

func (h *VPNs) CreateVpnConnection(ctx context.Context, req *connect.Request[pb.CreateVpnConnectionRequest]) (*connect.Response[pb.CreateVpnConnectionResponse], error) {
	m := req.Msg
	if err := optionalName(model.KindVPNConnection, m.Name); err != nil {
		return nil, err
	}
	if err := ref(model.KindCustomerGateway, "customer gateway", m.CustomerGateway); err != nil {
		return nil, err
	}
	if err := ref(model.KindVPNGateway, "virtual private gateway", m.VpnGateway); err != nil {
		return nil, err
	}
	tunnels, err := tunnelOptions(m.Tunnels)
	if err != nil {
		return nil, err
	}
	c, err := h.Store.CreateVpnConnection(ctx, store.VpnConnectionSpec{Name: m.Name, CustomerGateway: m.CustomerGateway,
		VpnGateway: m.VpnGateway, StaticRoutesOnly: m.StaticRoutesOnly, Tunnels: tunnels})
	if err != nil {
		return nil, err
	}
	for _, t := range c.Tunnels {
		t.PreSharedKey = "" // printed by `vpn config` only
	}
	return connect.NewResponse(&pb.CreateVpnConnectionResponse{VpnConnection: c}), nil
}

func (h *VPNs) GetVpnConnection(ctx context.Context, req *connect.Request[pb.GetVpnConnectionRequest]) (*connect.Response[pb.GetVpnConnectionResponse], error) {
	get := func(ctx context.Context, r string) (*pb.VpnConnection, error) {
		return h.Store.GetVpnConnection(ctx, r, false)
	}
	return byRef(ctx, model.KindVPNConnection, req.Msg.Ref, get, func(c *pb.VpnConnection) *pb.GetVpnConnectionResponse {
		return &pb.GetVpnConnectionResponse{VpnConnection: c}
	})
}

func (h *VPNs) ListVpnConnections(ctx context.Context, _ *connect.Request[pb.ListVpnConnectionsRequest]) (*connect.Response[pb.ListVpnConnectionsResponse], error) {
	all, err := h.Store.ListVpnConnections(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListVpnConnectionsResponse{VpnConnections: all}), nil
}

func (h *VPNs) DeleteVpnConnection(ctx context.Context, req *connect.Request[pb.DeleteVpnConnectionRequest]) (*connect.Response[pb.DeleteVpnConnectionResponse], error) {
	return remove[pb.DeleteVpnConnectionResponse](ctx, model.KindVPNConnection, req.Msg.Ref, h.Store.DeleteVpnConnection)
}

func (h *VPNs) GetVpnConnectionConfig(ctx context.Context, req *connect.Request[pb.GetVpnConnectionConfigRequest]) (*connect.Response[pb.GetVpnConnectionConfigResponse], error) {
	if err := ref(model.KindVPNConnection, "VPN connection", req.Msg.Ref); err != nil {
		return nil, err
	}
	if f := req.Msg.Format; f != "" && f != "strongswan" && f != "frr" {
		return nil, model.Invalidf("config format %q is not one openvpc prints; use strongswan (a swanctl.conf) or frr (the site's bgpd, BGP connections)", f)
	}
	c, err := h.Store.GetVpnConnection(ctx, req.Msg.Ref, true)
	if err != nil {
		return nil, err
	}
	cgw, err := h.Store.GetCustomerGateway(ctx, c.CustomerGatewayId)
	if err != nil {
		return nil, err
	}
	vgw, err := h.Store.GetVpnGateway(ctx, c.VpnGatewayId)
	if err != nil {
		return nil, err
	}
	var vpc *pb.Vpc
	if vgw.VpcId != "" {
		if vpc, err = h.Store.GetVPC(ctx, vgw.VpcId); err != nil {
			return nil, err
		}
	}
	var text string
	if req.Msg.Format == "frr" {
		text, err = VPNFRRConfig(c, cgw, vgw, vpc, req.Msg.Announce)
	} else {
		text, err = StrongSwanConfig(c, cgw, vgw, vpc)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetVpnConnectionConfigResponse{Config: text}), nil
}

func (h *VPNs) changeRoute(ctx context.Context, r, dest string, add bool) (*pb.VpnConnection, error) {
	if err := ref(model.KindVPNConnection, "VPN connection", r); err != nil {
		return nil, err
	}
	p, err := routeDest(dest)
	if err != nil {
		return nil, err
	}
	if add {
		return h.Store.AddVpnRoute(ctx, r, p)
	}
	return h.Store.DeleteVpnRoute(ctx, r, p)
}

func (h *VPNs) CreateVpnConnectionRoute(ctx context.Context, req *connect.Request[pb.CreateVpnConnectionRouteRequest]) (*connect.Response[pb.CreateVpnConnectionRouteResponse], error) {
	c, err := h.changeRoute(ctx, req.Msg.Ref, req.Msg.DestinationCidr, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateVpnConnectionRouteResponse{VpnConnection: c}), nil
}

func (h *VPNs) DeleteVpnConnectionRoute(ctx context.Context, req *connect.Request[pb.DeleteVpnConnectionRouteRequest]) (*connect.Response[pb.DeleteVpnConnectionRouteResponse], error) {
	c, err := h.changeRoute(ctx, req.Msg.Ref, req.Msg.DestinationCidr, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeleteVpnConnectionRouteResponse{VpnConnection: c}), nil
}

func (h *VPNs) propagation(ctx context.Context, rtb, vgw string, on bool) (*pb.RouteTable, error) {
	if err := ref(model.KindRouteTable, "route table", rtb); err != nil {
		return nil, err
	}
	if err := ref(model.KindVPNGateway, "virtual private gateway", vgw); err != nil {
		return nil, err
	}
	if on {
		return h.Store.EnableRoutePropagation(ctx, rtb, vgw)
	}
	return h.Store.DisableRoutePropagation(ctx, rtb, vgw)
}

func (h *VPNs) EnableRoutePropagation(ctx context.Context, req *connect.Request[pb.EnableRoutePropagationRequest]) (*connect.Response[pb.EnableRoutePropagationResponse], error) {
	r, err := h.propagation(ctx, req.Msg.RouteTable, req.Msg.VpnGateway, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.EnableRoutePropagationResponse{RouteTable: r}), nil
}

func (h *VPNs) DisableRoutePropagation(ctx context.Context, req *connect.Request[pb.DisableRoutePropagationRequest]) (*connect.Response[pb.DisableRoutePropagationResponse], error) {
	r, err := h.propagation(ctx, req.Msg.RouteTable, req.Msg.VpnGateway, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DisableRoutePropagationResponse{RouteTable: r}), nil
}

// ReportTunnelState records an edge's report, refused unless the caller
// is that edge; a tunnel that was up and is not any more is an
// operational event (`openvpc events`).
func (h *VPNs) ReportTunnelState(ctx context.Context, req *connect.Request[pb.ReportTunnelStateRequest]) (*connect.Response[pb.ReportTunnelStateResponse], error) {
	m := req.Msg
	if err := model.ValidateHostID(m.EdgeId); err != nil {
		return nil, err
	}
	if err := trust.Claim(ctx, m.EdgeId); err != nil {
		return nil, err
	}
	if !model.IsID(model.KindVPNConnection, m.VpnConnectionId) {
		return nil, model.Invalidf("%q is not a VPN connection id (vpn-…)", m.VpnConnectionId)
	}
	if m.Status == nil || m.Status.State == pb.TunnelState_TUNNEL_STATE_UNSPECIFIED {
		return nil, model.Invalidf("a tunnel report needs a state (down, connecting or up)")
	}
	if err := h.Store.ReportTunnelState(ctx, m.EdgeId, m.VpnConnectionId, int(m.Tunnel), m.Status); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ReportTunnelStateResponse{}), nil
}

// ListEdgeTunnels tells an edge (only that edge) the tunnels placed on it.
func (h *VPNs) ListEdgeTunnels(ctx context.Context, req *connect.Request[pb.ListEdgeTunnelsRequest]) (*connect.Response[pb.ListEdgeTunnelsResponse], error) {
	if err := model.ValidateHostID(req.Msg.EdgeId); err != nil {
		return nil, err
	}
	if err := trust.Claim(ctx, req.Msg.EdgeId); err != nil {
		return nil, err
	}
	ts, err := h.Store.EdgeTunnels(ctx, req.Msg.EdgeId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListEdgeTunnelsResponse{Tunnels: ts}), nil
}
