package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/pki"
)

// Config is what a node needs to join the network, whatever its role.
type Config struct {
	// Server is the URL of any openvpc server.
	Server string
	// HostID names this host or edge; it is how instances are placed on a
	// host.
	HostID string
	// Underlay is the address other hosts send this node's packets to.
	Underlay netip.Addr
	// Role is host (runs instances) or edge (default host).
	Role pb.HostRole
	// Functions are what an edge serves (internet, VPN tunnels, Direct
	// Connect, endpoints), registered with it so the Mapping Service can
	// give it the scope of each and point hosts at it. Hosts serve none.
	Functions []*pb.EdgeFunction
	// Creds are this node's certificate and the CA it trusts: every call to
	// the server is mutual TLS with them, they are renewed before they
	// expire, and the node API is served over TLS to servers only. Nil
	// only for servers started with --insecure-loopback.
	Creds *pki.Credentials
	// CredDir, when set, is where renewed certificates are kept.
	CredDir string
	// HTTP carries the API calls (default: HTTP/2 over TLS with Creds,
	// each renewal starting new connections, all closed when Run ends; a
	// client given here is the caller's to close).
	HTTP *http.Client
	// Heartbeat is how often the node reports in without changes (default
	// the Subscriber's).
	Heartbeat time.Duration
	Logger    *slog.Logger
	// API is where the node serves AgentService (flows, traces and, on a
	// host, acting as its instances), e.g. 127.0.0.1:0; empty serves
	// nothing.
	API string
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.Server == "" {
		return errors.New("node: no server given; pass --server URL of an openvpc server")
	}
	if err := model.ValidateHostID(c.HostID); err != nil {
		return err
	}
	if !c.Underlay.Is4() || c.Underlay.IsUnspecified() {
		return fmt.Errorf("node: underlay address %v must be this host's own IPv4 address", c.Underlay)
	}
	if c.Creds == nil && !insecureServer(c.Server) {
		return fmt.Errorf("node: no credentials to call %s with; join with --join-token", c.Server)
	}
	if c.Creds != nil && insecureServer(c.Server) {
		return fmt.Errorf("node: %s is a cleartext URL; give the server's https:// URL", c.Server)
	}
	if len(c.Functions) > 0 && c.Role != pb.HostRole_HOST_ROLE_EDGE {
		return fmt.Errorf("node: %s is a host; only edges serve functions", c.HostID)
	}
	return nil
}

// Node is what a host agent and an edge share: registered with the
// Mapping Service, keeping its cache current, reporting security events,
// renewing its certificate and serving the node API.
type Node struct {
	Config
	Cache    *Cache
	Sub      *Subscriber
	Reporter *Reporter
	// dnsUpstream is the server's DNS upstream, as its last registration
	// answered ("" for none).
	dnsUpstream atomic.Pointer[string]
	// role is what Run serves; set once, before the subscription starts.
	role Role
	// conns are the connections of the HTTP client New made, closed when
	// Run ends.
	conns conns
}

// Role is what a node's role (a host's data plane and instances, an
// edge's data plane) adds to the node; Run serves it.
type Role struct {
	// Observed is the data plane the node API shows; without it the node
	// serves no API.
	Observed Observed
	// Instances, on a host, are the instances the API acts as.
	Instances Instances
	// Applied is called after each batch is installed in the cache, from
	// the subscription's goroutine (a host lets its NICs follow).
	Applied func()
	// Serve runs the role's own loops (the data plane) until ctx ends, and
	// returns only once they all stopped.
	Serve func(ctx context.Context) error
}

