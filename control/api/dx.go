package api

import (
	"context"
	"net/netip"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/control/trust"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/pki"
)

// DirectConnect serves DirectConnectService: connections, virtual
// interfaces, Direct Connect gateways, and the edges' status reports.
type DirectConnect struct {
	Store *store.Store
}

var _ openvpcv1connect.DirectConnectServiceHandler = (*DirectConnect)(nil)

func (h *DirectConnect) CreateConnection(ctx context.Context, req *connect.Request[pb.CreateConnectionRequest]) (*connect.Response[pb.CreateConnectionResponse], error) {
	m := req.Msg
	if err := optionalName(model.KindDXConnection, m.Name); err != nil {
		return nil, err
	}
	if m.Edge == "" {
		return nil, model.Invalidf("no edge given: name the edge (its host id, see openvpc host list) whose port this is")
	}
	if err := model.ValidatePortName(m.Port); err != nil {
		return nil, err
	}
	c, err := h.Store.CreateDXConnection(ctx, m.Name, m.Edge, m.Port)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateConnectionResponse{Connection: c}), nil
}

func (h *DirectConnect) GetConnection(ctx context.Context, req *connect.Request[pb.GetConnectionRequest]) (*connect.Response[pb.GetConnectionResponse], error) {
	return byRef(ctx, model.KindDXConnection, req.Msg.Ref, h.Store.GetDXConnection, func(c *pb.DxConnection) *pb.GetConnectionResponse {
		return &pb.GetConnectionResponse{Connection: c}
	})
}

func (h *DirectConnect) ListConnections(ctx context.Context, _ *connect.Request[pb.ListConnectionsRequest]) (*connect.Response[pb.ListConnectionsResponse], error) {
	cs, err := h.Store.ListDXConnections(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListConnectionsResponse{Connections: cs}), nil
}

func (h *DirectConnect) DeleteConnection(ctx context.Context, req *connect.Request[pb.DeleteConnectionRequest]) (*connect.Response[pb.DeleteConnectionResponse], error) {
	return remove[pb.DeleteConnectionResponse](ctx, model.KindDXConnection, req.Msg.Ref, h.Store.DeleteDXConnection)
}

// vifSpec validates a create request into the VIF to store.
func vifSpec(m *pb.CreateVirtualInterfaceRequest) (*pb.DxVirtualInterface, error) {
	if err := optionalName(model.KindDirectConnect, m.Name); err != nil {
		return nil, err
	}
	if err := ref(model.KindDXConnection, "connection", m.Connection); err != nil {
		return nil, err
	}
	if err := model.ValidateVLAN(m.Vlan); err != nil {
		return nil, err
	}
	if err := model.ValidateCustomerASN(m.CustomerAsn); err != nil {
		return nil, err
	}
	if m.AmazonAsn != 0 {
		if err := model.ValidateAmazonASN(m.AmazonAsn); err != nil {
			return nil, err
		}
	}
	if err := model.ValidateHoldTime(m.HoldTime); err != nil {
		return nil, err
	}
	switch {
	case (m.VpnGateway == "") == (m.DxGateway == ""):
		return nil, model.Invalidf("attach the virtual interface to one gateway: a virtual private gateway (--vgw vgw-…) or a Direct Connect gateway (--dx-gateway dxgw-…)")
	}
	if m.VpnGateway != "" {
		if err := ref(model.KindVPNGateway, "virtual private gateway", m.VpnGateway); err != nil {
			return nil, err
		}
	}
	if m.DxGateway != "" {
		if err := ref(model.KindDXGateway, "Direct Connect gateway", m.DxGateway); err != nil {
			return nil, err
		}
	}
	var amazon, customer netip.Prefix
	switch {
	case m.AmazonAddress == "" && m.CustomerAddress == "":
		amazon, customer = model.AllocatePeerAddresses(nil)
	case m.AmazonAddress == "" || m.CustomerAddress == "":
		return nil, model.Invalidf("give both peer addresses (--amazon-address and --customer-address, such as 169.254.10.1/30 and 169.254.10.2/30) or neither, to have a /30 allocated")
	default:
		var err1, err2 error
		amazon, err1 = netip.ParsePrefix(m.AmazonAddress)
		customer, err2 = netip.ParsePrefix(m.CustomerAddress)
		if err1 != nil || err2 != nil {
			return nil, model.Invalidf("peer addresses %q and %q: give each with its /30, such as 169.254.10.1/30", m.AmazonAddress, m.CustomerAddress)
		}
		if err := model.ValidatePeerAddresses(amazon, customer); err != nil {
			return nil, err
		}
	}
	key := m.AuthKey
	if key == "" {
		key = model.NewAuthKey()
	} else if err := model.ValidateAuthKey(key); err != nil {
		return nil, err
	}
	hold := m.HoldTime
	if hold == 0 {
		hold = 90
	}
	return &pb.DxVirtualInterface{
		Id: model.NewID(model.KindDirectConnect), Name: m.Name, ConnectionId: m.Connection, Vlan: m.Vlan,
		CustomerAsn: m.CustomerAsn, AmazonAsn: m.AmazonAsn,
		AmazonAddress: amazon.String(), CustomerAddress: customer.String(), AuthKey: key,
		VpnGatewayId: m.VpnGateway, DxGatewayId: m.DxGateway, HoldTime: hold,
	}, nil
}

