// Package trust decides who may call what on an openvpc server. It owns the
// cloud's CA (kept in the store, so every server over it shares one), gives
// hosts and edges certificates bound to their id, role and underlay address
// against one-time join tokens, renews and revokes them, checks
// administrators' bearer tokens, and serves TrustService.
package trust

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/pki"
)

// Config is the server's trust settings.
type Config struct {
	// Insecure serves without TLS and without authentication: for
	// development on loopback only (--insecure-loopback).
	Insecure bool
	// CertTTL is the lifetime of host, edge and service node certificates (default
	// pki.DefaultCertTTL); agents renew at two thirds of it.
	CertTTL time.Duration
	// CACertFile and CAKeyFile, when set, give the CA to use (PEM). It is
	// stored on first start; servers over a store that has another CA
	// refuse to start. Unset: the store's CA, made on first start.
	CACertFile, CAKeyFile string
	// Names and IPs are extra names of this server for its certificate,
	// so clients may dial it by them (curl --cacert).
	Names []string
	IPs   []netip.Addr
}

// Authority is one server's view of the cloud's trust.
type Authority struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
	CA    *pki.CA

	serverCert atomic.Pointer[tls.Certificate]
	certMu     sync.Mutex

	revokedMu sync.RWMutex
	revoked   map[string]bool
	// watching is the revocation watch New started; Wait waits for it.
	watching sync.WaitGroup

	adminMu sync.Mutex
	admins  map[string]adminEntry

	agentMu      sync.Mutex
	agentClients map[string]*http.Client

	// Record stores a security event (set by the server: the Mapping
	// Service's rate-limited events).
	Record func(context.Context, *pb.SecurityEvent)
	// Removed is told when a host is removed, to end its streams at once.
	Removed func(host string)
	// Terminate ends an instance (when its host is removed), as the
	// management API would.
	Terminate func(ctx context.Context, id string) error
}

// adminEntry caches a checked admin token for a while, so management
// calls do not each read the store.
type adminEntry struct {
	hash string
	at   time.Time
}

const adminCacheFor = 30 * time.Second

// New loads (or, on first start, makes) the CA and follows revocations
// until ctx ends. In insecure mode there is none of that.
func New(ctx context.Context, st *store.Store, cfg Config, log *slog.Logger) (*Authority, error) {
	if cfg.CertTTL == 0 {
		cfg.CertTTL = pki.DefaultCertTTL
	}
	a := &Authority{cfg: cfg, store: st, log: log, revoked: map[string]bool{}, admins: map[string]adminEntry{}, agentClients: map[string]*http.Client{}}
	if cfg.Insecure {
		return a, nil
	}
	if (cfg.CACertFile == "") != (cfg.CAKeyFile == "") {
		return nil, errors.New("trust: give both --ca-cert and --ca-key, or neither")
	}
	if cfg.CACertFile != "" {
		c, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("trust: --ca-cert: %w", err)
		}
		k, err := os.ReadFile(cfg.CAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("trust: --ca-key: %w", err)
		}
		if _, err := pki.LoadCA(c, k); err != nil {
			return nil, err
		}
		if err := st.PutCA(ctx, c, k); err != nil {
			return nil, err
		}
	}
	certPEM, keyPEM, created, err := st.LoadOrCreateCA(ctx, func() ([]byte, []byte, error) { return pki.NewCA("openvpc CA") })
	if err != nil {
		return nil, err
	}
	if a.CA, err = pki.LoadCA(certPEM, keyPEM); err != nil {
		return nil, err
	}
	if created {
		log.Info("created the cloud's CA", "fingerprint", a.CA.Fingerprint())
	}
	if _, err := a.renewServerCert(); err != nil {
		return nil, err
	}
	// Revocations made before this server started must be known before it
	// serves.
	loaded := make(chan struct{})
	a.watching.Go(func() {
		st.WatchRevoked(ctx, func(serial string) {
			a.revokedMu.Lock()
			a.revoked[serial] = true
			a.revokedMu.Unlock()
		}, func() { close(loaded) })
	})
	select {
	case <-loaded:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		return nil, errors.New("trust: could not read the revoked certificates from etcd in 30s; is it reachable?")
	}
	return a, nil
}

// Wait returns once what New started (the revocation watch) has stopped:
// after New's ctx ended, before the store closes.
func (a *Authority) Wait() { a.watching.Wait() }

