package api

import (
	"context"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/apierr"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
)

// VPCs serves VpcService: VPCs, subnets, route tables, routes, peerings.
type VPCs struct {
	Store *store.Store
}

var _ openvpcv1connect.VpcServiceHandler = (*VPCs)(nil)

func (h *VPCs) CreateVpc(ctx context.Context, req *connect.Request[pb.CreateVpcRequest]) (*connect.Response[pb.CreateVpcResponse], error) {
	m := req.Msg
	if err := model.ValidateName(model.KindVPC, m.Name); err != nil {
		return nil, apierr.Wire(err)
	}
	cidr, err := vpcCIDR(m.Cidr)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	vpc, err := h.Store.CreateVPC(ctx, m.Name, cidr)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.CreateVpcResponse{Vpc: vpc}), nil
}

func (h *VPCs) GetVpc(ctx context.Context, req *connect.Request[pb.GetVpcRequest]) (*connect.Response[pb.GetVpcResponse], error) {
	if err := ref(model.KindVPC, "VPC", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	vpc, err := h.Store.GetVPC(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.GetVpcResponse{Vpc: vpc}), nil
}

func (h *VPCs) ListVpcs(ctx context.Context, _ *connect.Request[pb.ListVpcsRequest]) (*connect.Response[pb.ListVpcsResponse], error) {
	vs, err := h.Store.ListVPCs(ctx)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ListVpcsResponse{Vpcs: vs}), nil
}

