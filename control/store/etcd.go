package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Config says where the store keeps its state.
type Config struct {
	// DataDir holds the embedded etcd's data (DataDir/etcd). Used when
	// Endpoints is empty.
	DataDir string
	// Endpoints names an external etcd cluster, e.g. http://10.0.0.1:2379.
	// When set, no etcd is embedded.
	Endpoints []string
	// Prefix is prepended to every key, so several clouds can share one etcd.
	Prefix string
	// DialTimeout bounds connecting to an external etcd.
	DialTimeout time.Duration
	// Logger receives the store's own logs.
	Logger *slog.Logger
	// EIPPools are the public ranges Elastic IPs are allocated from. Empty:
	// AllocateAddress is refused with a hint to configure one.
	EIPPools []netip.Prefix
	// VPNPools are the public ranges VPN tunnels' outside addresses are
	// allocated from. Empty: the EIP pools.
	VPNPools []netip.Prefix
}

// DefaultConfig returns a Config with defaults filled in.
func DefaultConfig() Config {
	return Config{DataDir: ".openvpc", Prefix: "/openvpc/", DialTimeout: 5 * time.Second, Logger: slog.Default()}
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 && c.DataDir == "" {
		return errors.New("store: set a data dir for the embedded etcd, or etcd endpoints")
	}
	for _, e := range c.Endpoints {
		if _, err := url.Parse(e); err != nil {
			return fmt.Errorf("store: etcd endpoint %q is not a URL: %v", e, err)
		}
	}
	if c.Prefix == "" || c.Prefix[len(c.Prefix)-1] != '/' {
		return fmt.Errorf("store: key prefix %q must end with '/'", c.Prefix)
	}
	return nil
}

// Open connects to etcd (starting the embedded one if no endpoints are
// given) and returns a ready Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Endpoints) > 0 {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.DialTimeout,
			Logger:      zap.NewNop(),
			Context:     ctx,
		})
		if err != nil {
			return nil, fmt.Errorf("store: connect to etcd %v: %w", cfg.Endpoints, err)
		}
		// Fail now, with a clear message, rather than on the first request.
		sctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		defer cancel()
		if _, err := c.Get(sctx, cfg.Prefix+"probe"); err != nil {
			c.Close()
			return nil, fmt.Errorf("store: etcd %v does not answer: %w; check --etcd-endpoints", cfg.Endpoints, err)
		}
		return newStore(c, cfg, nil), nil
	}
	// Before etcd: a second server on this dir fails at once, saying who
	// holds it, instead of waiting on etcd's own file lock.
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	e, err := StartEmbeddedContext(ctx, EmbedConfig{Dir: filepath.Join(cfg.DataDir, "etcd"), Name: "openvpc"})
	if err != nil {
		lock.release()
		return nil, err
	}
	s := newStore(v3client.New(e.Server), cfg, e)
	s.lock = lock
	return s, nil
}

// EmbedConfig describes one member of an embedded etcd cluster.
type EmbedConfig struct {
	Dir  string
	Name string
	// ClientURL and PeerURL default to 127.0.0.1 with a kernel-chosen port
	// (single member) — set both for a multi-member cluster.
	ClientURL, PeerURL string
	// InitialCluster is "name=peerURL,…" for a multi-member cluster.
	InitialCluster string
}

// StartEmbedded starts an etcd member in-process and waits until it serves.
func StartEmbedded(ec EmbedConfig) (*embed.Etcd, error) {
	return StartEmbeddedContext(context.Background(), ec)
}

// StartEmbeddedContext is StartEmbedded, giving up when ctx ends (a signal
// during start-up).
func StartEmbeddedContext(ctx context.Context, ec EmbedConfig) (*embed.Etcd, error) {
	if err := os.MkdirAll(ec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create etcd data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = ec.Name
	cfg.Dir = ec.Dir
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{filepath.Join(ec.Dir, "etcd.log")}
	// Keep five minutes of history so reconnecting hosts can resume
	// from their revision rather than take a full snapshot.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "5m"
	clientURL, peerURL := "http://127.0.0.1:0", "http://127.0.0.1:0"
	if ec.ClientURL != "" {
		clientURL = ec.ClientURL
	}
	if ec.PeerURL != "" {
		peerURL = ec.PeerURL
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("store: etcd client URL: %w", err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("store: etcd peer URL: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if ec.InitialCluster != "" {
		cfg.InitialCluster = ec.InitialCluster
	}
	// StartEtcd itself can block (on its database's file lock): wait for
	// it beside ctx, and close what it started if ctx won.
	type started struct {
		e   *embed.Etcd
		err error
	}
	startc := make(chan started, 1)
	go func() {
		e, err := embed.StartEtcd(cfg)
		startc <- started{e, err}
	}()
	var e *embed.Etcd
	select {
	case r := <-startc:
		if r.err != nil {
			return nil, fmt.Errorf("store: start embedded etcd in %s: %w (is another openvpc server using this data dir?)", ec.Dir, r.err)
		}
		e = r.e
	case <-ctx.Done():
		go func() {
			if r := <-startc; r.e != nil {
				r.e.Close()
			}
		}()
		return nil, fmt.Errorf("store: start of embedded etcd interrupted: %w", ctx.Err())
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd failed: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("store: start of embedded etcd interrupted: %w", ctx.Err())
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("store: embedded etcd did not become ready in 60s")
	}
}
