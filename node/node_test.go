package node_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
)

var etcd *testcloud.Etcd

func TestMain(m *testing.M) { testcloud.Main(m, &etcd, testcloud.CheckLeaks) }

var addrA = netip.MustParseAddr("127.0.1.1")

// newNode builds host-a's node on cloud c, after warming the test's own
// API connection, and returns it with a snapshot of the goroutines that
// may outlive it.
func newNode(t *testing.T, c *testcloud.Cloud) (*node.Node, goleak.Option) {
	t.Helper()
	if _, err := c.API().Inst.ListHosts(c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{})); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	n, err := node.New(node.Config{Server: c.API().URL, HostID: "host-a", Underlay: addrA, Logger: c.Log,
		Creds: c.Credentials("host-a", pki.RoleHost, addrA), API: "127.0.0.1:0", Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return n, before
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// TestRunEndsWithItsRole: a role's loop failing ends the node's Run with
// that error, once every part of the node stopped; ctx ending makes Run
// wait for the role's loop to return.
func TestRunEndsWithItsRole(t *testing.T) {
	c := testcloud.New(t, etcd)
	n, before := newNode(t, c)
	broken := errors.New("the wire broke")
	fail := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- n.Run(context.Background(), node.Role{Serve: func(ctx context.Context) error {
			select {
			case <-fail:
				return broken
			case <-ctx.Done():
				return nil
			}
		}})
	}()
	waitFor(t, "subscribed", n.Sub.Connected)
	close(fail)
	select {
	case err := <-done:
		if !errors.Is(err, broken) {
			t.Fatalf("Run returned %v, want the role's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its role failed")
	}
	testcloud.NoLeaks(t, before)

	n, before = newNode(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	var stopped atomic.Bool
	go func() {
		done <- n.Run(ctx, node.Role{Serve: func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(100 * time.Millisecond) // closing a socket, say
			stopped.Store(true)
			return nil
		}})
	}()
	waitFor(t, "subscribed again", n.Sub.Connected)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if !stopped.Load() {
		t.Fatal("Run returned before its role's loop did")
	}
	testcloud.NoLeaks(t, before)
}

// TestRemovedNodeForgetsItsScope: once host remove revokes a running
// node, the node empties its cache at once (its role is told, so a host's
// NICs go), and runs on, refused, until it is stopped.
func TestRemovedNodeForgetsItsScope(t *testing.T) {
	c := testcloud.New(t, etcd)
	api, ctx := c.API(), c.Ctx()
	n, _ := newNode(t, c)
	var locals atomic.Int64
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- n.Run(runCtx, node.Role{Applied: func() { locals.Store(int64(len(n.Cache.Locals()))) }})
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "registered", n.Sub.Connected)
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
	if _, err := api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the role saw its instance", func() bool { return locals.Load() == 1 })

	if _, err := api.Trust.RemoveHost(ctx, connect.NewRequest(&pb.RemoveHostRequest{HostId: "host-a"})); err != nil {
		t.Fatal(err)
	}
	// The stream ends before the instance is terminated, so the node can
	// only learn it from its refusal.
	waitFor(t, "the removed node emptied its cache", func() bool {
		st := n.Cache.State()
		return locals.Load() == 0 && len(n.Cache.Locals()) == 0 && len(st.VPCs) == 0 && len(st.Mappings) == 0
	})
	select {
	case err := <-done:
		t.Fatalf("a removed node stopped by itself: %v", err)
	case <-time.After(3 * 200 * time.Millisecond):
	}
	if n.Sub.Connected() {
		t.Fatal("the removed node is subscribed again")
	}
}

// TestOnlyEdgesServeFunctions: a host that says it serves functions is a
// configuration error, named before anything starts.
func TestOnlyEdgesServeFunctions(t *testing.T) {
	_, err := node.New(node.Config{Server: "http://127.0.0.1:1", HostID: "host-a", Underlay: addrA,
		Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET}}})
	if err == nil || !strings.Contains(err.Error(), "only edges serve functions") {
		t.Fatalf("a host serving the internet: %v", err)
	}
	if _, err := node.New(node.Config{Server: "http://127.0.0.1:1", HostID: "edge-1", Underlay: addrA, Role: pb.HostRole_HOST_ROLE_EDGE,
		Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET}}}); err != nil {
		t.Fatalf("an edge serving the internet: %v", err)
	}
}
