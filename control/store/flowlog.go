package store

import (
	"context"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Flow logs are kept at fl/<id>, with an index flowlogof/<scope>/<id> → name
// under the instance, subnet or VPC each covers. The index is not a ref/
// key: a flow log does not stand in the way of deleting what it covers;
// the delete takes the flow logs with it, in the same transaction.

func (s *Store) flowLogOfKey(scope, id string) string { return s.key("flowlogof", scope, id) }
func (s *Store) flowLogOfPrefix(scope string) string  { return s.key("flowlogof", scope) + "/" }

// FlowLogSpec is a flow log to create: exactly one scope (a name or id),
// what it keeps, and where it goes.
type FlowLogSpec struct {
	Name                  string
	Instance, Subnet, VPC string
	Traffic               pb.FlowLogTrafficType
	// Destination is file:/absolute/path.
	Destination string
	// IntervalSeconds is the aggregation window; 0 means the default.
	IntervalSeconds uint32
}

func (f FlowLogSpec) check() (FlowLogSpec, error) {
	n := 0
	for _, r := range []string{f.Instance, f.Subnet, f.VPC} {
		if r != "" {
			n++
		}
	}
	if n != 1 {
		return f, model.Invalidf("a flow log covers exactly one of an instance, a subnet or a VPC: give one of --instance, --subnet or --vpc")
	}
	if f.Traffic == pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_UNSPECIFIED || pb.FlowLogTrafficType_name[int32(f.Traffic)] == "" {
		return f, model.Invalidf("a flow log needs a traffic type: accept, reject or all")
	}
	path, err := model.ParseFlowLogDestination(f.Destination)
	if err != nil {
		return f, err
	}
	f.Destination = model.FlowLogFilePrefix + path
	if f.IntervalSeconds, err = model.CheckFlowLogInterval(f.IntervalSeconds); err != nil {
		return f, err
	}
	return f, nil
}

// CreateFlowLog creates a flow log of a live instance's ENI, a subnet or a
// VPC, in one transaction guarded by what it covers.
func (s *Store) CreateFlowLog(ctx context.Context, spec FlowLogSpec) (*pb.FlowLog, error) {
	spec, err := spec.check()
	if err != nil {
		return nil, err
	}
	var out *pb.FlowLog
	err = retry(ctx, "create flow log", func() error {
		fl := &pb.FlowLog{
			Id: model.NewID(model.KindFlowLog), Name: spec.Name, TrafficType: spec.Traffic,
			Destination: spec.Destination, IntervalSeconds: spec.IntervalSeconds, CreateTime: timestamppb.Now(),
		}
		var t txn
		scope, err := s.flowLogScope(ctx, spec, fl, &t)
		if err != nil {
			return err
		}
		if spec.Name != "" {
			t.absent(s.nameKey(model.KindFlowLog, spec.Name))
			t.put(s.nameKey(model.KindFlowLog, spec.Name), fl.Id)
		}
		t.putProto(s.resKey(model.KindFlowLog, fl.Id), fl)
		t.put(s.flowLogOfKey(scope, fl.Id), spec.Name)
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.nameFree(ctx, model.KindFlowLog, spec.Name); err != nil {
				return err
			}
			return errRetry // what it covers changed or went: read it afresh
		}
		out = fl
		return nil
	})
	return out, err
}

// flowLogScope resolves the spec's scope into fl, adds to t the condition
// that it still exists at commit, and returns its id.
func (s *Store) flowLogScope(ctx context.Context, spec FlowLogSpec, fl *pb.FlowLog, t *txn) (string, error) {
	switch {
	case spec.Instance != "":
		inst := new(pb.Instance)
		rev, err := s.load(ctx, model.KindInstance, spec.Instance, inst)
		if err != nil {
			return "", err
		}
		if inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED {
			return "", model.Preconditionf("instance %s is terminated; a flow log needs a live instance", inst.Id)
		}
		// Terminating rewrites the record: the flow log cannot slip in after.
		t.unchanged(s.resKey(model.KindInstance, inst.Id), rev)
		fl.VpcId, fl.InstanceId, fl.EniId = inst.VpcId, inst.Id, inst.EniId
		return inst.Id, nil
	case spec.Subnet != "":
		sn, err := s.GetSubnet(ctx, spec.Subnet)
		if err != nil {
			return "", err
		}
		t.present(s.resKey(model.KindSubnet, sn.Id))
		fl.VpcId, fl.SubnetId = sn.VpcId, sn.Id
		return sn.Id, nil
	default:
		vpc, err := s.GetVPC(ctx, spec.VPC)
		if err != nil {
			return "", err
		}
		t.present(s.resKey(model.KindVPC, vpc.Id))
		fl.VpcId = vpc.Id
		return vpc.Id, nil
	}
}

// flowLogScopeID is the instance, subnet or VPC a flow log is indexed under.
func flowLogScopeID(fl *pb.FlowLog) string {
	switch {
	case fl.InstanceId != "":
		return fl.InstanceId
	case fl.SubnetId != "":
		return fl.SubnetId
	}
	return fl.VpcId
}

// GetFlowLog reads a flow log by name or id.
func (s *Store) GetFlowLog(ctx context.Context, ref string) (*pb.FlowLog, error) {
	fl := new(pb.FlowLog)
	_, err := s.load(ctx, model.KindFlowLog, ref, fl)
	return fl, err
}

// ListFlowLogs lists flow logs, of one VPC when vpcID is set, by VPC then
// name.
func (s *Store) ListFlowLogs(ctx context.Context, vpcID string) ([]*pb.FlowLog, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindFlowLog))+"/", func() *pb.FlowLog { return new(pb.FlowLog) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(fl *pb.FlowLog) bool { return fl.VpcId != vpcID })
	}
	slices.SortFunc(all, func(a, b *pb.FlowLog) int {
		if a.VpcId != b.VpcId {
			return strings.Compare(a.VpcId, b.VpcId)
		}
		return compareNames(a.Name, a.Id, b.Name, b.Id)
	})
	return all, nil
}

// DeleteFlowLog deletes a flow log: hosts stop writing it.
func (s *Store) DeleteFlowLog(ctx context.Context, ref string) error {
	return retry(ctx, "delete flow log", func() error {
		fl := new(pb.FlowLog)
		rev, err := s.load(ctx, model.KindFlowLog, ref, fl)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindFlowLog, fl.Id), rev)
		t.del(s.resKey(model.KindFlowLog, fl.Id))
		if fl.Name != "" {
			t.del(s.nameKey(model.KindFlowLog, fl.Name))
		}
		t.del(s.flowLogOfKey(flowLogScopeID(fl), fl.Id))
		return s.commitOrRetry(ctx, &t)
	})
}

// dropFlowLogs adds to t the deletion of the flow logs that cover scope
// (an instance, subnet or VPC being deleted), on condition that none was
// created since they were listed: a concurrent create makes t fail and
// its caller read afresh.
func (s *Store) dropFlowLogs(ctx context.Context, scope string, t *txn) error {
	prefix := s.flowLogOfPrefix(scope)
	r, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return unavailable(err)
	}
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(prefix), "<", r.Header.Revision+1).WithPrefix())
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		id := k[strings.LastIndexByte(k, '/')+1:]
		t.del(k)
		t.del(s.resKey(model.KindFlowLog, id))
		if name := string(kv.Value); name != "" {
			t.del(s.nameKey(model.KindFlowLog, name))
		}
	}
	return nil
}
