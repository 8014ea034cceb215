package mapping_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestFlowLogsReachHosts: a flow log is a fact of its VPC — every host in
// the VPC's scope holds it (scope, traffic type, path, interval), a host
// outside the VPC does not, and deleting it, or terminating the instance
// it covers, takes it off the hosts.
func TestFlowLogsReachHosts(t *testing.T) {
	w := newWorld(t)
	ctx, vpc := w.c.Ctx(), w.api.VPC
	url := w.api.URL
	a, b := w.c.AddHost(url, "host-a", addr(1)), w.c.AddHost(url, "host-b", addr(2))
	red := w.run(t, "red-a", "host-a")
	w.run(t, "yellow-a", "host-b")
	w.c.Converge(w.api, a, b)

	create := func(req *pb.CreateFlowLogRequest) *pb.FlowLog {
		t.Helper()
		r, err := vpc.CreateFlowLog(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.FlowLog
	}
	ofInst := create(&pb.CreateFlowLogRequest{Instance: red.Id, TrafficType: "all", Destination: "file:/tmp/red.log", IntervalSeconds: 1})
	ofVPC := create(&pb.CreateFlowLogRequest{Vpc: "red", TrafficType: "reject", Destination: "file:/tmp/all.log"})
	w.c.Converge(w.api, a, b)
	want := []*pb.FlowLogFacts{
		{Id: ofInst.Id, EniId: red.EniId, TrafficType: pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_ALL, Path: "/tmp/red.log", IntervalSeconds: 1},
		{Id: ofVPC.Id, TrafficType: pb.FlowLogTrafficType_FLOW_LOG_TRAFFIC_TYPE_REJECT, Path: "/tmp/all.log", IntervalSeconds: 60},
	}
	if want[1].Id < want[0].Id {
		want[0], want[1] = want[1], want[0]
	}
	if got := facts(t, a, w.red.Vni).FlowLogs; !equalFacts(got, want) {
		t.Fatalf("red's flow logs on host-a:\n got  %v\n want %v", got, want)
	}
	if got := facts(t, b, w.yellow.Vni).FlowLogs; len(got) != 0 {
		t.Fatalf("yellow's flow logs on host-b: %v, want none", got)
	}
	if _, ok := b.Mirror.State().VPCs[w.red.Vni]; ok {
		t.Fatal("host-b holds red, which it has no instance of")
	}

	if _, err := vpc.DeleteFlowLog(ctx, connect.NewRequest(&pb.DeleteFlowLogRequest{Ref: ofVPC.Id})); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.Inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: red.Id})); err != nil {
		t.Fatal(err)
	}
	w.run(t, "red-a", "host-a") // host-a keeps red in scope
	w.c.Converge(w.api, a, b)
	deadline := time.Now().Add(10 * time.Second)
	for len(facts(t, a, w.red.Vni).FlowLogs) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("red's flow logs on host-a after deletes: %v", facts(t, a, w.red.Vni).FlowLogs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equalFacts(a, b []*pb.FlowLogFacts) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
