package main

import (
	"strings"
	"testing"
)

type flowLogJ struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	VpcID       string `json:"vpcId"`
	SubnetID    string `json:"subnetId"`
	InstanceID  string `json:"instanceId"`
	EniID       string `json:"eniId"`
	TrafficType string `json:"trafficType"`
	Destination string `json:"destination"`
	Interval    uint32 `json:"intervalSeconds"`
}

// TestFlowLogsCLI drives flow logs through the binary: one per scope,
// get by name or id, list by VPC, every refusal with its code and what to
// fix, delete, and the flow logs that go with the instance, subnet and
// VPC they cover.
func TestFlowLogsCLI(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "blue", "--cidr", "10.1.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	inst := okJSON[instSGJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "web", "--host", "host-a")
	red := okJSON[vpcDefaultsJ](t, s, "vpc", "get", "red")
	dir := t.TempDir()

	byInst := okJSON[flowLogJ](t, s, "flow-log", "create", "--instance", "web", "--traffic-type", "accept", "--destination", "file:"+dir+"/web.log", "--interval", "1s", "--name", "web-log")
	if !strings.HasPrefix(byInst.ID, "fl-") || byInst.InstanceID != inst.ID || !strings.HasPrefix(byInst.EniID, "eni-") || byInst.VpcID != red.ID ||
		byInst.TrafficType != "accept" || byInst.Destination != "file:"+dir+"/web.log" || byInst.Interval != 1 {
		t.Fatalf("flow-log create --instance = %+v", byInst)
	}
	bySubnet := okJSON[flowLogJ](t, s, "flow-log", "create", "--subnet", "red-a", "--traffic-type", "REJECT", "--destination", "file:"+dir+"/a.log")
	if bySubnet.SubnetID == "" || bySubnet.Interval != 60 || bySubnet.TrafficType != "reject" {
		t.Fatalf("flow-log create --subnet = %+v: want the default interval of 60 s", bySubnet)
	}
	byVPC := okJSON[flowLogJ](t, s, "flow-log", "create", "--vpc", "red", "--traffic-type", "all", "--destination", "file:"+dir+"/all.log", "--interval", "10m")
	if byVPC.VpcID != red.ID || byVPC.SubnetID != "" || byVPC.InstanceID != "" || byVPC.Interval != 600 {
		t.Fatalf("flow-log create --vpc = %+v", byVPC)
	}
	for _, ref := range []string{"web-log", byInst.ID} {
		if got := okJSON[flowLogJ](t, s, "flow-log", "get", ref); got.ID != byInst.ID {
			t.Errorf("flow-log get %s = %+v", ref, got)
		}
	}
	out := s.ok(t, "flow-log", "list")
	for _, want := range []string{"ID", "RESOURCE", "TRAFFIC", "DESTINATION", "INTERVAL", inst.ID + " (" + byInst.EniID + ")", "accept", "reject", "all", "1s", "1m0s", "10m0s", "web-log"} {
		if !strings.Contains(out, want) {
			t.Errorf("flow-log list table lacks %q:\n%s", want, out)
		}
	}
	if l := okJSON[[]flowLogJ](t, s, "flow-log", "list", "--vpc", "red"); len(l) != 3 {
		t.Errorf("flow-log list --vpc red: %d flow logs, want 3", len(l))
	}
	if l := okJSON[[]flowLogJ](t, s, "flow-log", "list", "--vpc", "blue"); len(l) != 0 {
		t.Errorf("flow-log list --vpc blue: %+v, want none", l)
	}

	dest := "file:" + dir + "/x.log"
	for _, c := range []struct {
		code  string
		wants []string
		args  []string
	}{
		{"invalid_argument", []string{"exactly one", "--instance, --subnet or --vpc"}, []string{"--traffic-type", "all", "--destination", dest}},
		{"invalid_argument", []string{"exactly one"}, []string{"--vpc", "red", "--subnet", "red-a", "--traffic-type", "all", "--destination", dest}},
		{"invalid_argument", []string{`"dropped"`, "accept, reject or all"}, []string{"--vpc", "red", "--traffic-type", "dropped", "--destination", dest}},
		{"invalid_argument", []string{"only files", "file:/absolute/path"}, []string{"--vpc", "red", "--traffic-type", "all", "--destination", "s3://bucket/x"}},
		{"invalid_argument", []string{"must be absolute"}, []string{"--vpc", "red", "--traffic-type", "all", "--destination", "file:flows.log"}},
		{"invalid_argument", []string{"1s to 10m"}, []string{"--vpc", "red", "--traffic-type", "all", "--destination", dest, "--interval", "11m"}},
		{"", []string{"whole seconds"}, []string{"--vpc", "red", "--traffic-type", "all", "--destination", dest, "--interval", "500ms"}},
		{"not_found", []string{`"green"`}, []string{"--vpc", "green", "--traffic-type", "all", "--destination", dest}},
		{"not_found", []string{`"nope"`}, []string{"--instance", "nope", "--traffic-type", "all", "--destination", dest}},
		{"already_exists", []string{`"web-log"`, byInst.ID}, []string{"--vpc", "red", "--traffic-type", "all", "--destination", dest, "--name", "web-log"}},
		{"", []string{"traffic-type"}, []string{"--vpc", "red", "--destination", dest}},
	} {
		s.fail(t, c.code, c.wants, append([]string{"flow-log", "create"}, c.args...)...)
	}
	s.fail(t, "not_found", []string{"flow log"}, "flow-log", "get", "fl-0000000000000001")

	if out := s.ok(t, "flow-log", "delete", "web-log"); !strings.Contains(out, "deleted flow log web-log") {
		t.Errorf("flow-log delete said %q", out)
	}
	s.fail(t, "not_found", nil, "flow-log", "get", byInst.ID)
	// A flow log goes with what it covers (docs/operations.md says so).
	again := okJSON[flowLogJ](t, s, "flow-log", "create", "--instance", "web", "--traffic-type", "all", "--destination", dest)
	s.ok(t, "instance", "terminate", "web")
	s.fail(t, "not_found", nil, "flow-log", "get", again.ID)
	s.ok(t, "subnet", "delete", "red-a")
	s.fail(t, "not_found", nil, "flow-log", "get", bySubnet.ID)
	s.ok(t, "vpc", "delete", "red")
	if l := okJSON[[]flowLogJ](t, s, "flow-log", "list"); len(l) != 0 {
		t.Errorf("flow logs left after their VPC was deleted: %+v", l)
	}
}
