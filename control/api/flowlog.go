package api

import (
	"context"
	"strings"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Flow logs: VpcService's record of the firewall's decisions.

// trafficTypes are AWS's traffic types as users write them.
var trafficTypes = map[string]pb.FlowLogTrafficType{
	"accept": pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ACCEPT,
	"reject": pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_REJECT,
	"all":    pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ALL,
}

func (h *VPCs) CreateFlowLog(ctx context.Context, req *connect.Request[pb.CreateFlowLogRequest]) (*connect.Response[pb.CreateFlowLogResponse], error) {
	m := req.Msg
	if err := optionalName(model.KindFlowLog, m.Name); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		k    model.Kind
		what string
		ref  string
	}{{model.KindInstance, "instance", m.Instance}, {model.KindSubnet, "subnet", m.Subnet}, {model.KindVPC, "VPC", m.Vpc}} {
		if err := optionalRef(r.k, r.what, r.ref); err != nil {
			return nil, err
		}
	}
	traffic, ok := trafficTypes[strings.ToLower(m.TrafficType)]
	if !ok {
		if m.TrafficType == "" {
			return nil, model.Invalidf("a flow log needs a traffic type: --traffic-type accept, reject or all")
		}
		return nil, model.Invalidf("traffic type %q: use accept, reject or all", m.TrafficType)
	}
	fl, err := h.Store.CreateFlowLog(ctx, store.FlowLogSpec{
		Name: m.Name, Instance: m.Instance, Subnet: m.Subnet, VPC: m.Vpc,
		Traffic: traffic, Destination: m.Destination, IntervalSeconds: m.IntervalSeconds,
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateFlowLogResponse{FlowLog: fl}), nil
}

func (h *VPCs) GetFlowLog(ctx context.Context, req *connect.Request[pb.GetFlowLogRequest]) (*connect.Response[pb.GetFlowLogResponse], error) {
	return byRef(ctx, model.KindFlowLog, req.Msg.Ref, h.Store.GetFlowLog, func(m *pb.FlowLog) *pb.GetFlowLogResponse {
		return &pb.GetFlowLogResponse{FlowLog: m}
	})
}

func (h *VPCs) ListFlowLogs(ctx context.Context, req *connect.Request[pb.ListFlowLogsRequest]) (*connect.Response[pb.ListFlowLogsResponse], error) {
	vpcID, err := h.vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	fls, err := h.Store.ListFlowLogs(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListFlowLogsResponse{FlowLogs: fls}), nil
}

func (h *VPCs) DeleteFlowLog(ctx context.Context, req *connect.Request[pb.DeleteFlowLogRequest]) (*connect.Response[pb.DeleteFlowLogResponse], error) {
	return remove[pb.DeleteFlowLogResponse](ctx, model.KindFlowLog, req.Msg.Ref, h.Store.DeleteFlowLog)
}
