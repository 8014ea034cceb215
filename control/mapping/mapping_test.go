package mapping_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/testcloud"
)

var etcd *testcloud.Etcd

func TestMain(m *testing.M) { testcloud.Main(m, &etcd) }

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}) }

// world is red, yellow and green VPCs, each with a subnet.
type world struct {
	c                  *testcloud.Cloud
	api                testcloud.Clients
	red, yellow, green *pb.Vpc
}

func newWorld(t *testing.T) *world {
	c := testcloud.New(t, etcd)
	w := &world{c: c, api: c.API()}
	for i, v := range []struct {
		name, cidr string
		dst        **pb.Vpc
	}{{"red", "10.0.0.0/16", &w.red}, {"yellow", "10.1.0.0/16", &w.yellow}, {"green", "10.2.0.0/16", &w.green}} {
		r, err := w.api.VPC.CreateVpc(c.Ctx(), connect.NewRequest(&pb.CreateVpcRequest{Name: v.name, Cidr: v.cidr}))
		if err != nil {
			t.Fatal(err)
		}
		*v.dst = r.Msg.Vpc
		sub := strings.Replace(v.cidr, ".0.0/16", ".1.0/24", 1)
		if _, err := w.api.VPC.CreateSubnet(c.Ctx(), connect.NewRequest(&pb.CreateSubnetRequest{Vpc: v.name, Cidr: sub, Name: v.name + "-a"})); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	return w
}

func (w *world) run(t *testing.T, subnet, host string) *pb.Instance {
	t.Helper()
	r, err := w.api.Inst.RunInstance(w.c.Ctx(), connect.NewRequest(&pb.RunInstanceRequest{Subnet: subnet, Host: host}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Instance
}

func (w *world) wait(t *testing.T, id string, state pb.InstanceState, timeout time.Duration) (*pb.Instance, error) {
	t.Helper()
	r, err := w.api.Inst.WaitInstance(w.c.Ctx(), connect.NewRequest(&pb.WaitInstanceRequest{Ref: id, State: state, TimeoutMs: timeout.Milliseconds()}))
	if err != nil {
		return nil, err
	}
	return r.Msg.Instance, nil
}

func (w *world) peer(t *testing.T, a, b string) *pb.Peering {
	t.Helper()
	r, err := w.api.VPC.CreatePeering(w.c.Ctx(), connect.NewRequest(&pb.CreatePeeringRequest{Vpc: a, PeerVpc: b}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.VPC.AcceptPeering(w.c.Ctx(), connect.NewRequest(&pb.AcceptPeeringRequest{Ref: r.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	return r.Msg.Peering
}

func vnis(h *testcloud.Host) map[uint32]bool {
	out := map[uint32]bool{}
	for v := range h.Mirror.State().VPCs {
		out[v] = true
	}
	return out
}

// TestScope: a host holds exactly the VPCs of its instances and their
// active peers; peering accept and delete grow and shrink it.
func TestScope(t *testing.T) {
	w := newWorld(t)
	url := w.api.URL
	a, b, c := w.c.AddHost(url, "host-a", addr(1)), w.c.AddHost(url, "host-b", addr(2)), w.c.AddHost(url, "host-c", addr(3))
	w.run(t, "red-a", "host-a")
	w.run(t, "yellow-a", "host-b")
	w.run(t, "green-a", "host-c")
	w.c.Converge(w.api, a, b, c)
	if got := vnis(a); len(got) != 1 || !got[w.red.Vni] {
		t.Fatalf("host-a scope %v, want only red", got)
	}
	p := w.peer(t, "red", "yellow")
	w.c.Converge(w.api, a, b, c)
	if got := vnis(a); len(got) != 2 || !got[w.yellow.Vni] {
		t.Fatalf("after peering, host-a scope %v, want red and yellow", got)
	}
	if got := vnis(c); len(got) != 1 || !got[w.green.Vni] {
		t.Fatalf("host-c scope %v, want only green", got)
	}
	if _, err := w.api.VPC.DeletePeering(w.c.Ctx(), connect.NewRequest(&pb.DeletePeeringRequest{Ref: p.Id})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b, c)
	if got := vnis(b); len(got) != 1 || !got[w.yellow.Vni] {
		t.Fatalf("after unpeering, host-b scope %v, want only yellow", got)
	}
}

// TestOutOfScopeQueryRefused: "none of you were yellow before" — a host
// asking for a VPC outside its scope is refused, and a human is told.
func TestOutOfScopeQueryRefused(t *testing.T) {
	w := newWorld(t)
	g := w.c.AddHost(w.api.URL, "host-g", addr(7))
	w.run(t, "green-a", "host-g")
	w.c.Converge(w.api, g)
	ctx := w.c.Ctx()
	asG := w.c.HostClients(w.api.URL, "host-g", addr(7))
	_, err := asG.Mapping.GetVpcMappings(ctx, connect.NewRequest(&pb.GetVpcMappingsRequest{HostId: "host-g", Vni: w.yellow.Vni}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("out-of-scope query: %v, want permission denied", err)
	}
	r, err := asG.Mapping.GetVpcMappings(ctx, connect.NewRequest(&pb.GetVpcMappingsRequest{HostId: "host-g", Vni: w.green.Vni}))
	if err != nil || len(r.Msg.Mappings) != 1 {
		t.Fatalf("in-scope query: %v, %v", r, err)
	}
	evs, err := w.api.Inst.ListEvents(ctx, connect.NewRequest(&pb.ListEventsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(evs.Msg.Events); n != 1 {
		t.Fatalf("%d security events, want 1: %v", n, evs.Msg.Events)
	}
	ev := evs.Msg.Events[0]
	if ev.Reason != "scope-refused" || ev.HostId != "host-g" || ev.ClaimedVni != w.yellow.Vni {
		t.Fatalf("event %v", ev)
	}
	// Subscribing as a host that never registered is refused too.
	st, err := w.c.HostClients(w.api.URL, "host-nobody", addr(8)).Mapping.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{HostId: "host-nobody"}))
	if err == nil {
		for st.Receive() {
		}
		err = st.Err()
	}
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("unregistered subscribe: %v", err)
	}
}

// TestReadiness: --wait returns only once every host in scope has
// acknowledged; a host that never does is named in the timeout.
func TestReadiness(t *testing.T) {
	w := newWorld(t)
	a, b := w.c.AddHost(w.api.URL, "host-a", addr(1)), w.c.AddHost(w.api.URL, "host-b", addr(2))
	w.run(t, "red-a", "host-b")
	inst := w.run(t, "red-a", "host-a")
	got, err := w.wait(t, inst.Id, pb.InstanceState_INSTANCE_STATE_RUNNING, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != pb.InstanceState_INSTANCE_STATE_RUNNING {
		t.Fatalf("state %v", got.State)
	}
	// Running means reachable: both hosts already hold the mapping.
	for _, h := range []*testcloud.Host{a, b} {
		if _, ok := h.Mirror.Lookup(w.red.Vni, inst.PrivateIp); !ok {
			t.Fatalf("%s lacks the mapping of a running instance", h.ID)
		}
	}
	// A host that registered and holds red instances but never acknowledges.
	mute := w.c.HostClients(w.api.URL, "host-mute", addr(9))
	if _, err := mute.Mapping.Register(w.c.Ctx(), connect.NewRequest(&pb.RegisterRequest{HostId: "host-mute", UnderlayAddress: addr(9).String()})); err != nil {
		t.Fatal(err)
	}
	w.run(t, "red-a", "host-mute")
	late := w.run(t, "red-a", "host-a")
	_, err = w.wait(t, late.Id, pb.InstanceState_INSTANCE_STATE_RUNNING, 500*time.Millisecond)
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "host-mute") || strings.Contains(err.Error(), "host-a,") {
		t.Fatalf("wait with a mute host: %v", err)
	}
	// Termination is waited for the same way.
	term, err := w.api.Inst.TerminateInstance(w.c.Ctx(), connect.NewRequest(&pb.TerminateInstanceRequest{Ref: inst.Id}))
	if err != nil {
		t.Fatal(err)
	}
	_ = term
	_, err = w.wait(t, inst.Id, pb.InstanceState_INSTANCE_STATE_TERMINATED, 500*time.Millisecond)
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "host-mute") {
		t.Fatalf("terminate wait with a mute host: %v", err)
	}
	if _, ok := a.Mirror.Lookup(w.red.Vni, inst.PrivateIp); ok {
		if err := waitFor(func() bool { _, ok := a.Mirror.Lookup(w.red.Vni, inst.PrivateIp); return !ok }); err != nil {
			t.Fatal("terminated instance still in host-a's cache")
		}
	}
}

func waitFor(cond func() bool) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return errors.New("timed out")
}

// TestHeadless: with the server gone the cache keeps answering; when a
// server returns, the changes made meanwhile arrive.
func TestHeadless(t *testing.T) {
	w := newWorld(t)
	srv := w.c.Server(0)
	url := srv.URL()
	a := w.c.AddHost(url, "host-a", addr(1))
	first := w.run(t, "red-a", "host-a")
	w.c.Converge(w.api, a)
	// A second server stays up, to make changes while the first is down.
	other := w.c.ClientsFor(w.c.StartServer("127.0.0.1:0").URL())
	w.c.StopServer(0)
	if _, ok := a.Mirror.Lookup(w.red.Vni, first.PrivateIp); !ok {
		t.Fatal("cache lost a mapping when the server went away")
	}
	r, err := other.Inst.RunInstance(w.c.Ctx(), connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: "host-a"}))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := a.Mirror.Lookup(w.red.Vni, first.PrivateIp); !ok || a.Sub.Connected() {
		t.Fatal("headless host lost its cache or claims a connection")
	}
	_, hostport, _ := strings.Cut(url, "://")
	w.c.StartServer(hostport)
	w.c.Converge(other, a)
	if _, ok := a.Mirror.Lookup(w.red.Vni, r.Msg.Instance.PrivateIp); !ok {
		t.Fatal("change made while headless did not arrive")
	}
}

// TestSeveralServers: hosts on different servers of one store all get
// every change, and readiness counts acknowledgements from all of them.
func TestSeveralServers(t *testing.T) {
	w := newWorld(t)
	s2 := w.c.ClientsFor(w.c.StartServer("127.0.0.1:0").URL())
	a := w.c.AddHost(w.api.URL, "host-a", addr(1))
	b := w.c.AddHost(s2.URL, "host-b", addr(2))
	w.run(t, "red-a", "host-b")
	inst := w.run(t, "red-a", "host-a")
	// Wait through the server host-a is not connected to.
	r, err := s2.Inst.WaitInstance(w.c.Ctx(), connect.NewRequest(&pb.WaitInstanceRequest{Ref: inst.Id, TimeoutMs: 10000}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Msg.Instance.State != pb.InstanceState_INSTANCE_STATE_RUNNING {
		t.Fatalf("state %v", r.Msg.Instance.State)
	}
	for _, h := range []*testcloud.Host{a, b} {
		if _, ok := h.Mirror.Lookup(w.red.Vni, inst.PrivateIp); !ok {
			t.Fatalf("%s lacks the mapping", h.ID)
		}
	}
	w.c.Converge(s2, a, b)
	hosts, err := s2.Inst.ListHosts(w.c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts.Msg.Hosts {
		if h.AckedRevision == 0 || !h.Reachable {
			t.Fatalf("host %s shows no acknowledged revision or is not reachable: %v", h.Id, h)
		}
	}
	_ = context.Background
}
