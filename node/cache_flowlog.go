package node

import (
	"fmt"
	"path/filepath"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
)

var flowTraffic = map[pb.FlowLogTrafficType]tables.FlowTraffic{
	pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ALL:    tables.FlowAll,
	pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ACCEPT: tables.FlowAccept,
	pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_REJECT: tables.FlowReject,
}

// flowLogsFromFacts reads the VPC's flow logs.
func flowLogsFromFacts(f *pb.VpcFacts, v *tables.VPC) error {
	for _, fl := range f.FlowLogs {
		id, ok := model.ParseID(model.KindFlowLog, fl.Id)
		if !ok {
			return fmt.Errorf("bad flow log id %q", fl.Id)
		}
		t := tables.FlowLog{ID: id, Path: fl.Path, Interval: time.Duration(fl.IntervalSeconds) * time.Second}
		if t.Traffic, ok = flowTraffic[fl.TrafficType]; !ok {
			return fmt.Errorf("flow log %s: unknown traffic type %v", fl.Id, fl.TrafficType)
		}
		if !filepath.IsAbs(fl.Path) {
			return fmt.Errorf("flow log %s: path %q is not absolute", fl.Id, fl.Path)
		}
		if fl.EniId != "" {
			if t.ENI, ok = model.ParseID(model.KindENI, fl.EniId); !ok {
				return fmt.Errorf("flow log %s: bad ENI id %q", fl.Id, fl.EniId)
			}
		}
		if fl.SubnetId != "" {
			if t.Subnet, ok = model.ParseID(model.KindSubnet, fl.SubnetId); !ok {
				return fmt.Errorf("flow log %s: bad subnet id %q", fl.Id, fl.SubnetId)
			}
		}
		v.FlowLogs = append(v.FlowLogs, t)
	}
	return nil
}

// flowLogFacts reads a VPC's flow logs back from the tables in the
// Mapping Service's terms, for State().
func flowLogFacts(v *tables.VPC, f *pb.VpcFacts) {
	for _, fl := range v.FlowLogs {
		p := &pb.FlowLogFacts{Id: model.FormatID(model.KindFlowLog, fl.ID), Path: fl.Path, IntervalSeconds: uint32(fl.Interval / time.Second)}
		for pt, tt := range flowTraffic {
			if tt == fl.Traffic {
				p.TrafficType = pt
			}
		}
		if fl.ENI != 0 {
			p.EniId = model.FormatID(model.KindENI, fl.ENI)
		}
		if fl.Subnet != 0 {
			p.SubnetId = model.FormatID(model.KindSubnet, fl.Subnet)
		}
		f.FlowLogs = append(f.FlowLogs, p)
	}
}
