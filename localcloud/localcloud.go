// Package localcloud runs a whole openvpc cloud in one process: a server on
// embedded etcd (or a given etcd), host agents on distinct loopback
// addresses, edges and a simulated internet. `openvpc up`, `openvpc demo`
// and the in-process tests (testcloud) all build their clouds here.
//
// Nothing it starts needs root (instances get userspace stacks unless
// NIC is "tun") and no packet leaves loopback: the underlay is 127/8 and
// the internet is simulated, on documentation addresses.
package localcloud

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/underlay"
)

// Limits of a local cloud: host-i takes address .i of the underlay /24 and
// edge-i takes .250+i.
const (
	MaxHosts = 250
	MaxEdges = 4
)

// Config says what cloud to run. Start from DefaultConfig (the cloud of
// `openvpc up`), or give at least Server; other zero values are defaults,
// applied once by New.
type Config struct {
	// Server configures the first server. Its store is an embedded etcd
	// in Server.Store.DataDir unless Server.Store.Endpoints names one. Its
	// AdminConfig (the client config: URL, CA, admin token) is written only
	// once everything New starts is serving, so that a cloud that failed to
	// start leaves no config pointing at nothing.
	Server server.Config
	// Hosts is how many host agents New starts: host-1 … at addresses .1 …
	// of Underlay (0–250). More can be added with AddHost.
	Hosts int
	// Edges is how many edges New starts: edge-1 … at .251 … of Underlay
	// (0–4), their outside on a simulated internet with a web server at
	// WebAddr and a client at ClientAddr. Without edges there is no
	// internet; AddEdge attaches edges to an outside of the caller's.
	Edges int
	// Proxy is a loopback host:port for an HTTP proxy into the internet, to
	// reach Elastic IPs as its client does; empty for none. Needs Edges.
	Proxy string
	// InternetDNS is a loopback host:port for the internet's resolver
	// (port 0 picks one; default 127.0.0.1:0), which answers its names
	// (www.example.test: WebAddr) and becomes the server's DNS upstream,
	// unless Server.DNSUpstream names one. With Edges only; "-" for none.
	InternetDNS string
	// NIC is how instances get their NICs: "netstack" (the default:
	// userspace stacks, no root), "tun" (a Linux network namespace per
	// instance, kept under Server.Store.DataDir/nics; root) or "veth" (the
	// same with a veth pair; the underlay is loopback, so the kernel fast
	// path cannot run and the Go story takes every packet).
	NIC string
	// WirePort is the UDP port hosts and edges receive Geneve on (default
	// underlay.Port, 6081).
	WirePort uint16
	// Underlay is the loopback /24 hosts and edges take their addresses
	// from (default 127.0.1.0/24). The whole of 127/8 is loopback on
	// Linux, so each can bind WirePort on its own address without root.
	Underlay netip.Prefix
	// AnyUnderlay lets New move to the next loopback /24 when an address of
	// Underlay is taken on WirePort (another cloud runs there): for clouds
	// that nobody looks for at a known address, such as the demo's.
	AnyUnderlay bool
	// S3 runs the object store and its service node (AddS3), registered
	// as S3ServiceName, its objects under Server.Store.DataDir/s3. Needs
	// Edges.
	S3 bool
	// Heartbeat is how often host agents report in without changes, and
	// EdgeHeartbeat how often edges do (default: the agent's).
	Heartbeat, EdgeHeartbeat time.Duration
	// EdgeFunctions, when set, gives edge id functions beyond gateway
	// endpoints (the demo's VPN, as root in a namespace of its own), and
	// bind, called with the edge's node before it runs, connects them to
	// the Mapping Service. Nil (the default) for none.
	EdgeFunctions func(id string) (fns []edge.Function, bind func(*edge.Node), err error)
	// Log receives the logs of every part (default: discarded).
	Log *slog.Logger
}

