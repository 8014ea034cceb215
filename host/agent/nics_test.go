package agent_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
	"github.com/openvpc/openvpc/underlay"
)

// recorder is a NIC backend that records what the agent asks of it and
// hands out netstacks.
type recorder struct {
	mu     sync.Mutex
	opened []nic.Instance
	closed []string
	keep   map[string]bool // the last sweep's
}

type recordedNIC struct {
	*nic.Netstack
	id string
	r  *recorder
}

func (n recordedNIC) Close() error {
	n.r.mu.Lock()
	n.r.closed = append(n.r.closed, n.id)
	n.r.mu.Unlock()
	return n.Netstack.Close()
}

func (r *recorder) Open(inst nic.Instance) (nic.NIC, error) {
	ns, err := nic.NewNetstack(inst.Addr.Addr(), inst.MTU)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened = append(r.opened, inst)
	return recordedNIC{ns, inst.ID, r}, nil
}

func (r *recorder) Sweep(keep map[string]bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep = keep
	return nil
}

func (r *recorder) Close() error   { return nil }
func (r *recorder) String() string { return "recorder" }

func (r *recorder) state() ([]nic.Instance, []string, map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.opened), slices.Clone(r.closed), r.keep
}

// TestAgentNICBackend: the agent gives each local instance a NIC from its
// backend, named by instance id with its subnet's prefix and gateway,
// closes it when the instance is terminated and when the agent stops, and
// tells the backend which instances to keep.
func TestAgentNICBackend(t *testing.T) {
	c := testcloud.New(t, etcd)
	api := c.API()
	ctx := c.Ctx()
	wire, err := underlay.NewMemNet().Listen(netip.MustParseAddr("127.0.1.1"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	// What runs now (the cloud, and the test's API connection, opened
	// here) may run on; what the agent starts may not outlive it.
	if _, err := api.Inst.ListHosts(ctx, connect.NewRequest(&pb.ListHostsRequest{})); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	a, err := agent.New(agent.Config{Node: node.Config{Server: api.URL, HostID: "host-a", Underlay: netip.MustParseAddr("127.0.1.1"), Logger: c.Log,
		Creds: c.Credentials("host-a", pki.RoleHost, netip.MustParseAddr("127.0.1.1"))}, Wire: wire, NIC: rec})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	eventually(t, a.Sub.Connected) // registered: instances can be placed on it
	if _, err := api.VPC.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: "red", Cidr: "10.0.0.0/16"})); err != nil {
		t.Fatal(err)
	}
	if _, err := api.VPC.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: "red", Cidr: "10.0.4.0/22", Name: "red-a"})); err != nil {
		t.Fatal(err)
	}
	var insts []*pb.Instance
	for range 2 {
		r, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: "host-a"}))
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, r.Msg.Instance)
	}
	eventually(t, func() bool { opened, _, _ := rec.state(); return len(opened) == 2 })
	opened, _, _ := rec.state()
	for _, inst := range insts {
		i := slices.IndexFunc(opened, func(o nic.Instance) bool { return o.ID == inst.Id })
		if i < 0 {
			t.Fatalf("no NIC opened for %s: %+v", inst.Id, opened)
		}
		want := nic.Instance{ID: inst.Id, Addr: netip.PrefixFrom(netip.MustParseAddr(inst.PrivateIp), 22), Gateway: netip.MustParseAddr("10.0.4.1"), MTU: a.MTU, Resolver: netip.MustParseAddr("10.0.0.2")}
		if opened[i] != want {
			t.Errorf("opened %+v, want %+v", opened[i], want)
		}
	}
	if _, err := api.Inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: insts[0].Id})); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		_, closed, keep := rec.state()
		return slices.Equal(closed, []string{insts[0].Id}) && !keep[insts[0].Id] && keep[insts[1].Id]
	})
	cancel()
	<-done
	stopped = true
	// Run returned: nothing it started runs on (the subscription, acks,
	// reporter, renewal, API server, wire and NIC loops).
	testcloud.NoLeaks(t, before)
	if _, closed, _ := rec.state(); !slices.Equal(closed, []string{insts[0].Id, insts[1].Id}) {
		t.Errorf("after the agent stopped, closed %v; want both instances", closed)
	}
}

func eventually(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}
