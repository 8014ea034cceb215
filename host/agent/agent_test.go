package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
	"github.com/openvpc/openvpc/underlay"
)

var etcd *testcloud.Etcd

func TestMain(m *testing.M) { testcloud.Main(m, &etcd, testcloud.CheckLeaks) }

// TestAgentCacheMatchesStore runs a real host agent (lookup tables, not
// the test mirror) and checks its cache against the store after changes.
func TestAgentCacheMatchesStore(t *testing.T) {
	c := testcloud.New(t, etcd)
	api := c.API()
	ctx := c.Ctx()
	a, err := agent.New(agent.Config{Node: node.Config{Server: api.URL, HostID: "host-a", Underlay: netip.MustParseAddr("127.0.1.1"), Logger: c.Log,
		Creds: c.Credentials("host-a", pki.RoleHost, netip.MustParseAddr("127.0.1.1"))}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, a.Sub.Connected) // registered: instances can be placed on it
	other := c.AddHost(api.URL, "host-b", netip.MustParseAddr("127.0.1.2"))

	vpc := func(name, cidr string) *pb.Vpc {
		r, err := api.VPC.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: name, Cidr: cidr}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.VPC.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: name, Cidr: cidr[:len(cidr)-3] + "/24", Name: name + "-a"})); err != nil {
			t.Fatal(err)
		}
		return r.Msg.Vpc
	}
	red, yellow := vpc("red", "10.0.0.0/16"), vpc("yellow", "10.1.0.0/16")
	var insts []*pb.Instance
	for i := range 6 {
		host := []string{"host-a", "host-b"}[i%2]
		sub := []string{"red-a", "yellow-a"}[i/3]
		r, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: sub, Host: host}))
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, r.Msg.Instance)
	}
	p, err := api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "red", PeerVpc: "yellow"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	if _, err := api.VPC.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: red.MainRouteTableId, DestinationCidr: "10.1.0.0/16", Target: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	// Firewalls: a group naming a group of the peered VPC, an ACL with
	// entries on a subnet, and an instance moved into the group.
	if _, err := api.VPC.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: "red", Name: "web"})); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []*pb.SecurityGroupRuleSpec{
		{Match: &pb.RuleMatch{Protocol: "tcp", Port: "80-88"}, Cidr: "10.1.0.0/16"},
		{Match: &pb.RuleMatch{Protocol: "icmp", IcmpType: proto32(8)}, Group: yellow.DefaultSecurityGroupId},
	} {
		if _, err := api.VPC.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "web", Rule: spec})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.VPC.CreateNetworkAcl(ctx, connect.NewRequest(&pb.CreateNetworkAclRequest{Vpc: "red", Name: "strict"})); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int32{200, 100} {
		if _, err := api.VPC.CreateNetworkAclEntry(ctx, connect.NewRequest(&pb.CreateNetworkAclEntryRequest{Ref: "strict", RuleNumber: n, Allow: n == 100, Match: &pb.RuleMatch{Protocol: "udp", Port: "53"}, Cidr: "10.0.0.0/8"})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.VPC.AssociateNetworkAcl(ctx, connect.NewRequest(&pb.AssociateNetworkAclRequest{Ref: "strict", Subnet: "red-a"})); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Inst.ModifyInstance(ctx, connect.NewRequest(&pb.ModifyInstanceRequest{Ref: insts[1].Id, SecurityGroups: []string{"web", red.DefaultSecurityGroupId}})); err != nil {
		t.Fatal(err)
	}
	// Flow logs of an instance (one that goes with it when it is
	// terminated below) and of a subnet.
	for _, req := range []*pb.CreateFlowLogRequest{
		{Instance: insts[0].Id, TrafficType: "all", Destination: "file:" + t.TempDir() + "/gone.log"},
		{Instance: insts[1].Id, TrafficType: "reject", Destination: "file:" + t.TempDir() + "/web.log", IntervalSeconds: 5},
		{Subnet: "yellow-a", TrafficType: "accept", Destination: "file:/var/log/yellow.log"},
	} {
		if _, err := api.VPC.CreateFlowLog(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.Inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: insts[0].Id})); err != nil {
		t.Fatal(err)
	}
	last, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: "host-a"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: last.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	c.Converge(api, other)

	deadline := time.Now().Add(10 * time.Second)
	for {
		want, err := testcloud.Expected(ctx, api, "host-a")
		if err != nil {
			t.Fatal(err)
		}
		diff := compare(a.Cache.State(), want)
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent cache differs from the store:\n%s", diff)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The lookups the data plane will make.
	snap := a.Cache.Tables.Load()
	var m tables.Mapping
	if !snap.Lookup(yellow.Vni, netip.MustParseAddr(insts[5].PrivateIp), &m) || m.Underlay != netip.MustParseAddr("127.0.1.2") || m.Local {
		t.Fatalf("lookup of a remote yellow instance: %+v", m)
	}
	if !snap.Lookup(red.Vni, netip.MustParseAddr(last.Msg.Instance.PrivateIp), &m) || !m.Local {
		t.Fatalf("lookup of a local red instance: %+v", m)
	}
	// The terminated instance's address went to the last one run: the
	// cache must hold the new owner, not the old.
	if !snap.Lookup(red.Vni, netip.MustParseAddr(insts[0].PrivateIp), &m) || model.FormatID(model.KindENI, m.ENI) != last.Msg.Instance.EniId {
		t.Fatalf("address %s: cache has ENI %x, want the new instance's %s", insts[0].PrivateIp, m.ENI, last.Msg.Instance.EniId)
	}
	v, ok := snap.VPC(red.Vni)
	if !ok {
		t.Fatal("red not in cache")
	}
	r := v.Route(netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.1.0.9"))
	if r == nil || r.Target.Kind != tables.TargetPeering || !snap.Peered(yellow.Vni, red.Vni) {
		t.Fatalf("route red → yellow: %+v", r)
	}
	if r := v.Route(netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.0.0.9")); r == nil || r.Target.Kind != tables.TargetLocal {
		t.Fatalf("local route: %+v", r)
	}
	if r := v.Route(netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.9.0.9")); r != nil {
		t.Fatalf("route to nowhere: %+v", r)
	}
	if a.Cache.Skipped() != 0 {
		t.Fatalf("%d changes were refused", a.Cache.Skipped())
	}
}

// compare checks what the tables can answer: VPCs, mappings and hosts.
func compare(got, want node.State) string {
	for vni, w := range want.VPCs {
		if g, ok := got.VPCs[vni]; !ok || g.Id != w.Id || g.Cidr != w.Cidr || g.Name != w.Name || g.DnsSupportDisabled != w.DnsSupportDisabled {
			return fmt.Sprintf("VPC %d: got %v want %v", vni, g, w)
		}
		if d := compareFirewall(got.VPCs[vni], w); d != "" {
			return fmt.Sprintf("VPC %d: %s", vni, d)
		}
	}
	if len(got.VPCs) != len(want.VPCs) {
		return fmt.Sprintf("%d VPCs, want %d", len(got.VPCs), len(want.VPCs))
	}
	for k, w := range want.Mappings {
		g, ok := got.Mappings[k]
		if !ok || g.HostId != w.HostId || g.EniId != w.EniId || g.Mac != w.Mac || g.InstanceName != w.InstanceName || !sameSet(g.SecurityGroupIds, w.SecurityGroupIds) {
			return fmt.Sprintf("mapping %v: got %v want %v", k, g, w)
		}
	}
	if len(got.Mappings) != len(want.Mappings) {
		return fmt.Sprintf("%d mappings, want %d", len(got.Mappings), len(want.Mappings))
	}
	for id, w := range want.Hosts {
		if g, ok := got.Hosts[id]; !ok || g.UnderlayAddress != w.UnderlayAddress || g.Role != w.Role {
			return fmt.Sprintf("host %s: got %v want %v", id, g, w)
		}
	}
	return ""
}

// compareFirewall checks what the tables hold of a VPC's groups and ACLs
// (the tables keep them in the order sent), and its flow logs.
func compareFirewall(got, want *pb.VpcFacts) string {
	g := &pb.VpcFacts{DefaultSecurityGroupId: got.DefaultSecurityGroupId, DefaultNetworkAclId: got.DefaultNetworkAclId, SecurityGroups: got.SecurityGroups, NetworkAcls: got.NetworkAcls, FlowLogs: got.FlowLogs}
	w := &pb.VpcFacts{DefaultSecurityGroupId: want.DefaultSecurityGroupId, DefaultNetworkAclId: want.DefaultNetworkAclId, SecurityGroups: want.SecurityGroups, NetworkAcls: want.NetworkAcls, FlowLogs: want.FlowLogs}
	for _, f := range []*pb.VpcFacts{g, w} {
		slices.SortFunc(f.SecurityGroups, func(a, b *pb.SecurityGroupFacts) int { return strings.Compare(a.Id, b.Id) })
		slices.SortFunc(f.NetworkAcls, func(a, b *pb.NetworkAclFacts) int { return strings.Compare(a.Id, b.Id) })
		slices.SortFunc(f.FlowLogs, func(a, b *pb.FlowLogFacts) int { return strings.Compare(a.Id, b.Id) })
	}
	if !proto.Equal(g, w) {
		return fmt.Sprintf("firewalls differ:\n got  %v\n want %v", g, w)
	}
	return ""
}

func proto32(n int32) *int32 { return &n }

// sameSet: an ENI's groups are a set; the tables keep them sorted.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestAgentStopsWhenItsWireDoes: an agent whose underlay closes under it
// (it would no longer receive anything) stops with an error saying so,
// rather than looking alive to the cloud, and leaves nothing running.
func TestAgentStopsWhenItsWireDoes(t *testing.T) {
	c := testcloud.New(t, etcd)
	addr := netip.MustParseAddr("127.0.1.1")
	wire, err := underlay.NewMemNet().Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.API().Inst.ListHosts(c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{})); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	a, err := agent.New(agent.Config{Node: node.Config{Server: c.API().URL, HostID: "host-a", Underlay: addr, Logger: c.Log,
		Creds: c.Credentials("host-a", pki.RoleHost, addr), API: "127.0.0.1:0"}, Wire: wire})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	for deadline := time.Now().Add(10 * time.Second); !a.Sub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not subscribe")
		}
	}
	wire.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "underlay stopped receiving") {
			t.Fatalf("Run: %v, want the underlay's failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on with its wire closed")
	}
	testcloud.NoLeaks(t, before)
}