// DefaultConfig is the cloud of a plain `openvpc up`: 3 hosts and an edge
// on 127.0.1.x:6081, state in ./.openvpc, Elastic IPs from a documentation
// range, the internet's proxy on 127.0.0.1:7071.
func DefaultConfig() Config {
	cfg := Config{Server: server.DefaultConfig(), Hosts: 3, Edges: 1, Proxy: "127.0.0.1:7071", S3: true}
	cfg.Server.Logger = nil // Log's
	cfg.Server.Store.EIPPools = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	return cfg
}

// defaultUnderlay is where hosts live unless Config.Underlay says otherwise.
var defaultUnderlay = netip.MustParsePrefix("127.0.1.0/24")

// setDefaults fills in what cfg leaves zero.
func (c *Config) setDefaults() {
	if c.NIC == "" {
		c.NIC = "netstack"
	}
	if c.WirePort == 0 {
		c.WirePort = underlay.Port
	}
	if !c.Underlay.IsValid() {
		c.Underlay = defaultUnderlay
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Server.Logger == nil {
		c.Server.Logger = c.Log
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.Hosts < 0 || c.Hosts > MaxHosts {
		return fmt.Errorf("localcloud: %d hosts: run between 0 and %d (host-i takes address .i of the underlay /24)", c.Hosts, MaxHosts)
	}
	if c.Edges < 0 || c.Edges > MaxEdges {
		return fmt.Errorf("localcloud: %d edges: run between 0 and %d", c.Edges, MaxEdges)
	}
	if c.NIC != "" && c.NIC != "netstack" && c.NIC != "tun" && c.NIC != "veth" {
		return fmt.Errorf("localcloud: NIC %q is not known; use netstack (userspace stacks), tun or veth (Linux namespaces, root)", c.NIC)
	}
	if u := c.Underlay; u.IsValid() && (!u.Addr().Is4() || !u.Addr().IsLoopback() || u.Bits() != 24 || u != u.Masked()) {
		return fmt.Errorf("localcloud: underlay %v must be a /24 of loopback, such as 127.0.1.0/24", u)
	}
	if c.Proxy != "" {
		if _, _, err := net.SplitHostPort(c.Proxy); err != nil {
			return fmt.Errorf("localcloud: internet proxy address %q: %v; write it as host:port, or leave it empty for none", c.Proxy, err)
		}
	}
	return c.Server.Validate()
}

// Cloud is a running local cloud. Its parts run from the moment New (or
// AddHost, AddEdge, AddServer) starts them until Run or Close ends them.
type Cloud struct {
	cfg Config
	// Hosts and Edges are the parts New started, in order.
	Hosts []*Host
	Edges []*Edge
	// Internet is the simulated internet of the cloud's edges (nil without).
	Internet *Internet
	// S3 is the object store New started (nil without Config.S3).
	S3 *S3
	// internetDNS is the internet's resolver, the server's DNS upstream
	// (nil without).
	internetDNS *internetDNS

	ctx    context.Context // the parts run in it
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per running part
	failed chan struct{}  // closed on the first part's failure
	err    error          // that failure

	mu      sync.Mutex
	parts   []func() // stop and release a part, in start order
	servers []*server.Server
	closed  bool
}

// New applies cfg's defaults, validates it and starts the cloud: it binds
// every underlay address first, then starts the server, the internet, the
// hosts and the edges, and last writes the client config. A failure stops
// what was started.
func New(ctx context.Context, cfg Config) (*Cloud, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cloud{cfg: cfg, failed: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := c.start(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

func (c *Cloud) start(ctx context.Context) (err error) {
	hosts, edges, err := c.bindUnderlay()
	if err != nil {
		return err
	}
	// A part owns its wire from its start on (closing it on failure too);
	// on failure, those not handed out yet are closed here.
	defer func() {
		if err != nil {
			closeAll(hosts, edges)
		}
	}()
	if c.cfg.Edges > 0 && c.cfg.Server.DNSUpstream == "" && c.cfg.InternetDNS != "-" {
		if c.internetDNS, err = startInternetDNS(cmp.Or(c.cfg.InternetDNS, "127.0.0.1:0")); err != nil {
			return err
		}
		c.cfg.Server.DNSUpstream = c.internetDNS.Addr()
	}
	s, err := c.AddServer(ctx, c.cfg.Server.Listen)
	if err != nil {
		return err
	}
	if c.cfg.Edges > 0 {
		if c.Internet, err = startInternet(s.Store.EIPPools(), c.cfg.Proxy); err != nil {
			return err
		}
	}
	for len(hosts) > 0 {
		w := hosts[0]
		hosts = hosts[1:]
		h, err := c.startHost(ctx, hostID(len(c.Hosts)+1), w, true)
		if err != nil {
			return err
		}
		c.Hosts = append(c.Hosts, h)
	}
	for len(edges) > 0 {
		w := edges[0]
		edges = edges[1:]
		e, err := c.startEdge(ctx, fmt.Sprintf("edge-%d", len(c.Edges)+1), w, c.Internet.Attach(), true)
		if err != nil {
			return err
		}
		c.Edges = append(c.Edges, e)
	}
	if c.cfg.S3 && len(c.Edges) > 0 {
		dir := ""
		if d := c.cfg.Server.Store.DataDir; d != "" {
			dir = s3Dir(d)
		}
		if c.S3, err = c.AddS3(ctx, S3Config{Dir: dir}); err != nil {
			return fmt.Errorf("object store: %w", err)
		}
	}
	if admin := c.cfg.Server.AdminConfig; admin != "" && !c.cfg.Server.Trust.Insecure {
		if _, err := s.Trust.EnsureAdminConfig(ctx, admin, s.ClientURL()); err != nil {
			return fmt.Errorf("client config %s: %w (choose another path with --admin-config)", admin, err)
		}
	}
	return nil
}

func hostID(i int) string { return fmt.Sprintf("host-%d", i) }

func closeAll(sets ...[]*underlay.UDPConn) {
	for _, s := range sets {
		for _, w := range s {
			w.Close()
		}
	}
}

// Config is the cloud's configuration, defaults applied.
func (c *Cloud) Config() Config { return c.cfg }

// Server returns server i (0 is the one New started); nil once stopped.
func (c *Cloud) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// AddServer starts another server on the cloud's store, listening on
// listen; it serves until StopServer or Close. Servers share an external
// etcd (Server.Store.Endpoints): an embedded one has a single server.
func (c *Cloud) AddServer(ctx context.Context, listen string) (*server.Server, error) {
	cfg := c.cfg.Server
	// New writes the client config once the whole cloud is up.
	cfg.Listen, cfg.AdminConfig = listen, ""
	s, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	return s, nil
}

// StopServer stops server i; its address may be reused by AddServer.
func (c *Cloud) StopServer(i int) error {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// run starts a part: fn runs until ctx ends or the part is stopped. A
// failure (an error other than its end) stops Run. The returned stop ends
// the part, waits for it and then releases what it holds, once.
func (c *Cloud) run(fn func(context.Context) error, release ...func()) (stop func()) {
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			c.fail(err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			for _, r := range release {
				r()
			}
		})
	}
	c.mu.Lock()
	c.parts = append(c.parts, stop)
	c.mu.Unlock()
	return stop
}

func (c *Cloud) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.failed)
	}
}

// Run waits until ctx ends or a part fails, then stops the whole cloud
// (as Close does) and returns once everything has stopped: nil when ctx
// ended, else the first failure.
func (c *Cloud) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-c.failed:
	}
	err := c.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(c.err, err)
}

// stopParts stops every part, the last started first.
func (c *Cloud) stopParts() {
	c.cancel()
	c.mu.Lock()
	parts := c.parts
	c.parts = nil
	c.mu.Unlock()
	for i := len(parts) - 1; i >= 0; i-- {
		parts[i]()
	}
	c.wg.Wait()
}

// Close stops everything the cloud started (parts, internet, servers) and
// waits for it. It is safe to call more than once.
func (c *Cloud) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.stopParts()
	if c.Internet != nil {
		c.Internet.close()
	}
	if c.internetDNS != nil {
		c.internetDNS.close()
	}
	var errs []error
	for i := range c.servers {
		errs = append(errs, c.StopServer(i))
	}
	return errors.Join(errs...)
}
