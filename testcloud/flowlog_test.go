package testcloud_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/model"
)

// flowLine is one line of a flow log, AWS's version 2, by field.
type flowLine struct {
	fields []string
}

func (l flowLine) eni() string     { return l.fields[2] }
func (l flowLine) src() string     { return l.fields[3] }
func (l flowLine) dst() string     { return l.fields[4] }
func (l flowLine) dstPort() string { return l.fields[6] }
func (l flowLine) proto() string   { return l.fields[7] }
func (l flowLine) action() string  { return l.fields[12] }

// readFlowLog reads a flow log file; every line must have AWS's 14
// fields, version 2, the default account and status OK.
func readFlowLog(t *testing.T, path string) []flowLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []flowLine
	for _, s := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if s == "" {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 14 || f[0] != "2" || f[1] != "000000000000" || f[13] != "OK" || !strings.HasPrefix(f[2], "eni-") {
			t.Fatalf("flow log line %q: want 14 fields, version 2, account 000000000000, status OK", s)
		}
		out = append(out, flowLine{f})
	}
	return out
}

// dialFails connects to ip:port from inside an instance and wants no
// answer: a port no rule allows drops the SYN, as on AWS.
func dialFails(t *testing.T, ns *nic.Netstack, ip, port string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if c, err := ns.Net.DialContext(ctx, "tcp", net.JoinHostPort(ip, port)); err == nil {
		c.Close()
		t.Fatalf("connected to %s:%s; no rule allows it", ip, port)
	}
}

// TestFlowLogs: a flow log of an instance, written every second by the
// host of its ENI, holds an ACCEPT line for the connection its group
// allows and a REJECT line for the port no rule allows, with the ENI,
// addresses, ports and protocol of each; a VPC's flow log with traffic
// type accept is appended to by both hosts in one file, whole lines only,
// no REJECT among them; deleting a flow log stops its lines.
func TestFlowLogs(t *testing.T) {
	s := newScene(t)
	ctx, vpc := s.c.Ctx(), s.api.VPC
	if _, err := vpc.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "red", Name: "web"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "web", Rule: &pb.SecurityGroupRuleSpec{
		Match: &pb.RuleMatch{Protocol: "tcp", Port: "80"}, Group: s.red.DefaultSecurityGroupId,
	}})); err != nil {
		t.Fatal(err)
	}
	web, webNS := s.runIn(t, "red-b", s.b, s.red, "web")
	client, clientNS := s.run(t, "red-a", s.a, s.red)
	serveHTTP(t, webNS, "web")

	dir := t.TempDir()
	webLog, vpcLog := filepath.Join(dir, "web.log"), filepath.Join(dir, "red.log")
	create := func(req *pb.CreateFlowLogRequest) *pb.FlowLog {
		t.Helper()
		r, err := vpc.CreateFlowLog(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.FlowLog
	}
	ofWeb := create(&pb.CreateFlowLogRequest{Instance: web.Id, TrafficType: "all", Destination: "file:" + webLog, IntervalSeconds: 1})
	ofVPC := create(&pb.CreateFlowLogRequest{Vpc: "red", TrafficType: "accept", Destination: "file:" + vpcLog, IntervalSeconds: 1})
	subnetLog := filepath.Join(dir, "red-b.log")
	create(&pb.CreateFlowLogRequest{Subnet: "red-b", TrafficType: "reject", Destination: "file:" + subnetLog, IntervalSeconds: 1})
	holds := func(a *agent.Agent, fl *pb.FlowLog) bool {
		v, ok := a.Cache.Tables.Load().VPC(s.red.Vni)
		id, _ := model.ParseID(model.KindFlowLog, fl.Id)
		for _, f := range v.FlowLogs {
			if ok && f.ID == id {
				return true
			}
		}
		return false
	}
	waitFor(t, func() bool { return holds(s.a, ofVPC) && holds(s.b, ofWeb) && holds(s.b, ofVPC) })

	traffic := func() {
		t.Helper()
		mustGet(t, clientNS, web.PrivateIp, "hello from web")
		dialFails(t, clientNS, web.PrivateIp, "8080")
	}
	traffic()
	var accepted, rejected flowLine
	waitFor(t, func() bool {
		accepted, rejected = flowLine{}, flowLine{}
		for _, l := range readFlowLog(t, webLog) {
			if l.eni() != web.EniId {
				t.Fatalf("web's flow log has a line of another ENI: %v", l.fields)
			}
			if l.src() == client.PrivateIp && l.dst() == web.PrivateIp && l.proto() == "6" {
				switch {
				case l.action() == "ACCEPT" && l.dstPort() == "80":
					accepted = l
				case l.action() == "REJECT" && l.dstPort() == "8080":
					rejected = l
				}
			}
		}
		return accepted.fields != nil && rejected.fields != nil
	})
	t.Logf("accepted: %s", strings.Join(accepted.fields, " "))
	t.Logf("rejected: %s", strings.Join(rejected.fields, " "))

	// Both hosts append to the VPC's file: the client's ENI (host-a) and
	// web's (host-b), accepted traffic only.
	waitFor(t, func() bool {
		enis := map[string]bool{}
		for _, l := range readFlowLog(t, vpcLog) {
			if l.action() != "ACCEPT" {
				t.Fatalf("an accept-only flow log has %v", l.fields)
			}
			enis[l.eni()] = true
		}
		return enis[client.EniId] && enis[web.EniId]
	})

	// web's subnet, rejected traffic only: web's refused SYNs.
	waitFor(t, func() bool {
		lines := readFlowLog(t, subnetLog)
		for _, l := range lines {
			if l.action() != "REJECT" || l.eni() != web.EniId {
				t.Fatalf("red-b's reject-only flow log has %v", l.fields)
			}
		}
		return len(lines) > 0
	})

	// Deleted, the flow log stops: its last window is written, then nothing.
	if _, err := vpc.DeleteFlowLog(ctx, connect.NewRequest(&pb.DeleteFlowLogRequest{Ref: ofWeb.Id})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !holds(s.b, ofWeb) })
	time.Sleep(1500 * time.Millisecond) // the stop, and its last window, follow the batch
	before := len(readFlowLog(t, webLog))
	beforeVPC := len(readFlowLog(t, vpcLog))
	traffic()
	time.Sleep(2500 * time.Millisecond) // more than two windows
	if n := len(readFlowLog(t, webLog)); n != before {
		t.Fatalf("a deleted flow log went on: %d lines, then %d", before, n)
	}
	if n := len(readFlowLog(t, vpcLog)); n == beforeVPC {
		t.Fatalf("the VPC's flow log, not deleted, wrote nothing more (%d lines)", n)
	}
}
