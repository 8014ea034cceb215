package store

import (
	"slices"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

const accept = pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ACCEPT

// TestFlowLogLifecycle: flow logs of an instance, a subnet and a VPC are
// created with their scope resolved, listed, read by name or id, refused
// with what to fix, and deleted.
func TestFlowLogLifecycle(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	inst, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	byInst, err := f.s.CreateFlowLog(c, FlowLogSpec{Name: "web-log", Instance: "web", Traffic: accept, Destination: "file:/tmp/x/../flows.log"})
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsID(model.KindFlowLog, byInst.Id) || byInst.InstanceId != inst.Id || byInst.EniId != inst.EniId || byInst.VpcId != f.vpc.Id ||
		byInst.SubnetId != "" || byInst.Destination != "file:/tmp/flows.log" || byInst.IntervalSeconds != 60 {
		t.Fatalf("instance flow log %v", byInst)
	}
	bySubnet, err := f.s.CreateFlowLog(c, FlowLogSpec{Subnet: f.subnet.Id, Traffic: pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ALL, Destination: "file:/tmp/a.log", IntervalSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if bySubnet.SubnetId != f.subnet.Id || bySubnet.VpcId != f.vpc.Id || bySubnet.InstanceId != "" || bySubnet.IntervalSeconds != 1 {
		t.Fatalf("subnet flow log %v", bySubnet)
	}
	byVPC, err := f.s.CreateFlowLog(c, FlowLogSpec{VPC: "red", Traffic: pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_REJECT, Destination: "file:/tmp/b.log", IntervalSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	if byVPC.VpcId != f.vpc.Id || byVPC.SubnetId != "" || byVPC.InstanceId != "" {
		t.Fatalf("VPC flow log %v", byVPC)
	}
	for _, ref := range []string{"web-log", byInst.Id} {
		if got, err := f.s.GetFlowLog(c, ref); err != nil || got.Id != byInst.Id {
			t.Fatalf("GetFlowLog(%q) = %v, %v", ref, got, err)
		}
	}
	all, err := f.s.ListFlowLogs(c, f.vpc.Id)
	if err != nil || len(all) != 3 {
		t.Fatalf("ListFlowLogs: %v, %v", all, err)
	}
	if other, err := f.s.ListFlowLogs(c, "vpc-0000000000000001"); err != nil || len(other) != 0 {
		t.Fatalf("flow logs of another VPC: %v, %v", other, err)
	}

	for _, tc := range []struct {
		spec  FlowLogSpec
		kind  error
		parts []string
	}{
		{FlowLogSpec{Traffic: accept, Destination: "file:/tmp/x"}, model.ErrInvalid, []string{"--instance, --subnet or --vpc"}},
		{FlowLogSpec{VPC: "red", Subnet: "red-a", Traffic: accept, Destination: "file:/tmp/x"}, model.ErrInvalid, []string{"exactly one"}},
		{FlowLogSpec{VPC: "red", Destination: "file:/tmp/x"}, model.ErrInvalid, []string{"accept, reject or all"}},
		{FlowLogSpec{VPC: "red", Traffic: accept}, model.ErrInvalid, []string{"--destination file:"}},
		{FlowLogSpec{VPC: "red", Traffic: accept, Destination: "s3://bucket"}, model.ErrInvalid, []string{"only files", "file:/absolute/path"}},
		{FlowLogSpec{VPC: "red", Traffic: accept, Destination: "file:flows.log"}, model.ErrInvalid, []string{"must be absolute"}},
		{FlowLogSpec{VPC: "red", Traffic: accept, Destination: "file:/tmp/x", IntervalSeconds: 601}, model.ErrInvalid, []string{"601s", "1s to 10m"}},
		{FlowLogSpec{VPC: "blue", Traffic: accept, Destination: "file:/tmp/x"}, model.ErrNotFound, []string{"blue"}},
		{FlowLogSpec{Name: "web-log", VPC: "red", Traffic: accept, Destination: "file:/tmp/x"}, model.ErrExists, []string{"web-log", byInst.Id}},
	} {
		_, err := f.s.CreateFlowLog(c, tc.spec)
		wantKind(t, err, tc.kind, tc.parts...)
	}

	if err := f.s.DeleteFlowLog(c, "web-log"); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.GetFlowLog(c, byInst.Id)
	wantKind(t, err, model.ErrNotFound)
	// The name is free again.
	if _, err := f.s.CreateFlowLog(c, FlowLogSpec{Name: "web-log", Instance: inst.Id, Traffic: accept, Destination: "file:/tmp/x"}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.s.DeleteFlowLog(c, byInst.Id), model.ErrNotFound)
}

// TestFlowLogsGoWithWhatTheyCover: terminating an instance, deleting a
// subnet or a VPC deletes their flow logs in the same transaction — names
// and index too, so nothing is left behind — and a terminated instance
// takes no new flow log.
func TestFlowLogsGoWithWhatTheyCover(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	inst, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, spec FlowLogSpec) *pb.FlowLog {
		t.Helper()
		spec.Name, spec.Traffic, spec.Destination = name, accept, "file:/tmp/"+name
		fl, err := f.s.CreateFlowLog(c, spec)
		if err != nil {
			t.Fatal(err)
		}
		return fl
	}
	ofInst := mk("of-inst", FlowLogSpec{Instance: inst.Id})
	ofSubnet := mk("of-subnet", FlowLogSpec{Subnet: "red-a"})
	ofVPC := mk("of-vpc", FlowLogSpec{VPC: "red"})
	ids := func() []string {
		all, err := f.s.ListFlowLogs(c, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, fl := range all {
			out = append(out, fl.Id)
		}
		slices.Sort(out)
		return out
	}
	gone := func(fl *pb.FlowLog) {
		t.Helper()
		if slices.Contains(ids(), fl.Id) {
			t.Fatalf("flow log %s (%s) outlived what it covers", fl.Id, fl.Name)
		}
		if err := f.s.nameFree(c, model.KindFlowLog, fl.Name); err != nil {
			t.Fatalf("the name of %s is still taken: %v", fl.Id, err)
		}
	}
	if _, err := f.s.TerminateInstance(c, inst.Id); err != nil {
		t.Fatal(err)
	}
	gone(ofInst)
	_, err = f.s.CreateFlowLog(c, FlowLogSpec{Instance: inst.Id, Traffic: accept, Destination: "file:/tmp/x"})
	wantKind(t, err, model.ErrPrecondition, "terminated")
	if err := f.s.DeleteSubnet(c, "red-a"); err != nil {
		t.Fatal(err)
	}
	gone(ofSubnet)
	if got := ids(); !slices.Equal(got, []string{ofVPC.Id}) {
		t.Fatalf("flow logs %v, want only the VPC's", got)
	}
	if err := f.s.DeleteVPC(c, "red"); err != nil {
		t.Fatal(err)
	}
	gone(ofVPC)
	r, err := f.s.c.Get(c, f.s.key("flowlogof")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 0 {
		t.Fatalf("%d index keys left (%v)", r.Count, err)
	}
}

// TestFlowLogCreateRacesDelete: creating flow logs of a subnet while it
// is deleted leaves none dangling, whichever wins each race.
func TestFlowLogCreateRacesDelete(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	for round := range 8 {
		vpcName := "v" + string(rune('a'+round))
		if _, err := s.CreateVPC(c, vpcName, mustPrefix("10.0.0.0/16")); err != nil {
			t.Fatal(err)
		}
		sn, err := s.CreateSubnet(c, vpcName, mustPrefix("10.0.1.0/24"), "", "")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = s.CreateFlowLog(c, FlowLogSpec{Subnet: sn.Id, Traffic: accept, Destination: "file:/tmp/x"})
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.DeleteSubnet(c, sn.Id); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		all, err := s.ListFlowLogs(c, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range all {
			if fl.SubnetId == sn.Id {
				t.Fatalf("round %d: flow log %s of deleted subnet %s", round, fl.Id, sn.Id)
			}
		}
	}
}
