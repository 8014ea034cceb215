package api

import (
	"context"
	"net/netip"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/apierr"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Internet gateways and Elastic IPs: what the edges (Blackfoot) serve.

func (h *VPCs) CreateInternetGateway(ctx context.Context, req *connect.Request[pb.CreateInternetGatewayRequest]) (*connect.Response[pb.CreateInternetGatewayResponse], error) {
	if err := optionalName(model.KindIGW, req.Msg.Name); err != nil {
		return nil, apierr.Wire(err)
	}
	g, err := h.Store.CreateInternetGateway(ctx, req.Msg.Name)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.CreateInternetGatewayResponse{InternetGateway: g}), nil
}

func (h *VPCs) AttachInternetGateway(ctx context.Context, req *connect.Request[pb.AttachInternetGatewayRequest]) (*connect.Response[pb.AttachInternetGatewayResponse], error) {
	if err := ref(model.KindVPC, "VPC", req.Msg.Vpc); err != nil {
		return nil, apierr.Wire(err)
	}
	attach := func(ctx context.Context, r string) (*pb.InternetGateway, error) {
		return h.Store.AttachInternetGateway(ctx, r, req.Msg.Vpc)
	}
	return byRef(ctx, model.KindIGW, req.Msg.Ref, attach, func(g *pb.InternetGateway) *pb.AttachInternetGatewayResponse {
		return &pb.AttachInternetGatewayResponse{InternetGateway: g}
	})
}

func (h *VPCs) DetachInternetGateway(ctx context.Context, req *connect.Request[pb.DetachInternetGatewayRequest]) (*connect.Response[pb.DetachInternetGatewayResponse], error) {
	return byRef(ctx, model.KindIGW, req.Msg.Ref, h.Store.DetachInternetGateway, func(g *pb.InternetGateway) *pb.DetachInternetGatewayResponse {
		return &pb.DetachInternetGatewayResponse{InternetGateway: g}
	})
}

func (h *VPCs) DeleteInternetGateway(ctx context.Context, req *connect.Request[pb.DeleteInternetGatewayRequest]) (*connect.Response[pb.DeleteInternetGatewayResponse], error) {
	return remove[pb.DeleteInternetGatewayResponse](ctx, model.KindIGW, req.Msg.Ref, h.Store.DeleteInternetGateway)
}

func (h *VPCs) ListInternetGateways(ctx context.Context, _ *connect.Request[pb.ListInternetGatewaysRequest]) (*connect.Response[pb.ListInternetGatewaysResponse], error) {
	gs, err := h.Store.ListInternetGateways(ctx)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ListInternetGatewaysResponse{InternetGateways: gs}), nil
}

func (h *VPCs) AllocateAddress(ctx context.Context, req *connect.Request[pb.AllocateAddressRequest]) (*connect.Response[pb.AllocateAddressResponse], error) {
	if err := optionalName(model.KindEIP, req.Msg.Name); err != nil {
		return nil, apierr.Wire(err)
	}
	e, err := h.Store.AllocateAddress(ctx, req.Msg.Name)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.AllocateAddressResponse{Address: e}), nil
}

// eipRef validates an Elastic IP reference: an allocation id, a name or
// the public address itself.
func eipRef(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	return ref(model.KindEIP, "Elastic IP", s)
}

func (h *VPCs) AssociateAddress(ctx context.Context, req *connect.Request[pb.AssociateAddressRequest]) (*connect.Response[pb.AssociateAddressResponse], error) {
	if err := eipRef(req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := ref(model.KindInstance, "instance", req.Msg.Instance); err != nil {
		return nil, apierr.Wire(err)
	}
	e, err := h.Store.AssociateAddress(ctx, req.Msg.Ref, req.Msg.Instance)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.AssociateAddressResponse{Address: e}), nil
}

func (h *VPCs) DisassociateAddress(ctx context.Context, req *connect.Request[pb.DisassociateAddressRequest]) (*connect.Response[pb.DisassociateAddressResponse], error) {
	if err := eipRef(req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	e, err := h.Store.DisassociateAddress(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.DisassociateAddressResponse{Address: e}), nil
}

func (h *VPCs) ReleaseAddress(ctx context.Context, req *connect.Request[pb.ReleaseAddressRequest]) (*connect.Response[pb.ReleaseAddressResponse], error) {
	if err := eipRef(req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := h.Store.ReleaseAddress(ctx, req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ReleaseAddressResponse{}), nil
}

func (h *VPCs) ListAddresses(ctx context.Context, _ *connect.Request[pb.ListAddressesRequest]) (*connect.Response[pb.ListAddressesResponse], error) {
	es, err := h.Store.ListAddresses(ctx)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ListAddressesResponse{Addresses: es}), nil
}

func (h *VPCs) GetInternetGateway(ctx context.Context, req *connect.Request[pb.GetInternetGatewayRequest]) (*connect.Response[pb.GetInternetGatewayResponse], error) {
	return byRef(ctx, model.KindIGW, req.Msg.Ref, h.Store.GetInternetGateway, func(g *pb.InternetGateway) *pb.GetInternetGatewayResponse {
		return &pb.GetInternetGatewayResponse{InternetGateway: g}
	})
}

func (h *VPCs) GetAddress(ctx context.Context, req *connect.Request[pb.GetAddressRequest]) (*connect.Response[pb.GetAddressResponse], error) {
	if err := eipRef(req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	e, err := h.Store.GetAddress(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.GetAddressResponse{Address: e}), nil
}
