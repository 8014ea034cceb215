// Package server assembles an openvpc server: the store, the trust
// authority, the Mapping Service and the API handlers on one TLS port that
// speaks gRPC, gRPC-Web and Connect (HTTP/1.1 and HTTP/2), every request
// authenticated (cleartext and unauthenticated only with
// --insecure-loopback).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openvpc/openvpc/control/api"
	"github.com/openvpc/openvpc/control/apierr"
	"github.com/openvpc/openvpc/control/mapping"
	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/control/trust"
	"github.com/openvpc/openvpc/drain"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/node/forward"
	"github.com/openvpc/openvpc/pki"
)

// Config is everything `openvpc server` needs.
type Config struct {
	// Listen is the API's address, host:port.
	Listen string
	// Store says where state lives: embedded etcd in a data dir, or an
	// external etcd cluster.
	Store store.Config
	// Logger receives the server's logs.
	Logger *slog.Logger
	// Collectors are extra metrics served on /metrics (`openvpc up` adds
	// its host agents').
	Collectors []prometheus.Collector
	// Metrics is the address of the Prometheus listener (plain HTTP,
	// /metrics), apart from the API: the metrics name every host and
	// event reason, so they are served only where they were asked for —
	// loopback by default in the CLI, as Prometheus exporters do. Empty
	// serves none.
	Metrics string
	// MetricsBestEffort: Metrics is a default, not the operator's choice,
	// so a busy port is logged instead of failing the start.
	MetricsBestEffort bool
	// EdgeTimeout is how long an edge may miss its heartbeats before hosts
	// stop sending it traffic (default mapping.ReachableWithin).
	EdgeTimeout time.Duration
	// DNSUpstream is the resolver (ip:port, or ip for port 53) that hosts
	// forward the names their VPC resolvers do not answer to, caching the
	// answers for their TTLs; empty: such names get NXDOMAIN.
	DNSUpstream string
	// Trust is the CA, certificate lifetimes, and whether to run insecure.
	Trust trust.Config
	// AdminConfig is where to write a client config (server URL, CA and an
	// admin token) when it holds none for this cloud; empty writes none.
	AdminConfig string
}

// DefaultConfig is the configuration of a plain `openvpc server`.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:7070", Store: store.DefaultConfig(), Logger: slog.Default()}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("server: listen address %q: %v; write it as host:port, e.g. 127.0.0.1:7070", c.Listen, err)
	}
	if ip, err := netip.ParseAddr(host); c.Trust.Insecure && (err != nil || !ip.IsLoopback()) && host != "localhost" {
		return fmt.Errorf("server: --insecure-loopback serves without TLS or authentication, so only on a loopback address; listen on 127.0.0.1, or drop the flag (%s)", c.Listen)
	}
	// Certificates count in whole seconds and renew at two thirds: a
	// shorter life could end before its renewal is answered.
	if ttl := c.Trust.CertTTL; ttl != 0 && (ttl < 3*time.Second || ttl > 8760*time.Hour) {
		return fmt.Errorf("server: --cert-ttl %v: give a certificate lifetime between 3s and 8760h (a year); the default is %v", ttl, pki.DefaultCertTTL)
	}
	if c.DNSUpstream != "" {
		up, err := ParseDNSUpstream(c.DNSUpstream)
		if err != nil {
			return err
		}
		c.DNSUpstream = up
	}
	return c.Store.Validate()
}

// ParseDNSUpstream reads a resolver's address, ip:port or ip (port 53),
// and returns it as ip:port.
func ParseDNSUpstream(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("server: DNS upstream %q: write a resolver's address as ip or ip:port, e.g. 192.0.2.53:53", s)
	}
	return ap.String(), nil
}

// Server is a running openvpc server.
type Server struct {
	Store   *store.Store
	Mapping *mapping.Service
	Trust   *trust.Authority

	log    *slog.Logger
	ln     net.Listener
	http   *http.Server
	cancel context.CancelFunc
	extra  []prometheus.Collector
	reg    *prometheus.Registry
	// metricsLn is the Prometheus listener (nil: none), metrics its server.
	metricsLn net.Listener
	metrics   *http.Server

	// running are the goroutines Start started (the Mapping Service, the
	// HTTP server), handlers the requests being served; Close waits for
	// both, and closing refuses requests that arrive meanwhile.
	running  sync.WaitGroup
	handlers drain.Handlers
}

