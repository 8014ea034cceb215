package api

import (
	"context"

	"connectrpc.com/connect"

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
		return nil, err
	}
	cidr, err := vpcCIDR(m.Cidr)
	if err != nil {
		return nil, err
	}
	vpc, err := h.Store.CreateVPC(ctx, m.Name, cidr)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateVpcResponse{Vpc: vpc}), nil
}

func (h *VPCs) GetVpc(ctx context.Context, req *connect.Request[pb.GetVpcRequest]) (*connect.Response[pb.GetVpcResponse], error) {
	return byRef(ctx, model.KindVPC, req.Msg.Ref, h.Store.GetVPC, func(m *pb.Vpc) *pb.GetVpcResponse { return &pb.GetVpcResponse{Vpc: m} })
}

func (h *VPCs) ListVpcs(ctx context.Context, _ *connect.Request[pb.ListVpcsRequest]) (*connect.Response[pb.ListVpcsResponse], error) {
	vs, err := h.Store.ListVPCs(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListVpcsResponse{Vpcs: vs}), nil
}

func (h *VPCs) DeleteVpc(ctx context.Context, req *connect.Request[pb.DeleteVpcRequest]) (*connect.Response[pb.DeleteVpcResponse], error) {
	return remove[pb.DeleteVpcResponse](ctx, model.KindVPC, req.Msg.Ref, h.Store.DeleteVPC)
}

func (h *VPCs) ModifyVpc(ctx context.Context, req *connect.Request[pb.ModifyVpcRequest]) (*connect.Response[pb.ModifyVpcResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Ref); err != nil {
		return nil, err
	}
	v, err := h.Store.ModifyVPC(ctx, m.Ref, m.EnableDnsSupport, m.EnableDnsHostnames)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ModifyVpcResponse{Vpc: v}), nil
}

func (h *VPCs) CreateSubnet(ctx context.Context, req *connect.Request[pb.CreateSubnetRequest]) (*connect.Response[pb.CreateSubnetResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	if err := optionalName(model.KindSubnet, m.Name); err != nil {
		return nil, err
	}
	if err := optionalRef(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, err
	}
	cidr, err := subnetCIDR(m.Cidr)
	if err != nil {
		return nil, err
	}
	sn, err := h.Store.CreateSubnet(ctx, m.Vpc, cidr, m.Name, m.RouteTable)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateSubnetResponse{Subnet: sn}), nil
}

func (h *VPCs) GetSubnet(ctx context.Context, req *connect.Request[pb.GetSubnetRequest]) (*connect.Response[pb.GetSubnetResponse], error) {
	return byRef(ctx, model.KindSubnet, req.Msg.Ref, h.Store.GetSubnet, func(m *pb.Subnet) *pb.GetSubnetResponse { return &pb.GetSubnetResponse{Subnet: m} })
}