func (h *DirectConnect) CreateVirtualInterface(ctx context.Context, req *connect.Request[pb.CreateVirtualInterfaceRequest]) (*connect.Response[pb.CreateVirtualInterfaceResponse], error) {
	v, err := vifSpec(req.Msg)
	if err != nil {
		return nil, err
	}
	v, err = h.Store.CreateDXVIF(ctx, v)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateVirtualInterfaceResponse{VirtualInterface: v}), nil
}

func (h *DirectConnect) GetVirtualInterface(ctx context.Context, req *connect.Request[pb.GetVirtualInterfaceRequest]) (*connect.Response[pb.GetVirtualInterfaceResponse], error) {
	return byRef(ctx, model.KindDirectConnect, req.Msg.Ref, h.Store.GetDXVIF, func(v *pb.DxVirtualInterface) *pb.GetVirtualInterfaceResponse {
		return &pb.GetVirtualInterfaceResponse{VirtualInterface: v}
	})
}

func (h *DirectConnect) ListVirtualInterfaces(ctx context.Context, req *connect.Request[pb.ListVirtualInterfacesRequest]) (*connect.Response[pb.ListVirtualInterfacesResponse], error) {
	if err := optionalRef(model.KindDXConnection, "connection", req.Msg.Connection); err != nil {
		return nil, err
	}
	vs, err := h.Store.ListDXVIFs(ctx, req.Msg.Connection)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		v.AuthKey = "" // as AWS's describe: the key is shown by get and config only
	}
	return connect.NewResponse(&pb.ListVirtualInterfacesResponse{VirtualInterfaces: vs}), nil
}

func (h *DirectConnect) DeleteVirtualInterface(ctx context.Context, req *connect.Request[pb.DeleteVirtualInterfaceRequest]) (*connect.Response[pb.DeleteVirtualInterfaceResponse], error) {
	return remove[pb.DeleteVirtualInterfaceResponse](ctx, model.KindDirectConnect, req.Msg.Ref, h.Store.DeleteDXVIF)
}

func (h *DirectConnect) DescribeRouterConfiguration(ctx context.Context, req *connect.Request[pb.DescribeRouterConfigurationRequest]) (*connect.Response[pb.DescribeRouterConfigurationResponse], error) {
	m := req.Msg
	if err := ref(model.KindDirectConnect, "virtual interface", m.Ref); err != nil {
		return nil, err
	}
	if m.Format != "" && m.Format != "frr" {
		return nil, model.Invalidf("format %q: the router configurations printed are: frr", m.Format)
	}
	var announce []netip.Prefix
	for _, a := range m.Announce {
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return nil, model.Invalidf("announce %q: give your network's IPv4 prefix, such as 192.0.2.0/24", a)
		}
		announce = append(announce, p)
	}
	if m.Interface != "" {
		if err := model.ValidatePortName(m.Interface); err != nil {
			return nil, err
		}
	}
	v, err := h.Store.GetDXVIF(ctx, m.Ref)
	if err != nil {
		return nil, err
	}
	conf, err := FRRConfig(v, m.Interface, announce)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DescribeRouterConfigurationResponse{Config: conf}), nil
}

func (h *DirectConnect) CreateGateway(ctx context.Context, req *connect.Request[pb.CreateGatewayRequest]) (*connect.Response[pb.CreateGatewayResponse], error) {
	m := req.Msg
	if err := optionalName(model.KindDXGateway, m.Name); err != nil {
		return nil, err
	}
	asn := m.AmazonAsn
	if asn == 0 {
		asn = model.DefaultAmazonASN
	}
	if err := model.ValidateAmazonASN(asn); err != nil {
		return nil, err
	}
	g, err := h.Store.CreateDXGateway(ctx, m.Name, asn)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateGatewayResponse{Gateway: g}), nil
}

func (h *DirectConnect) GetGateway(ctx context.Context, req *connect.Request[pb.GetGatewayRequest]) (*connect.Response[pb.GetGatewayResponse], error) {
	return byRef(ctx, model.KindDXGateway, req.Msg.Ref, h.Store.GetDXGateway, func(g *pb.DxGateway) *pb.GetGatewayResponse { return &pb.GetGatewayResponse{Gateway: g} })
}