// Start opens the store, starts the Mapping Service and serves the API.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Store.Logger = cfg.Logger
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The store first: a data dir in use is the more telling failure
	// (its lock names the process), and is found before the port's.
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server: listen on %s: %w (is another openvpc server running? choose another --listen)", cfg.Listen, err)
	}
	var metricsLn net.Listener
	if cfg.Metrics != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics); err != nil && !cfg.MetricsBestEffort {
			ln.Close()
			st.Close()
			return nil, fmt.Errorf("server: metrics listener on %s: %w (choose another --metrics, or '' for none)", cfg.Metrics, err)
		} else if err != nil {
			cfg.Logger.Warn("metrics not served: their default address is in use; choose one with --metrics", "addr", cfg.Metrics, "err", err)
		}
	}
	closeListeners := func() {
		ln.Close()
		if metricsLn != nil {
			metricsLn.Close()
		}
	}
	ms, err := mapping.New(mapping.Config{Store: st, Logger: cfg.Logger, HealthWindow: cfg.EdgeTimeout, DNSUpstream: cfg.DNSUpstream})
	if err != nil {
		closeListeners()
		st.Close()
		return nil, err
	}
	s := &Server{Store: st, Mapping: ms, log: cfg.Logger, ln: ln, metricsLn: metricsLn, extra: cfg.Collectors}
	// The server runs until Close, whatever becomes of ctx; but while it
	// starts, ctx ending (a signal) ends every wait.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	started := context.AfterFunc(ctx, cancel)
	defer started()
	cfg.Trust.IPs = append(cfg.Trust.IPs, trust.ListenerIPs(ln.Addr().String())...)
	if s.Trust, err = trust.New(runCtx, st, cfg.Trust, cfg.Logger); err != nil {
		cancel()
		closeListeners()
		st.Close()
		return nil, err
	}
	s.Trust.Record, s.Trust.Removed = s.Mapping.Record, s.Mapping.Disconnect
	s.Trust.Terminate = func(ctx context.Context, id string) error {
		_, err := st.TerminateInstance(ctx, id)
		return err
	}
	s.running.Go(func() {
		if err := s.Mapping.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("server: the mapping service stopped", "err", err)
		}
	})
	s.http = &http.Server{
		Handler: s.track(s.routes()), Protocols: protocols(cfg.Trust.Insecure), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		// Refused TLS handshakes (no or a foreign certificate) land here.
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		// Requests, streams above all, end when the server stops.
		BaseContext: func(net.Listener) context.Context { return runCtx },
	}
	s.running.Go(func() {
		var err error
		if cfg.Trust.Insecure {
			err = s.http.Serve(ln)
		} else {
			s.http.TLSConfig = s.Trust.TLS()
			err = s.http.ServeTLS(ln, "", "")
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server: serve", "err", err)
		}
	})
	if metricsLn != nil {
		s.metrics = &http.Server{Handler: s.metricsHandler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes}
		s.running.Go(func() {
			if err := s.metrics.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("server: serve metrics", "err", err)
			}
		})
	}
	select {
	case <-s.Mapping.Ready():
	case <-runCtx.Done():
		s.Close()
		return nil, fmt.Errorf("server: start interrupted: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("server: the mapping service could not load the store in 30s")
	}
	if cfg.AdminConfig != "" && !cfg.Trust.Insecure {
		wrote, err := s.Trust.EnsureAdminConfig(ctx, cfg.AdminConfig, s.ClientURL())
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("server: client config %s: %w (choose another path with --admin-config)", cfg.AdminConfig, err)
		}
		if wrote {
			s.log.Info("wrote a client config with an admin token", "path", cfg.AdminConfig)
		}
	}
	s.log.Info("openvpc server listening", "addr", ln.Addr().String(), "tls", !cfg.Trust.Insecure)
	return s, nil
}

