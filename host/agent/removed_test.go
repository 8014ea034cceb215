package agent_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
	"github.com/openvpc/openvpc/underlay"
)

// runRemovable runs host-a with NICs from backend, places one instance on
// it and returns the agent, the instance, and a channel that receives
// Run's result (the agent stops at cleanup).
func runRemovable(t *testing.T, c *testcloud.Cloud, backend nic.Backend) (*agent.Agent, *pb.Instance, chan error) {
	t.Helper()
	api, ctx := c.API(), c.Ctx()
	addr := netip.MustParseAddr("127.0.1.1")
	wire, err := underlay.NewMemNet().Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Node: node.Config{Server: api.URL, HostID: "host-a", Underlay: addr, Logger: c.Log,
		Creds: c.Credentials("host-a", pki.RoleHost, addr)}, Wire: wire, NIC: backend})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the agent did not stop")
		}
	})
	eventually(t, a.Sub.Connected)
	if _, err := api.VPC.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: "red", Cidr: "10.0.0.0/16"})); err != nil {
		t.Fatal(err)
	}
	if _, err := api.VPC.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: "red", Cidr: "10.0.1.0/24", Name: "red-a"})); err != nil {
		t.Fatal(err)
	}
	r, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: "host-a"}))
	if err != nil {
		t.Fatal(err)
	}
	inst := r.Msg.Instance
	eventually(t, func() bool { _, ok := a.NIC(red(t, c), netip.MustParseAddr(inst.PrivateIp)); return ok })
	return a, inst, done
}

func red(t *testing.T, c *testcloud.Cloud) uint32 {
	t.Helper()
	r, err := c.API().VPC.GetVpc(c.Ctx(), connect.NewRequest(&pb.GetVpcRequest{Ref: "red"}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Vpc.Vni
}

func remove(t *testing.T, c *testcloud.Cloud, host string) {
	t.Helper()
	if _, err := c.API().Trust.RemoveHost(c.Ctx(), connect.NewRequest(&pb.RemoveHostRequest{HostId: host})); err != nil {
		t.Fatal(err)
	}
}

// TestRemovedHostRemovesItsInstances: host remove revokes the host and
// ends its stream before it terminates the host's instances, so the host
// never hears of their termination; it learns of its removal when the
// server refuses it, and then closes its instances' NICs and tells the
// backend to keep none, while it runs on.
func TestRemovedHostRemovesItsInstances(t *testing.T) {
	c := testcloud.New(t, etcd)
	rec := &recorder{}
	a, inst, done := runRemovable(t, c, rec)
	remove(t, c, "host-a")
	eventually(t, func() bool {
		_, closed, keep := rec.state()
		return slices.Equal(closed, []string{inst.Id}) && keep != nil && len(keep) == 0
	})
	if _, ok := a.NIC(red(t, c), netip.MustParseAddr(inst.PrivateIp)); ok {
		t.Fatal("the removed host still has its instance's NIC")
	}
	select {
	case err := <-done:
		t.Fatalf("the removed host stopped by itself: %v", err)
	default:
	}
}