func (h *VPCs) DeleteVpc(ctx context.Context, req *connect.Request[pb.DeleteVpcRequest]) (*connect.Response[pb.DeleteVpcResponse], error) {
	if err := ref(model.KindVPC, "VPC", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := h.Store.DeleteVPC(ctx, req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.DeleteVpcResponse{}), nil
}

func (h *VPCs) CreateSubnet(ctx context.Context, req *connect.Request[pb.CreateSubnetRequest]) (*connect.Response[pb.CreateSubnetResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := optionalName(model.KindSubnet, m.Name); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := optionalRef(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, apierr.Wire(err)
	}
	cidr, err := subnetCIDR(m.Cidr)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	sn, err := h.Store.CreateSubnet(ctx, m.Vpc, cidr, m.Name, m.RouteTable)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.CreateSubnetResponse{Subnet: sn}), nil
}

func (h *VPCs) GetSubnet(ctx context.Context, req *connect.Request[pb.GetSubnetRequest]) (*connect.Response[pb.GetSubnetResponse], error) {
	if err := ref(model.KindSubnet, "subnet", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	sn, err := h.Store.GetSubnet(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.GetSubnetResponse{Subnet: sn}), nil
}

func (h *VPCs) ListSubnets(ctx context.Context, req *connect.Request[pb.ListSubnetsRequest]) (*connect.Response[pb.ListSubnetsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	sns, err := h.Store.ListSubnets(ctx, vpcID)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ListSubnetsResponse{Subnets: sns}), nil
}

// vpcFilter resolves an optional VPC filter to an id.
func (h *VPCs) vpcFilter(ctx context.Context, vpcRef string) (string, error) {
	if vpcRef == "" {
		return "", nil
	}
	if err := ref(model.KindVPC, "VPC", vpcRef); err != nil {
		return "", err
	}
	vpc, err := h.Store.GetVPC(ctx, vpcRef)
	if err != nil {
		return "", err
	}
	return vpc.Id, nil
}

func (h *VPCs) DeleteSubnet(ctx context.Context, req *connect.Request[pb.DeleteSubnetRequest]) (*connect.Response[pb.DeleteSubnetResponse], error) {
	if err := ref(model.KindSubnet, "subnet", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := h.Store.DeleteSubnet(ctx, req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.DeleteSubnetResponse{}), nil
}

func (h *VPCs) CreateRouteTable(ctx context.Context, req *connect.Request[pb.CreateRouteTableRequest]) (*connect.Response[pb.CreateRouteTableResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := optionalName(model.KindRouteTable, m.Name); err != nil {
		return nil, apierr.Wire(err)
	}
	rtb, err := h.Store.CreateRouteTable(ctx, m.Vpc, m.Name)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.CreateRouteTableResponse{RouteTable: rtb}), nil
}

func (h *VPCs) GetRouteTable(ctx context.Context, req *connect.Request[pb.GetRouteTableRequest]) (*connect.Response[pb.GetRouteTableResponse], error) {
	if err := ref(model.KindRouteTable, "route table", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	rtb, err := h.Store.GetRouteTable(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.GetRouteTableResponse{RouteTable: rtb}), nil
}

func (h *VPCs) ListRouteTables(ctx context.Context, req *connect.Request[pb.ListRouteTablesRequest]) (*connect.Response[pb.ListRouteTablesResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	rtbs, err := h.Store.ListRouteTables(ctx, vpcID)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ListRouteTablesResponse{RouteTables: rtbs}), nil
}

func (h *VPCs) DeleteRouteTable(ctx context.Context, req *connect.Request[pb.DeleteRouteTableRequest]) (*connect.Response[pb.DeleteRouteTableResponse], error) {
	if err := ref(model.KindRouteTable, "route table", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := h.Store.DeleteRouteTable(ctx, req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.DeleteRouteTableResponse{}), nil
}

func (h *VPCs) CreateRoute(ctx context.Context, req *connect.Request[pb.CreateRouteRequest]) (*connect.Response[pb.CreateRouteResponse], error) {
	m := req.Msg
	if err := ref(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, apierr.Wire(err)
	}
	dest, err := routeDest(m.DestinationCidr)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	rtb, err := h.Store.CreateRoute(ctx, m.RouteTable, dest, m.Target)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.CreateRouteResponse{RouteTable: rtb}), nil
}

func (h *VPCs) DeleteRoute(ctx context.Context, req *connect.Request[pb.DeleteRouteRequest]) (*connect.Response[pb.DeleteRouteResponse], error) {
	m := req.Msg
	if err := ref(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, apierr.Wire(err)
	}
	dest, err := routeDest(m.DestinationCidr)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	rtb, err := h.Store.DeleteRoute(ctx, m.RouteTable, dest)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.DeleteRouteResponse{RouteTable: rtb}), nil
}

func (h *VPCs) CreatePeering(ctx context.Context, req *connect.Request[pb.CreatePeeringRequest]) (*connect.Response[pb.CreatePeeringResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := ref(model.KindVPC, "peer VPC", m.PeerVpc); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := optionalName(model.KindPeering, m.Name); err != nil {
		return nil, apierr.Wire(err)
	}
	p, err := h.Store.CreatePeering(ctx, m.Vpc, m.PeerVpc, m.Name)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.CreatePeeringResponse{Peering: p}), nil
}

func (h *VPCs) AcceptPeering(ctx context.Context, req *connect.Request[pb.AcceptPeeringRequest]) (*connect.Response[pb.AcceptPeeringResponse], error) {
	if err := ref(model.KindPeering, "peering", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	p, err := h.Store.AcceptPeering(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.AcceptPeeringResponse{Peering: p}), nil
}

func (h *VPCs) GetPeering(ctx context.Context, req *connect.Request[pb.GetPeeringRequest]) (*connect.Response[pb.GetPeeringResponse], error) {
	if err := ref(model.KindPeering, "peering", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	p, err := h.Store.GetPeering(ctx, req.Msg.Ref)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.GetPeeringResponse{Peering: p}), nil
}

func (h *VPCs) ListPeerings(ctx context.Context, req *connect.Request[pb.ListPeeringsRequest]) (*connect.Response[pb.ListPeeringsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	ps, err := h.Store.ListPeerings(ctx, vpcID)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.ListPeeringsResponse{Peerings: ps}), nil
}

func (h *VPCs) DeletePeering(ctx context.Context, req *connect.Request[pb.DeletePeeringRequest]) (*connect.Response[pb.DeletePeeringResponse], error) {
	if err := ref(model.KindPeering, "peering", req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	if err := h.Store.DeletePeering(ctx, req.Msg.Ref); err != nil {
		return nil, apierr.Wire(err)
	}
	return connect.NewResponse(&pb.DeletePeeringResponse{}), nil
}
