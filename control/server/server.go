// Package server assembles an openvpc server: the store, the Mapping
// Service and the API handlers on one HTTP port that speaks gRPC, gRPC-Web
// and Connect (HTTP/1.1 and cleartext HTTP/2).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openvpc/openvpc/control/api"
	"github.com/openvpc/openvpc/control/mapping"
	"github.com/openvpc/openvpc/control/store"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
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
	// EdgeTimeout is how long an edge may miss its heartbeats before hosts
	// stop sending it traffic (default mapping.ReachableWithin).
	EdgeTimeout time.Duration
}

// DefaultConfig is the configuration of a plain `openvpc server`.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:7070", Store: store.DefaultConfig(), Logger: slog.Default()}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("server: listen address %q: %v; write it as host:port, e.g. 127.0.0.1:7070", c.Listen, err)
	}
	return c.Store.Validate()
}

// Server is a running openvpc server.
type Server struct {
	Store   *store.Store
	Mapping *mapping.Service

	log    *slog.Logger
	ln     net.Listener
	http   *http.Server
	cancel context.CancelFunc
	done   chan struct{}
	extra  []prometheus.Collector
	reg    *prometheus.Registry
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
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w (is another openvpc server running? choose another --listen)", cfg.Listen, err)
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{Store: st, Mapping: mapping.New(st, cfg.Logger), log: cfg.Logger, ln: ln, done: make(chan struct{}), extra: cfg.Collectors}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.Mapping.HealthWindow = cfg.EdgeTimeout
	go func() {
		defer close(s.done)
		_ = s.Mapping.Run(runCtx)
	}()
	s.http = &http.Server{
		Handler: s.routes(), Protocols: protocols(), ReadHeaderTimeout: 10 * time.Second,
		// Requests, streams above all, end when the server stops.
		BaseContext: func(net.Listener) context.Context { return runCtx },
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server: serve", "err", err)
		}
	}()
	select {
	case <-s.Mapping.Ready():
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("server: the mapping service could not load the store in 30s")
	}
	s.log.Info("openvpc server listening", "addr", ln.Addr().String())
	return s, nil
}

// protocols enables HTTP/1.1 (Connect, curl) and cleartext HTTP/2 (gRPC).
func protocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Compressing small messages costs more than it saves; mapping deltas
	// are small and many.
	opt := connect.WithCompressMinBytes(16 << 10)
	mux.Handle(openvpcv1connect.NewVpcServiceHandler(&api.VPCs{Store: s.Store}, opt))
	mux.Handle(openvpcv1connect.NewInstanceServiceHandler(&api.Instances{Store: s.Store, Mapping: s.Mapping}, opt))
	mux.Handle(openvpcv1connect.NewMappingServiceHandler(s.Mapping, opt))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(s.Mapping.Collectors()...)
	reg.MustRegister(s.extra...)
	s.reg = reg
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// Register adds collectors to /metrics after the server started.
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
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops serving, stops the Mapping Service and closes the store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Streams (subscriptions, event follows) never finish on their own:
	// cancel the mapping service first, then close what remains.
	s.cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	<-s.done
	return s.Store.Close()
}
