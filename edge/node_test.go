package edge_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/internet"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
	"github.com/openvpc/openvpc/underlay"
)

var etcd *testcloud.Etcd

func TestMain(m *testing.M) { testcloud.Main(m, &etcd, testcloud.CheckLeaks) }

// startEdge runs edge-1 on cloud c with an in-memory underlay and an
// outside port on a simulated internet; it returns the node, its wire,
// the channel Run's result arrives on, and the goroutines that may
// outlive it.
func startEdge(t *testing.T, c *testcloud.Cloud) (*edge.Node, underlay.Conn, chan error, context.CancelFunc, goleak.Option) {
	t.Helper()
	addr := netip.MustParseAddr("127.0.1.100")
	inet := internet.New(testcloud.EIPPool)
	t.Cleanup(inet.Close)
	wire, err := underlay.NewMemNet().Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.API().Inst.ListHosts(c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{})); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	n, err := edge.NewNode(node.Config{Server: c.API().URL, HostID: "edge-1", Creds: c.Credentials("edge-1", pki.RoleEdge, addr), Logger: c.Log, API: "127.0.0.1:0"},
		edge.Config{Underlay: addr, Wire: wire, Outside: inet.Attach()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(cancel)
	for deadline := time.Now().Add(10 * time.Second); !n.Sub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the edge did not subscribe")
		}
	}
	return n, wire, done, cancel, before
}

// TestEdgeNodeLifecycle: an edge registers as an edge, serving the
// internet and (as every edge) gateway endpoints; when its ctx ends, Run closes its wire and outside port,
// returns, and leaves nothing running.
func TestEdgeNodeLifecycle(t *testing.T) {
	c := testcloud.New(t, etcd)
	n, wire, done, cancel, before := startEdge(t, c)
	if n.Role != pb.HostRole_HOST_ROLE_EDGE || len(n.Functions) != 2 || n.Functions[0].Kind != pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET ||
		n.Functions[1].Kind != pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT {
		t.Fatalf("the edge registers as %v serving %v, want an edge serving the internet and endpoints", n.Role, n.Functions)
	}
	hs, err := c.API().Inst.ListHosts(c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{}))
	if err != nil || len(hs.Msg.Hosts) != 1 || hs.Msg.Hosts[0].Role != pb.HostRole_HOST_ROLE_EDGE {
		t.Fatalf("hosts after the edge registered: %v, %v", hs.Msg.GetHosts(), err)
	}
	// Registration carried what it serves, and the cloud kept it.
	if fns := hs.Msg.Hosts[0].Functions; len(fns) != 2 || fns[0].Kind != pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET {
		t.Fatalf("the cloud's record of edge-1 serves %v, want the internet", fns)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := wire.ReadBatch(make([]underlay.Datagram, 1)); err == nil {
		t.Fatal("the edge's wire is still open after Run")
	}
	testcloud.NoLeaks(t, before)
}

// TestEdgeStopsWhenItsWireDoes: an edge whose underlay closes under it
// (nobody would receive hosts' traffic any more) stops, saying so,
// rather than looking alive to the cloud.
func TestEdgeStopsWhenItsWireDoes(t *testing.T) {
	c := testcloud.New(t, etcd)
	_, wire, done, _, before := startEdge(t, c)
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
