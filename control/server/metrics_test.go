package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openvpc/openvpc/control/server"
)

// TestMetricsOnTheirOwnListener: the API port does not serve the metrics,
// to anyone; the metrics listener does, where it was asked to.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	s := startServer(t, func(c *server.Config) { c.Metrics = "127.0.0.1:0" })
	get := func(hc *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for name, hc := range map[string]*http.Client{"anonymous": s.anonymous(t), "admin": s.adminHTTP(t)} {
		if code, body := get(hc, s.URL()+"/metrics"); code == http.StatusOK || strings.Contains(body, "openvpc_") {
			t.Errorf("%s GET /metrics on the API port: %d %.200s", name, code, body)
		}
	}
	if code, _ := get(s.anonymous(t), s.URL()+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz on the API port: %d", code)
	}
	url := s.MetricsURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("metrics URL %q", url)
	}
	if code, body := get(closing(t, &http.Client{}), url); code != http.StatusOK || !strings.Contains(body, "openvpc_mapping_subscribers") {
		t.Errorf("GET %s: %d %.200s", url, code, body)
	}

	// None unless asked for.
	if u := startServer(t).MetricsURL(); u != "" {
		t.Errorf("a server without Metrics serves them at %s", u)
	}
	// A busy address fails the start, unless it was only a default.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.Metrics, cfg.Store.Endpoints, cfg.Store.Prefix = "127.0.0.1:0", busy.Addr().String(), []string{etcd.Endpoint}, "/server-test-busy/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, err := server.Start(ctx, cfg); err == nil || !strings.Contains(err.Error(), "--metrics") {
		if s != nil {
			s.Close()
		}
		t.Errorf("metrics on a busy address: %v, want a failure naming --metrics", err)
	}
	best := startServer(t, func(c *server.Config) { c.Metrics, c.MetricsBestEffort = busy.Addr().String(), true })
	if u := best.MetricsURL(); u != "" {
		t.Errorf("best-effort metrics on a busy address: served at %s", u)
	}
}