// Insecure reports whether authentication is off.
func (a *Authority) Insecure() bool { return a.cfg.Insecure }

// CertTTL is the lifetime of host certificates.
func (a *Authority) CertTTL() time.Duration { return a.cfg.CertTTL }

func (a *Authority) isRevoked(serial string) bool {
	a.revokedMu.RLock()
	defer a.revokedMu.RUnlock()
	return a.revoked[serial]
}

// renewServerCert issues this server a fresh certificate (its key lives in
// memory only: a restarted server simply gets another).
func (a *Authority) renewServerCert() (*tls.Certificate, error) {
	a.certMu.Lock()
	defer a.certMu.Unlock()
	if c := a.serverCert.Load(); c != nil && time.Until(c.Leaf.NotAfter) > pki.ServerCertTTL/3 {
		return c, nil
	}
	hostname, _ := os.Hostname()
	names := append([]string{"localhost"}, a.cfg.Names...)
	if hostname != "" {
		names = append(names, hostname)
	}
	ips := append([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, a.cfg.IPs...)
	c, err := a.CA.Issue(pki.Template{ID: "server-" + hostname, Role: pki.RoleServer, TTL: pki.ServerCertTTL, Names: names, IPs: ips})
	if err != nil {
		return nil, err
	}
	a.serverCert.Store(&c)
	return &c, nil
}

// ServerCert is this server's certificate, renewed when it ages.
func (a *Authority) ServerCert() *tls.Certificate {
	c := a.serverCert.Load()
	if time.Until(c.Leaf.NotAfter) < pki.ServerCertTTL/3 {
		if n, err := a.renewServerCert(); err == nil {
			return n
		}
	}
	return c
}

// TLS is the API listener's TLS configuration.
func (a *Authority) TLS() *tls.Config {
	return pki.ServerTLS(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.ServerCert(), nil }, a.CA.Pool())
}

// ListenerIPs are the addresses a server listening on addr may be dialed
// at: the address itself, or every local address when it is unspecified.
func ListenerIPs(addr string) []netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	if !ip.IsUnspecified() {
		return []netip.Addr{ip}
	}
	var out []netip.Addr
	ifs, _ := net.InterfaceAddrs()
	for _, ia := range ifs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// IssueAgent gives a host or edge that runs inside this server's process
// (`openvpc up`) its credentials directly: no token, no network.
func (a *Authority) IssueAgent(ctx context.Context, id string, role pki.Role, underlay netip.Addr) (*pki.Credentials, error) {
	c, err := a.CA.Issue(pki.Template{ID: id, Role: role, Underlay: underlay, TTL: a.cfg.CertTTL})
	if err != nil {
		return nil, err
	}
	if err := a.store.RecordCert(ctx, id, pki.Serial(c.Leaf), c.Leaf.NotAfter); err != nil {
		return nil, err
	}
	return pki.NewCredentials(c, a.CA.CertPEM)
}

// AgentClient is the HTTP client to call host's agent at url: over TLS
// with this server's certificate, expecting the agent to prove it is host.
func (a *Authority) AgentClient(host, url string) (*http.Client, error) {
	secureURL := strings.HasPrefix(url, "https://")
	if a.cfg.Insecure {
		if secureURL {
			return nil, fmt.Errorf("host %s serves its agent API over TLS, which a server started with --insecure-loopback cannot call", host)
		}
		return pki.HTTPClient(nil), nil
	}
	if !secureURL {
		return nil, fmt.Errorf("host %s serves its agent API without TLS (%s); only agents of an --insecure-loopback server may", host, url)
	}
	a.agentMu.Lock()
	defer a.agentMu.Unlock()
	if c := a.agentClients[host]; c != nil {
		return c, nil
	}
	c := pki.HTTPClient(pki.AgentClientTLS(a.CA.Pool(), a.ServerCert, host))
	a.agentClients[host] = c
	return c, nil
}

// AgentTLS is the TLS configuration to dial host's agent for a raw
// HTTP/1.1 upgrade (port forwarding).
func (a *Authority) AgentTLS(host string) *tls.Config {
	if a.cfg.Insecure {
		return nil
	}
	c := pki.AgentClientTLS(a.CA.Pool(), a.ServerCert, host)
	c.NextProtos = []string{"http/1.1"}
	return c
}