func (h *DirectConnect) ListGateways(ctx context.Context, _ *connect.Request[pb.ListGatewaysRequest]) (*connect.Response[pb.ListGatewaysResponse], error) {
	gs, err := h.Store.ListDXGateways(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListGatewaysResponse{Gateways: gs}), nil
}

func (h *DirectConnect) DeleteGateway(ctx context.Context, req *connect.Request[pb.DeleteGatewayRequest]) (*connect.Response[pb.DeleteGatewayResponse], error) {
	return remove[pb.DeleteGatewayResponse](ctx, model.KindDXGateway, req.Msg.Ref, h.Store.DeleteDXGateway)
}

func (h *DirectConnect) associate(ctx context.Context, gw, vgw string, on bool) (*pb.DxGateway, error) {
	if err := ref(model.KindDXGateway, "Direct Connect gateway", gw); err != nil {
		return nil, err
	}
	if err := ref(model.KindVPNGateway, "virtual private gateway", vgw); err != nil {
		return nil, err
	}
	return h.Store.AssociateDXGateway(ctx, gw, vgw, on)
}

func (h *DirectConnect) AssociateGateway(ctx context.Context, req *connect.Request[pb.AssociateGatewayRequest]) (*connect.Response[pb.AssociateGatewayResponse], error) {
	g, err := h.associate(ctx, req.Msg.Gateway, req.Msg.VpnGateway, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AssociateGatewayResponse{Gateway: g}), nil
}

func (h *DirectConnect) DisassociateGateway(ctx context.Context, req *connect.Request[pb.DisassociateGatewayRequest]) (*connect.Response[pb.DisassociateGatewayResponse], error) {
	g, err := h.associate(ctx, req.Msg.Gateway, req.Msg.VpnGateway, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DisassociateGatewayResponse{Gateway: g}), nil
}

// ReportVirtualInterfaceStatus takes an edge's report of a VIF's session.
// Only the edge holding the VIF's connection may report (its certificate
// says which edge it is); administrators and insecure-loopback callers are
// taken at their word.
func (h *DirectConnect) ReportVirtualInterfaceStatus(ctx context.Context, req *connect.Request[pb.ReportVirtualInterfaceStatusRequest]) (*connect.Response[pb.ReportVirtualInterfaceStatusResponse], error) {
	m := req.Msg
	if err := ref(model.KindDirectConnect, "virtual interface", m.VirtualInterface); err != nil {
		return nil, err
	}
	if m.Status == nil {
		return nil, model.Invalidf("no status in the report")
	}
	// The edge's speaker caps a session at 100 prefixes (AWS's limit for a
	// private VIF); a report with more is not to be propagated.
	if n := len(m.Status.PrefixesReceived); n > 100 {
		return nil, model.Invalidf("the report names %d prefixes received; a private virtual interface takes at most 100", n)
	}
	edge := ""
	if c, ok := trust.CallerFrom(ctx); ok && !c.Admin && !c.Insecure {
		if c.Role != pki.RoleEdge {
			return nil, model.Preconditionf("only edges report virtual interface status")
		}
		edge = c.ID
	}
	if err := h.Store.SetDXVIFStatus(ctx, m.VirtualInterface, edge, m.Status); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ReportVirtualInterfaceStatusResponse{}), nil
}

// ListEdgeVirtualInterfaces answers an edge with the VIFs it serves. An
// edge asks for its own only.
func (h *DirectConnect) ListEdgeVirtualInterfaces(ctx context.Context, req *connect.Request[pb.ListEdgeVirtualInterfacesRequest]) (*connect.Response[pb.ListEdgeVirtualInterfacesResponse], error) {
	edge := req.Msg.Edge
	if c, ok := trust.CallerFrom(ctx); ok && !c.Insecure {
		if c.Role != pki.RoleEdge {
			return nil, model.Preconditionf("only edges list the virtual interfaces they serve")
		}
		if edge != "" && edge != c.ID {
			return nil, model.Deniedf("edge %s asked for the virtual interfaces of edge %s", c.ID, edge)
		}
		edge = c.ID
	}
	if edge == "" {
		return nil, model.Invalidf("no edge given")
	}
	vs, err := h.Store.ListEdgeDXVIFs(ctx, edge)
	if err != nil {
		return nil, err
	}
	out := &pb.ListEdgeVirtualInterfacesResponse{}
	for _, v := range vs {
		out.VirtualInterfaces = append(out.VirtualInterfaces, &pb.EdgeVirtualInterface{VirtualInterface: v.VIF, Port: v.Port, Announce: v.Announce})
	}
	return connect.NewResponse(out), nil
}
