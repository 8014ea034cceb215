package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/node"
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
	goleak.VerifyNone(t, before)
}
