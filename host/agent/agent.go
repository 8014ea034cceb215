package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

// Config is what a host agent needs to join the network.
type Config struct {
	// Server is the URL of any openvpc server.
	Server string
	// HostID names this host; it is how instances are placed on it.
	HostID string
	// Underlay is the address other hosts send this host's packets to.
	Underlay netip.Addr
	// Role is host (runs instances) or edge.
	Role pb.HostRole
	// Functions are what an edge serves, sent when it registers.
	Functions []*pb.EdgeFunction
	// Creds are this host's certificate and the CA it trusts: every call to
	// the server is mutual TLS with them, they are renewed before they
	// expire, and the agent API is served over TLS to servers only. Nil
	// only for servers started with --insecure-loopback.
	Creds *pki.Credentials
	// CredDir, when set, is where renewed certificates are kept.
	CredDir string
	// HTTP carries the API calls (default: HTTP/2 over TLS with Creds,
	// each renewal starting new connections).
	HTTP *http.Client
	// Heartbeat is how often the agent reports in without changes.
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Wire, when set, is this host's underlay: the agent then runs the data
	// plane, giving each local instance a NIC. Without it the agent only
	// keeps the cache.
	Wire underlay.Conn
	// NIC makes the instances' NICs (default nic.NetstackBackend: a
	// userspace stack each). The caller closes it after Run returns.
	NIC nic.Backend
	// MTU is the instance MTU (default dataplane.DefaultMTU).
	MTU int
	// WirePort is the UDP port hosts receive Geneve on (default 6081).
	WirePort uint16
	// Observe, when set, is the data plane whose flows and traces the API
	// shows instead of the agent's own (an edge's).
	Observe Observed
	// API is where the agent serves AgentService (acting as its
	// instances: ping, connect), e.g. 127.0.0.1:0; empty serves nothing.
	API string
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.Server == "" {
		return errors.New("agent: no server given; pass --server URL of an openvpc server")
	}
	if err := model.ValidateHostID(c.HostID); err != nil {
		return err
	}
	if !c.Underlay.Is4() || c.Underlay.IsUnspecified() {
		return fmt.Errorf("agent: underlay address %v must be this host's own IPv4 address", c.Underlay)
	}
	if c.Creds == nil && !insecureServer(c.Server) {
		return fmt.Errorf("agent: no credentials to call %s with; join with --join-token", c.Server)
	}
	if c.Creds != nil && insecureServer(c.Server) {
		return fmt.Errorf("agent: %s is a cleartext URL; give the server's https:// URL", c.Server)
	}
	return nil
}

// Agent is a running host agent: registered with the Mapping Service and
// keeping its cache current.
type Agent struct {
	Config
	Cache    *Cache
	Sub      *Subscriber
	Plane    *dataplane.Plane // nil without a Wire
	Reporter *Reporter
	nics     *nics
	agentURL string
}

// New validates cfg and builds an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTP == nil {
		if cfg.Creds != nil {
			cfg.HTTP = &http.Client{Transport: newRotatingTransport(cfg.Creds)}
		} else {
			cfg.HTTP = pki.HTTPClient(nil)
		}
	}
	if cfg.Role == pb.HostRole_HOST_ROLE_UNSPECIFIED {
		cfg.Role = pb.HostRole_HOST_ROLE_HOST
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MTU == 0 {
		cfg.MTU = dataplane.DefaultMTU
	}
	if cfg.NIC == nil {
		cfg.NIC = nic.NetstackBackend{}
	}
	mc := openvpcv1connect.NewMappingServiceClient(cfg.HTTP, cfg.Server)
	a := &Agent{Config: cfg, Cache: NewCache(cfg.HostID, cfg.Logger), Reporter: NewReporter(mc, cfg.HostID, cfg.Logger)}
	a.Sub = &Subscriber{Client: mc, HostID: cfg.HostID, Apply: a.apply, Heartbeat: cfg.Heartbeat, Log: cfg.Logger}
	if cfg.Wire != nil {
		a.Plane = dataplane.New(a.Cache.Tables, dataplane.Config{Underlay: cfg.Underlay, MTU: cfg.MTU, Events: a.Reporter.Report, WirePort: cfg.WirePort, Wire: cfg.Wire})
		a.nics = &nics{plane: a.Plane, cache: a.Cache, backend: cfg.NIC, mtu: cfg.MTU, attached: map[uint64]*instance{}}
	}
	return a, nil
}

// apply installs a batch in the cache, then lets the NICs follow it.
func (a *Agent) apply(b Batch) error {
	if err := a.Cache.Apply(b); err != nil {
		return err
	}
	if a.nics != nil {
		a.nics.reconcile()
	}
	return nil
}

// Netstack returns the network stack of the local instance with private
// address ip in the VPC with VNI vni, to dial or listen as that instance;
// only netstack instances have one.
func (a *Agent) Netstack(vni uint32, ip netip.Addr) (*nic.Netstack, bool) {
	n, ok := a.NIC(vni, ip)
	ns, isNetstack := n.(*nic.Netstack)
	return ns, ok && isNetstack
}

// NIC returns the NIC of the local instance with private address ip in
// the VPC with VNI vni.
func (a *Agent) NIC(vni uint32, ip netip.Addr) (nic.NIC, bool) {
	if a.nics == nil {
		return nil, false
	}
	return a.nics.nic(vni, ip)
}

// Run registers (retrying while the server is away) and then keeps the
// cache current until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.API != "" && a.observed() != nil {
		url, err := a.serveAPI(ctx, a.API)
		if err != nil {
			return err
		}
		a.agentURL = url
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	a.Logger.Info("host agent joined", "host", a.HostID, "underlay", a.Underlay, "server", a.Server)
	go a.Reporter.Run(ctx)
	if a.Creds != nil {
		go a.renewLoop(ctx)
	}
	if a.Plane != nil {
		go func() { _ = a.Plane.ServeWire() }()
		defer a.nics.closeAll()
	}
	return a.Sub.Run(ctx)
}

func (a *Agent) register(ctx context.Context) error {
	req := &pb.RegisterRequest{HostId: a.HostID, UnderlayAddress: a.Underlay.String(), Role: a.Role, AgentUrl: a.agentURL, Functions: a.Functions}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		_, err := a.Sub.Client.Register(ctx, connect.NewRequest(req))
		switch code := connect.CodeOf(err); {
		case err == nil:
			return nil
		case code == connect.CodeInvalidArgument || code == connect.CodeAlreadyExists || code == connect.CodePermissionDenied:
			return fmt.Errorf("agent: registration refused: %w", err)
		}
		a.Logger.Warn("cannot register yet; retrying", "server", a.Server, "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