// protocols enables HTTP/1.1 (Connect, curl) and HTTP/2 (gRPC): over TLS,
// or in cleartext when insecure.
func protocols(insecure bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if insecure {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP2(true)
	}
	return p
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Compressing small messages costs more than it saves; mapping deltas
	// are small and many. Handlers return the control plane's errors; the
	// interceptor gives them their wire codes, in one place.
	common := connect.WithHandlerOptions(connect.WithCompressMinBytes(16<<10), connect.WithInterceptors(apierr.Interceptor()))
	opt := connect.WithHandlerOptions(common, connect.WithReadMaxBytes(MaxMessage), gzipCapped(MaxMessage))
	insts := &api.Instances{Store: s.Store, Mapping: s.Mapping, Agents: s.Trust}
	mux.Handle(openvpcv1connect.NewVpcServiceHandler(&api.VPCs{Store: s.Store}, opt))
	mux.Handle(openvpcv1connect.NewInstanceServiceHandler(insts, opt))
	mux.Handle(openvpcv1connect.NewDirectConnectServiceHandler(&api.DirectConnect{Store: s.Store}, opt))
	mux.Handle(openvpcv1connect.NewZoneServiceHandler(&api.Zones{Store: s.Store, Mapping: s.Mapping}, opt))
	mux.Handle(openvpcv1connect.NewVpnServiceHandler(&api.VPNs{Store: s.Store}, opt))
	mux.Handle(openvpcv1connect.NewEndpointServiceHandler(&api.Endpoints{Store: s.Store, Record: s.Mapping.Record}, opt))
	mux.Handle(openvpcv1connect.NewMappingServiceHandler(s.Mapping, opt))
	mux.Handle(openvpcv1connect.NewTrustServiceHandler(s.Trust, opt))
	// Join is anonymous: its own, much smaller, bounds (the more specific
	// pattern wins in the mux).
	_, join := openvpcv1connect.NewTrustServiceHandler(s.Trust, common,
		connect.WithReadMaxBytes(MaxAnonymousMessage), gzipCapped(MaxAnonymousMessage))
	mux.Handle(openvpcv1connect.TrustServiceJoinProcedure, join)
	mux.HandleFunc(forward.Path, insts.Forward)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(s.Mapping.Collectors()...)
	reg.MustRegister(s.extra...)
	s.reg = reg
	mux.HandleFunc("/healthz", healthz)
	return limitBodies(s.Trust.Handler(mux))
}

func healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

// metricsHandler serves the metrics listener: /metrics, and /healthz for
// probes that can reach only it.
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", healthz)
	return mux
}

// MetricsURL is where the metrics are served ("" when they are not).
func (s *Server) MetricsURL() string {
	if s.metricsLn == nil {
		return ""
	}
	return "http://" + s.metricsLn.Addr().String() + "/metrics"
}

// Register adds collectors to the metrics after the server started.
func (s *Server) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := s.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the API's base URL.
func (s *Server) URL() string {
	if s.Trust.Insecure() {
		return "http://" + s.Addr()
	}
	return "https://" + s.Addr()
}

// ClientURL is the URL clients on this machine reach the API at: URL, with
// an unspecified listen address replaced by loopback.
func (s *Server) ClientURL() string {
	u := s.URL()
	if ip, port, err := net.SplitHostPort(s.Addr()); err == nil {
		if a, err := netip.ParseAddr(ip); err == nil && a.IsUnspecified() {
			u = strings.Replace(u, s.Addr(), net.JoinHostPort("127.0.0.1", port), 1)
		}
	}
	return u
}

// track counts the requests being served, so that Close can wait for
// their handlers.
func (s *Server) track(h http.Handler) http.Handler {
	return s.handlers.Track(h, "server: shutting down")
}

// Close stops serving, stops the Mapping Service, waits for every request
// handler and everything Start started, and closes the store.
func (s *Server) Close() error {
	s.handlers.Close()
	// Every request runs on runCtx: canceling it ends streams and calls in
	// flight. A client stream (acks) reads on until its client sends, so
	// nothing is left to wait for gracefully: close the connections, which
	// ends those reads, and wait for the handlers to return.
	s.cancel()
	s.http.Close()
	if s.metrics != nil {
		s.metrics.Close()
	}
	s.handlers.Wait()
	s.running.Wait()
	s.Trust.Wait()
	return s.Store.Close()
}
