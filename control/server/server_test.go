package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/openvpc/openvpc/control/server"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/node/forward"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
	"github.com/openvpc/openvpc/underlay"
)

var etcd *testcloud.Etcd

func TestMain(m *testing.M) { testcloud.Main(m, &etcd, testcloud.CheckLeaks) }

// TestCloseStopsEverything: a server closed while a host agent is
// subscribed to it ends the agent's streams, returns promptly, and leaves
// nothing it started running (Mapping Service and its helpers, HTTP
// server, revocation watch); the agent, stopped after, neither.
func TestCloseStopsEverything(t *testing.T) {
	before := goleak.IgnoreCurrent()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.Logger = "127.0.0.1:0", log
	cfg.Store.Endpoints, cfg.Store.Prefix = []string{etcd.Endpoint}, fmt.Sprintf("/server-test-%d/", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("127.0.1.1")
	creds, err := s.Trust.IssueAgent(ctx, "host-a", pki.RoleHost, addr)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := underlay.NewMemNet().Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		Node: node.Config{Server: s.URL(), HostID: "host-a", Underlay: addr, Creds: creds, Logger: log, API: "127.0.0.1:0"},
		Wire: wire,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	for deadline := time.Now().Add(10 * time.Second); !a.Sub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not subscribe")
		}
	}

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with an agent subscribed", took)
	}
	for deadline := time.Now().Add(5 * time.Second); a.Sub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent's stream outlived the server")
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("agent Run: %v, want context.Canceled", err)
	}
	testcloud.NoLeaks(t, before)
}

// TestCloseEndsForwards: a port-forward relayed by the server is a
// hijacked connection the HTTP server no longer tracks; Close still ends
// it, promptly, and leaves nothing running.
func TestCloseEndsForwards(t *testing.T) {
	before := goleak.IgnoreCurrent()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.Logger, cfg.Trust.Insecure = "127.0.0.1:0", log, true
	cfg.Store.Endpoints, cfg.Store.Prefix = []string{etcd.Endpoint}, fmt.Sprintf("/server-test-%d/", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	addr := netip.MustParseAddr("127.0.1.1")
	wire, err := underlay.NewMemNet().Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Node: node.Config{Server: s.URL(), HostID: "host-a", Underlay: addr, Logger: log, API: "127.0.0.1:0"}, Wire: wire})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !a.Sub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not subscribe")
		}
	}
	hc := pki.HTTPClient(nil)
	defer hc.CloseIdleConnections()
	vpcs, insts := openvpcv1connect.NewVpcServiceClient(hc, s.URL()), openvpcv1connect.NewInstanceServiceClient(hc, s.URL())
	vpc, err := vpcs.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: "red", Cidr: "10.0.0.0/16"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vpcs.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: "red", Cidr: "10.0.1.0/24", Name: "red-a"})); err != nil {
		t.Fatal(err)
	}
	r, err := insts.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: "host-a"}))
	if err != nil {
		t.Fatal(err)
	}
	inst := r.Msg.Instance
	if _, err := insts.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: inst.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	ns, err := testcloud.Instance(a, vpc.Msg.Vpc.Vni, inst)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Net.ListenTCP(&net.TCPAddr{Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	go func() { // an echo server in the instance; it ends with the agent
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(conn, conn); conn.Close() }()
		}
	}()
	fwd, err := forward.Dial(ctx, s.URL(), nil, "", url.Values{"instance": {inst.Id}, "to": {inst.PrivateIp + ":7"}})
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	got := make([]byte, 2)
	fwd.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fwd.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(fwd, got); err != nil || string(got) != "hi" {
		t.Fatalf("through the server's forward: %q, %v", got, err)
	}

	closing := make(chan error, 1)
	go func() { closing <- s.Close() }()
	select {
	case <-closing:
		closed = true
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits on an open forward")
	}
	fwd.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fwd.Read(got); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the forward after Close: %v, want it closed", err)
	}
	stop()
	<-done
	done <- nil // for the deferred stop
	testcloud.NoLeaks(t, before)
}
