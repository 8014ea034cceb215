package node

import (
	"context"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/packet"
)

func (s nodeAPI) Flows(_ context.Context, _ *connect.Request[pb.FlowsRequest]) (*connect.Response[pb.FlowsResponse], error) {
	o := s.r.Observed
	out := &pb.FlowsResponse{}
	if o == nil {
		return connect.NewResponse(out), nil
	}
	for _, f := range o.FlowList() {
		out.Flows = append(out.Flows, FlowRecord(s.n.HostID, f))
	}
	return connect.NewResponse(out), nil
}

// FlowRecord is f as the API shows it.
func FlowRecord(host string, f datapath.Flow) *pb.FlowRecord {
	return &pb.FlowRecord{
		HostId: host, Direction: f.Direction.String(), Vni: f.VNI, Protocol: protoName(f.Proto),
		Src: f.Src.String(), Dst: f.Dst.String(), SrcPort: uint32(f.SrcPort), DstPort: uint32(f.DstPort),
		Verdict: f.Verdict.String(), Packets: f.Packets, Bytes: f.Bytes,
		FirstSeen: timestamppb.New(f.First), LastSeen: timestamppb.New(f.Last),
	}
}

func protoName(p uint8) string {
	switch p {
	case packet.ProtoTCP:
		return "tcp"
	case packet.ProtoUDP:
		return "udp"
	case packet.ProtoICMP:
		return "icmp"
	}
	return strconv.Itoa(int(p))
}