// New applies cfg's defaults, validates it and builds a node; Run starts
// it.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Role == pb.HostRole_HOST_ROLE_UNSPECIFIED {
		cfg.Role = pb.HostRole_HOST_ROLE_HOST
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{Config: cfg, Cache: NewCache(cfg.HostID, cfg.Logger)}
	if n.HTTP == nil {
		if cfg.Creds != nil {
			n.HTTP = &http.Client{Transport: newRotatingTransport(cfg.Creds, &n.conns)}
		} else {
			n.HTTP = &http.Client{Transport: n.conns.wrap(pki.HTTPClient(nil).Transport.(*http.Transport))}
		}
	}
	mc := openvpcv1connect.NewMappingServiceClient(n.HTTP, cfg.Server)
	n.Reporter = NewReporter(mc, cfg.HostID, cfg.Logger)
	n.Sub = &Subscriber{Client: mc, HostID: cfg.HostID, Apply: n.apply, Removed: n.removed, Heartbeat: cfg.Heartbeat, Log: cfg.Logger}
	return n, nil
}

// apply installs a batch in the cache, then lets the role follow it.
func (n *Node) apply(b Batch) error {
	if err := n.Cache.Apply(b); err != nil {
		return err
	}
	if n.role.Applied != nil {
		n.role.Applied()
	}
	return nil
}

// removed empties the cache once the server says this node was removed:
// nothing it holds is valid any more, and a host's instances (their NICs,
// their namespaces) go with it at once rather than when it stops.
func (n *Node) removed() {
	if err := n.apply(Batch{Snapshot: true, Revision: n.Sub.Revision()}); err != nil {
		n.Logger.Error("cannot empty the cache of a removed node", "host", n.HostID, "err", err)
	}
}

// Run serves the node with role r: it serves the node API, registers
// (retrying while the server is away), then keeps the cache current,
// reports events and renews the certificate, while r.Serve runs beside.
// It returns when ctx ends or any part fails, once every part stopped,
// with the first error (ctx's when it ended). A node runs once.
func (n *Node) Run(ctx context.Context, r Role) error {
	n.role = r
	g, ctx := errgroup.WithContext(ctx)
	agentURL := ""
	if n.API != "" && r.Observed != nil {
		srv, url, err := n.listenAPI(r)
		if err != nil {
			return err
		}
		agentURL = url
		g.Go(srv.serve)
		g.Go(func() error {
			<-ctx.Done()
			return srv.close()
		})
	}
	if r.Serve != nil {
		g.Go(func() error { return r.Serve(ctx) })
	}
	g.Go(func() error {
		if err := n.register(ctx, agentURL); err != nil {
			return err
		}
		n.Logger.Info(roleName(n.Role)+" joined", "host", n.HostID, "underlay", n.Underlay, "server", n.Server)
		g.Go(func() error { return n.Reporter.Run(ctx) })
		if n.Creds != nil {
			r := &Renewer{Server: n.Server, ID: n.HostID, Creds: n.Creds, Dir: n.CredDir, HTTP: n.HTTP, Logger: n.Logger}
			g.Go(func() error { return r.Run(ctx) })
		}
		return n.Sub.Run(ctx)
	})
	err := g.Wait()
	// Connections keep goroutines of their own (HTTP/2 read loops) on
	// both ends; Run leaves nothing running.
	n.conns.closeAll()
	return err
}

// DNSUpstream is where the VPC resolvers forward names they do not
// answer (ip:port), as the server said at registration; "" for none.
func (n *Node) DNSUpstream() string {
	if p := n.dnsUpstream.Load(); p != nil {
		return *p
	}
	return ""
}

func (n *Node) register(ctx context.Context, agentURL string) error {
	req := &pb.RegisterRequest{HostId: n.HostID, UnderlayAddress: n.Underlay.String(), Role: n.Role, AgentUrl: agentURL, Functions: n.Functions}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		resp, err := n.Sub.Client.Register(ctx, connect.NewRequest(req))
		switch code := connect.CodeOf(err); {
		case err == nil:
			n.dnsUpstream.Store(&resp.Msg.DnsUpstream)
			return nil
		case code == connect.CodeInvalidArgument || code == connect.CodeAlreadyExists || code == connect.CodePermissionDenied:
			return fmt.Errorf("node: registration refused: %w", err)
		}
		n.Logger.Warn("cannot register yet; retrying", "server", n.Server, "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
