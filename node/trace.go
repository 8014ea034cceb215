package node

import (
	"context"
	"fmt"
	"net/netip"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/packet"
)

// Trace explains a probe's way through this host's or edge's story.
func (s nodeAPI) Trace(_ context.Context, req *connect.Request[pb.TraceRequest]) (*connect.Response[pb.TraceResponse], error) {
	m := req.Msg
	if len(m.Payload) > 0 {
		o := s.r.Observed
		src, err := netip.ParseAddr(m.OuterSrc)
		if o == nil || err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("trace arrival from %q on %s: not a data plane, or not an address", m.OuterSrc, s.n.HostID))
		}
		steps, v, story := o.TraceArrival(src, m.Payload)
		return connect.NewResponse(&pb.TraceResponse{Story: story, Steps: stepsOf(steps), Verdict: v.String()}), nil
	}
	if s.r.Instances == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s runs no instances", s.n.HostID))
	}
	ip, err := netip.ParseAddr(m.InstanceIp)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("instance address %q: %v", m.InstanceIp, err))
	}
	inst, err := s.instance(m.Vni, m.InstanceIp)
	if err != nil {
		return nil, err
	}
	dst, err := netip.ParseAddr(m.Dst)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("trace destination %q: %v", m.Dst, err))
	}
	proto, ok := map[string]uint8{"": packet.ProtoTCP, "tcp": packet.ProtoTCP, "udp": packet.ProtoUDP, "icmp": packet.ProtoICMP}[m.Protocol]
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("protocol %q: use tcp, udp or icmp", m.Protocol))
	}
	src := ip
	if m.Source != "" {
		if src, err = netip.ParseAddr(m.Source); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("source %q: %v", m.Source, err))
		}
	}
	probe, err := datapath.Probe(proto, src, dst, uint16(m.Port))
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if m.Live {
		v, err := inst.SendTraced(probe, m.TraceId)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		return connect.NewResponse(&pb.TraceResponse{Story: "egress", Verdict: v.String()}), nil
	}
	r := inst.TraceEgress(probe)
	out := &pb.TraceResponse{Story: "egress", Steps: stepsOf(r.Steps), Verdict: r.Verdict.String(), Payload: r.Payload}
	if r.Verdict == datapath.Forwarded {
		out.NextHop = r.NextHop.String()
	}
	return connect.NewResponse(out), nil
}

// TraceReports lists this host's or edge's sightings of trace id.
func (s nodeAPI) TraceReports(_ context.Context, req *connect.Request[pb.TraceReportsRequest]) (*connect.Response[pb.TraceReportsResponse], error) {
	out := &pb.TraceReportsResponse{}
	if o := s.r.Observed; o != nil {
		for _, r := range o.TraceReports(req.Msg.TraceId) {
			out.Reports = append(out.Reports, &pb.TraceReport{Story: r.Story, Verdict: r.Verdict.String(), Time: timestamppb.New(r.At), Steps: stepsOf(r.Steps)})
		}
	}
	return connect.NewResponse(out), nil
}

func stepsOf(steps []datapath.Step) []*pb.TraceStep {
	out := make([]*pb.TraceStep, len(steps))
	for i, s := range steps {
		out[i] = &pb.TraceStep{Name: s.Name, Pass: s.Pass, Detail: s.Detail}
	}
	return out
}
