package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/pki"
)

var prefixes atomic.Int64

// testServer is a real server (TLS, tokens) on loopback over the shared etcd.
type testServer struct {
	*server.Server
	admin *pki.ClientConfig
}

func startServer(t *testing.T, edit ...func(*server.Config)) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg.Store.Endpoints = []string{etcd.Endpoint}
	cfg.Store.Prefix = fmt.Sprintf("/server-test-%d-%d/", time.Now().UnixNano(), prefixes.Add(1))
	cfg.AdminConfig = filepath.Join(t.TempDir(), "config")
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	admin, err := pki.LoadClientConfig(cfg.AdminConfig)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, admin: admin}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// anonymous is a client that trusts the server's CA and proves nothing.
func (s *testServer) anonymous(t *testing.T) *http.Client {
	t.Helper()
	pool, err := pki.NewCredentialsPool([]byte(s.admin.CA))
	if err != nil {
		t.Fatal(err)
	}
	return closing(t, pki.HTTPClient(pki.ClientTLS(pool, nil)))
}

// closing closes hc's idle connections at the end of the test, so that no
// goroutine outlives it (TestMain checks).
func closing(t *testing.T, hc *http.Client) *http.Client {
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// adminHTTP is an administrator's client: the admin token on every request.
func (s *testServer) adminHTTP(t *testing.T) *http.Client {
	hc := s.anonymous(t)
	hc.Transport = bearer{s.admin.Token, hc.Transport}
	return hc
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (b bearer) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// hostHTTP is host id's client, with a certificate as joining gives it.
func (s *testServer) hostHTTP(t *testing.T, id string, underlay netip.Addr) *http.Client {
	t.Helper()
	return s.agentHTTP(t, id, pki.RoleHost, underlay)
}

// agentHTTP is the client of host or edge id, with a certificate as
// joining gives it.
func (s *testServer) agentHTTP(t *testing.T, id string, role pki.Role, underlay netip.Addr) *http.Client {
	t.Helper()
	creds, err := s.Trust.IssueAgent(ctx(t), id, role, underlay)
	if err != nil {
		t.Fatal(err)
	}
	return closing(t, pki.HTTPClient(creds.ClientTLS()))
}

func (s *testServer) trust(hc *http.Client) openvpcv1connect.TrustServiceClient {
	return openvpcv1connect.NewTrustServiceClient(hc, s.URL())
}

func (s *testServer) vpcs(hc *http.Client) openvpcv1connect.VpcServiceClient {
	return openvpcv1connect.NewVpcServiceClient(hc, s.URL())
}

func (s *testServer) instances(hc *http.Client) openvpcv1connect.InstanceServiceClient {
	return openvpcv1connect.NewInstanceServiceClient(hc, s.URL())
}

func (s *testServer) mapping(hc *http.Client) openvpcv1connect.MappingServiceClient {
	return openvpcv1connect.NewMappingServiceClient(hc, s.URL())
}