func (h *VPCs) ListSubnets(ctx context.Context, req *connect.Request[pb.ListSubnetsRequest]) (*connect.Response[pb.ListSubnetsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	sns, err := h.Store.ListSubnets(ctx, vpcID)
	if err != nil {
		return nil, err
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
	return remove[pb.DeleteSubnetResponse](ctx, model.KindSubnet, req.Msg.Ref, h.Store.DeleteSubnet)
}

func (h *VPCs) AssociateRouteTable(ctx context.Context, req *connect.Request[pb.AssociateRouteTableRequest]) (*connect.Response[pb.AssociateRouteTableResponse], error) {
	m := req.Msg
	if err := ref(model.KindSubnet, "subnet", m.Subnet); err != nil {
		return nil, err
	}
	if err := ref(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, err
	}
	sn, err := h.Store.AssociateRouteTable(ctx, m.Subnet, m.RouteTable)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AssociateRouteTableResponse{Subnet: sn}), nil
}

func (h *VPCs) CreateRouteTable(ctx context.Context, req *connect.Request[pb.CreateRouteTableRequest]) (*connect.Response[pb.CreateRouteTableResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	if err := optionalName(model.KindRouteTable, m.Name); err != nil {
		return nil, err
	}
	rtb, err := h.Store.CreateRouteTable(ctx, m.Vpc, m.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateRouteTableResponse{RouteTable: rtb}), nil
}

func (h *VPCs) GetRouteTable(ctx context.Context, req *connect.Request[pb.GetRouteTableRequest]) (*connect.Response[pb.GetRouteTableResponse], error) {
	return byRef(ctx, model.KindRouteTable, req.Msg.Ref, h.Store.GetRouteTable, func(m *pb.RouteTable) *pb.GetRouteTableResponse { return &pb.GetRouteTableResponse{RouteTable: m} })
}

func (h *VPCs) ListRouteTables(ctx context.Context, req *connect.Request[pb.ListRouteTablesRequest]) (*connect.Response[pb.ListRouteTablesResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	rtbs, err := h.Store.ListRouteTables(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListRouteTablesResponse{RouteTables: rtbs}), nil
}

func (h *VPCs) DeleteRouteTable(ctx context.Context, req *connect.Request[pb.DeleteRouteTableRequest]) (*connect.Response[pb.DeleteRouteTableResponse], error) {
	return remove[pb.DeleteRouteTableResponse](ctx, model.KindRouteTable, req.Msg.Ref, h.Store.DeleteRouteTable)
}

func (h *VPCs) CreateRoute(ctx context.Context, req *connect.Request[pb.CreateRouteRequest]) (*connect.Response[pb.CreateRouteResponse], error) {
	m := req.Msg
	if err := ref(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, err
	}
	if m.DestinationPrefixListId != "" {
		if err := prefixListRoute(m.DestinationCidr, m.DestinationPrefixListId, m.Target); err != nil {
			return nil, err
		}
		rtb, err := h.Store.CreatePrefixListRoute(ctx, m.RouteTable, m.DestinationPrefixListId, m.Target)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&pb.CreateRouteResponse{RouteTable: rtb}), nil
	}
	dest, err := routeDest(m.DestinationCidr)
	if err != nil {
		return nil, err
	}
	rtb, err := h.Store.CreateRoute(ctx, m.RouteTable, dest, m.Target)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateRouteResponse{RouteTable: rtb}), nil
}

func (h *VPCs) DeleteRoute(ctx context.Context, req *connect.Request[pb.DeleteRouteRequest]) (*connect.Response[pb.DeleteRouteResponse], error) {
	m := req.Msg
	if err := ref(model.KindRouteTable, "route table", m.RouteTable); err != nil {
		return nil, err
	}
	if m.DestinationPrefixListId != "" {
		if err := ref(model.KindPrefixList, "prefix list", m.DestinationPrefixListId); err != nil {
			return nil, err
		}
		rtb, err := h.Store.DeletePrefixListRoute(ctx, m.RouteTable, m.DestinationPrefixListId)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&pb.DeleteRouteResponse{RouteTable: rtb}), nil
	}
	dest, err := routeDest(m.DestinationCidr)
	if err != nil {
		return nil, err
	}
	rtb, err := h.Store.DeleteRoute(ctx, m.RouteTable, dest)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeleteRouteResponse{RouteTable: rtb}), nil
}

func (h *VPCs) CreatePeering(ctx context.Context, req *connect.Request[pb.CreatePeeringRequest]) (*connect.Response[pb.CreatePeeringResponse], error) {
	m := req.Msg
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	if err := ref(model.KindVPC, "peer VPC", m.PeerVpc); err != nil {
		return nil, err
	}
	if err := optionalName(model.KindPeering, m.Name); err != nil {
		return nil, err
	}
	p, err := h.Store.CreatePeering(ctx, m.Vpc, m.PeerVpc, m.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreatePeeringResponse{Peering: p}), nil
}

func (h *VPCs) AcceptPeering(ctx context.Context, req *connect.Request[pb.AcceptPeeringRequest]) (*connect.Response[pb.AcceptPeeringResponse], error) {
	return byRef(ctx, model.KindPeering, req.Msg.Ref, h.Store.AcceptPeering, func(m *pb.Peering) *pb.AcceptPeeringResponse { return &pb.AcceptPeeringResponse{Peering: m} })
}

func (h *VPCs) ModifyPeering(ctx context.Context, req *connect.Request[pb.ModifyPeeringRequest]) (*connect.Response[pb.ModifyPeeringResponse], error) {
	if err := ref(model.KindPeering, "peering", req.Msg.Ref); err != nil {
		return nil, err
	}
	p, err := h.Store.ModifyPeering(ctx, req.Msg.Ref, req.Msg.AllowRemoteDns)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ModifyPeeringResponse{Peering: p}), nil
}

func (h *VPCs) GetPeering(ctx context.Context, req *connect.Request[pb.GetPeeringRequest]) (*connect.Response[pb.GetPeeringResponse], error) {
	return byRef(ctx, model.KindPeering, req.Msg.Ref, h.Store.GetPeering, func(m *pb.Peering) *pb.GetPeeringResponse { return &pb.GetPeeringResponse{Peering: m} })
}

func (h *VPCs) ListPeerings(ctx context.Context, req *connect.Request[pb.ListPeeringsRequest]) (*connect.Response[pb.ListPeeringsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	ps, err := h.Store.ListPeerings(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListPeeringsResponse{Peerings: ps}), nil
}

func (h *VPCs) DeletePeering(ctx context.Context, req *connect.Request[pb.DeletePeeringRequest]) (*connect.Response[pb.DeletePeeringResponse], error) {
	return remove[pb.DeletePeeringResponse](ctx, model.KindPeering, req.Msg.Ref, h.Store.DeletePeering)
}
