// Package testcloud builds small openvpc clouds inside one process for
// tests: a local cloud (localcloud: real servers on loopback over a real
// embedded etcd, real host agents and edges) that stops with the test, and
// what tests check it with: simulated hosts subscribed through the real
// Mapping Service API and Expected, an oracle of what a host must hold.
package testcloud

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/cli"
	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/localcloud"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
)

// Etcd is an embedded etcd shared by the clouds of one test binary; each
// cloud uses its own key prefix.
type Etcd struct {
	Endpoint string
	stop     func()
}

// StartEtcd starts an embedded etcd in a fresh temporary directory.
func StartEtcd() (*Etcd, error) {
	dir, err := os.MkdirTemp("", "openvpc-etcd")
	if err != nil {
		return nil, err
	}
	e, err := store.StartEmbedded(store.EmbedConfig{Dir: dir, Name: "test"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	et := &Etcd{Endpoint: "http://" + e.Clients[0].Addr().String(), stop: func() { e.Close(); os.RemoveAll(dir) }}
	// etcd finishes starting its serving goroutines after it says it is
	// ready; once it answers /health they all run, so a test that counts
	// goroutines (CheckLeaks) does not see them as its own.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r, err := http.Get(et.Endpoint + "/health")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			et.Stop()
			return nil, fmt.Errorf("etcd does not answer %s/health: %v", et.Endpoint, err)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	return et, nil
}

// Stop stops the etcd and removes its data.
func (e *Etcd) Stop() { e.stop() }

var prefixes atomic.Int64

// Cloud is a local cloud (localcloud) for one test: one or more servers over
// one etcd prefix, the host agents and edges tests add, and the simulated
// hosts subscribed to it. It stops with the test.
type Cloud struct {
	t      testing.TB
	etcd   *Etcd
	prefix string
	opts   Options
	Log    *slog.Logger
	// Heartbeat is how often simulated hosts report in without changes
	// (host agents: every second).
	Heartbeat time.Duration
	local     *localcloud.Cloud
	// admin is the client config the first server wrote: its CA and an
	// admin token, as a user would have them.
	admin     *pki.ClientConfig
	adminPath string
	// insecureHTTP is the one cleartext client of an insecure cloud: its
	// simulated hosts share a few connections.
	insecureHTTP *http.Client
	adminOnce    sync.Once
	adminConn    *cli.Conn
}

// EIPPool is the Elastic IP pool of test clouds: a documentation range.
var EIPPool = netip.MustParsePrefix("198.51.100.0/24")

// EdgeTimeout is how long a test cloud's edges may miss heartbeats (they
// send one every EdgeHeartbeat) before hosts stop choosing them.
const (
	EdgeTimeout   = time.Second
	EdgeHeartbeat = 200 * time.Millisecond
)

// Options change how a test cloud runs.
type Options struct {
	// Insecure runs the servers with --insecure-loopback: no TLS, no
	// tokens, request fields believed. Only for tests about something
	// else that need thousands of simulated hosts (a TLS connection each).
	Insecure bool
	// CertTTL is the lifetime of host certificates (default: the server's).
	CertTTL time.Duration
	// DNSUpstream is the server's --dns-upstream (a resolver the test
	// runs on loopback).
	DNSUpstream string
}

// New starts a cloud with one server on etcd: TLS, tokens and
// certificates, as in production.
func New(t testing.TB, etcd *Etcd) *Cloud { return NewWith(t, etcd, Options{}) }

// NewWith starts a cloud with one server on etcd, as opts say.
func NewWith(t testing.TB, etcd *Etcd, opts Options) *Cloud {
	t.Helper()
	c := &Cloud{
		t: t, etcd: etcd, prefix: fmt.Sprintf("/cloud-%d-%d/", time.Now().UnixNano(), prefixes.Add(1)), opts: opts,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Heartbeat: time.Second, insecureHTTP: pki.HTTPClient(nil),
	}
	if testing.Verbose() {
		c.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg := localcloud.Config{
		Server: server.DefaultConfig(), WirePort: freeWirePort(t),
		Heartbeat: c.Heartbeat, EdgeHeartbeat: EdgeHeartbeat, Log: c.Log,
	}
	cfg.Server.Listen, cfg.Server.Logger = "127.0.0.1:0", c.Log
	cfg.Server.Metrics = "127.0.0.1:0" // their own listener, as in production
	cfg.Server.Store.Endpoints, cfg.Server.Store.Prefix = []string{etcd.Endpoint}, c.prefix
	cfg.Server.Store.EIPPools = []netip.Prefix{EIPPool}
	cfg.Server.EdgeTimeout = EdgeTimeout
	cfg.Server.DNSUpstream = opts.DNSUpstream
	cfg.Server.Trust.Insecure, cfg.Server.Trust.CertTTL = opts.Insecure, opts.CertTTL
	if !opts.Insecure {
		// The first server writes the client config a user would get.
		cfg.Server.AdminConfig = filepath.Join(t.TempDir(), "config")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if c.local, err = localcloud.New(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.local.Close(); err != nil {
			t.Errorf("testcloud: close: %v", err)
		}
	})
	if !opts.Insecure {
		if c.admin, err = pki.LoadClientConfig(cfg.Server.AdminConfig); err != nil {
			t.Fatal(err)
		}
		c.adminPath = cfg.Server.AdminConfig
	}
	return c
}

// freeWirePort picks the UDP port a cloud's hosts receive Geneve on, so
// clouds of tests running at once do not share one.
func freeWirePort(t testing.TB) uint16 {
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 250)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.LocalAddr().(*net.UDPAddr).Port)
}

// StartServer starts another server on the same store, listening on addr.
func (c *Cloud) StartServer(addr string) *server.Server {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.local.AddServer(ctx, addr)
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// Admin is the cloud's client config: CA and admin token.
func (c *Cloud) Admin() pki.ClientConfig { return *c.admin }

// adminHTTP is an administrator's HTTP client: TLS to the cloud's CA, the
// admin token on every request.
func (c *Cloud) adminHTTP() *http.Client {
	return c.AdminConn().HTTP
}

// AdminConn is how an administrator's CLI reaches server 0.
func (c *Cloud) AdminConn() *cli.Conn {
	c.adminOnce.Do(func() {
		if c.opts.Insecure {
			c.adminConn = &cli.Conn{URL: c.Server(0).URL(), HTTP: c.insecureHTTP}
			return
		}
		// Read as the CLI reads it: the config file the server wrote.
		conn, err := (&cli.Options{Config: c.adminPath, Server: c.admin.Server}).Conn()
		if err != nil {
			c.t.Fatal(err)
		}
		c.adminConn = conn
	})
	return c.adminConn
}

// Credentials issues host or edge id (with underlay address) a certificate,
// as joining would; an insecure cloud needs none (nil).
func (c *Cloud) Credentials(id string, role pki.Role, underlay netip.Addr) *pki.Credentials {
	c.t.Helper()
	if c.opts.Insecure {
		return nil
	}
	creds, err := c.local.Credentials(c.Ctx(), id, role, underlay)
	if err != nil {
		c.t.Fatal(err)
	}
	return creds
}

// HostClients are clients of the server at url that speak as host id,
// with its own certificate (a fresh one, as a joined host would hold).
func (c *Cloud) HostClients(url, id string, underlay netip.Addr) Clients {
	c.t.Helper()
	creds := c.Credentials(id, pki.RoleHost, underlay)
	if creds == nil {
		return clientsOver(c.insecureHTTP, url)
	}
	return clientsOver(pki.HTTPClient(creds.ClientTLS()), url)
}

// Server returns server i.
func (c *Cloud) Server(i int) *server.Server { return c.local.Server(i) }

// StopServer stops server i; its address may be reused by StartServer.
func (c *Cloud) StopServer(i int) {
	if err := c.local.StopServer(i); err != nil {
		c.t.Errorf("testcloud: stop server %d: %v", i, err)
	}
}

// Clients are API clients of one server.
type Clients struct {
	URL     string
	VPC     openvpcv1connect.VpcServiceClient
	Inst    openvpcv1connect.InstanceServiceClient
	Trust   openvpcv1connect.TrustServiceClient
	Mapping openvpcv1connect.MappingServiceClient
	Zone    openvpcv1connect.ZoneServiceClient
	VPN     openvpcv1connect.VpnServiceClient
	Endpt   openvpcv1connect.EndpointServiceClient
}

// ClientsFor returns an administrator's clients of the server at url.
func (c *Cloud) ClientsFor(url string) Clients { return clientsOver(c.adminHTTP(), url) }

// clientsOver returns clients of the server at url over hc.
func clientsOver(hc *http.Client, url string) Clients {
	return Clients{
		URL:     url,
		VPC:     openvpcv1connect.NewVpcServiceClient(hc, url),
		Inst:    openvpcv1connect.NewInstanceServiceClient(hc, url),
		Trust:   openvpcv1connect.NewTrustServiceClient(hc, url),
		Mapping: openvpcv1connect.NewMappingServiceClient(hc, url),
		Zone:    openvpcv1connect.NewZoneServiceClient(hc, url),
		VPN:     openvpcv1connect.NewVpnServiceClient(hc, url),
		Endpt:   openvpcv1connect.NewEndpointServiceClient(hc, url),
	}
}

// API returns an administrator's clients of server 0.
func (c *Cloud) API() Clients { return c.ClientsFor(c.Server(0).URL()) }

// Ctx is a context bounded for one test step.
func (c *Cloud) Ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	c.t.Cleanup(cancel)
	return ctx
}

// Host is a simulated host: registered, subscribed, its cache a Mirror.
type Host struct {
	ID       string
	Underlay netip.Addr
	Mirror   *node.Mirror
	Sub      *node.Subscriber

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// AddHost registers a host with the server at url and subscribes it.
func (c *Cloud) AddHost(url, id string, underlay netip.Addr) *Host {
	c.t.Helper()
	// Each host its own certificate, so its own connection. (Insecure
	// clouds share one client: thousands of hosts, few descriptors.)
	cl := c.HostClients(url, id, underlay)
	if _, err := cl.Mapping.Register(c.Ctx(), connect.NewRequest(&pb.RegisterRequest{
		HostId: id, UnderlayAddress: underlay.String(), Role: pb.HostRole_HOST_ROLE_HOST,
	})); err != nil {
		c.t.Fatal(err)
	}
	h := &Host{ID: id, Underlay: underlay, Mirror: node.NewMirror()}
	h.Sub = &node.Subscriber{Client: cl.Mapping, HostID: id, Apply: h.Mirror.Apply, Heartbeat: c.Heartbeat, Log: c.Log}
	h.Connect()
	c.t.Cleanup(h.Disconnect)
	return h
}

// Connect starts (or restarts) the host's subscription from its revision.
func (h *Host) Connect() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		_ = h.Sub.Run(ctx)
	}(h.done)
}

// Disconnect stops the subscription; the cache stays as it is.
func (h *Host) Disconnect() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

// Expected computes, from the management API alone, what host's cache must
// hold: the VPCs of its live instances and their active peers, all their
// facts, and every live instance's mapping in them.
func Expected(ctx context.Context, cl Clients, host string) (node.State, error) {
	st := node.State{VPCs: map[uint32]*pb.VpcFacts{}, Mappings: map[node.MappingKey]*pb.MappingRecord{}, Hosts: map[string]*pb.HostRecord{}}
	vpcs, err := cl.VPC.ListVpcs(ctx, connect.NewRequest(&pb.ListVpcsRequest{}))
	if err != nil {
		return st, err
	}
	insts, err := cl.Inst.ListInstances(ctx, connect.NewRequest(&pb.ListInstancesRequest{}))
	if err != nil {
		return st, err
	}
	peerings, err := cl.VPC.ListPeerings(ctx, connect.NewRequest(&pb.ListPeeringsRequest{}))
	if err != nil {
		return st, err
	}
	subnets, err := cl.VPC.ListSubnets(ctx, connect.NewRequest(&pb.ListSubnetsRequest{}))
	if err != nil {
		return st, err
	}
	rtbs, err := cl.VPC.ListRouteTables(ctx, connect.NewRequest(&pb.ListRouteTablesRequest{}))
	if err != nil {
		return st, err
	}
	hosts, err := cl.Inst.ListHosts(ctx, connect.NewRequest(&pb.ListHostsRequest{}))
	if err != nil {
		return st, err
	}
	igws, err := cl.VPC.ListInternetGateways(ctx, connect.NewRequest(&pb.ListInternetGatewaysRequest{}))
	if err != nil {
		return st, err
	}
	sgs, err := cl.VPC.ListSecurityGroups(ctx, connect.NewRequest(&pb.ListSecurityGroupsRequest{}))
	if err != nil {
		return st, err
	}
	acls, err := cl.VPC.ListNetworkAcls(ctx, connect.NewRequest(&pb.ListNetworkAclsRequest{}))
	if err != nil {
		return st, err
	}
	flowLogs, err := cl.VPC.ListFlowLogs(ctx, connect.NewRequest(&pb.ListFlowLogsRequest{}))
	if err != nil {
		return st, err
	}
	pls, err := cl.VPC.ListPrefixLists(ctx, connect.NewRequest(&pb.ListPrefixListsRequest{}))
	if err != nil {
		return st, err
	}
	zones, err := cl.Zone.ListZones(ctx, connect.NewRequest(&pb.ListZonesRequest{}))
	if err != nil {
		return st, err
	}
	services, err := cl.Endpt.ListServices(ctx, connect.NewRequest(&pb.ListServicesRequest{}))
	if err != nil {
		return st, err
	}
	endpoints, err := cl.Endpt.ListVpcEndpoints(ctx, connect.NewRequest(&pb.ListVpcEndpointsRequest{}))
	if err != nil {
		return st, err
	}
	svcByName := map[string]*pb.Service{}
	for _, sv := range services.Msg.Services {
		svcByName[sv.Name] = sv
	}
	epByID, epsOf := map[string]*pb.VpcEndpoint{}, map[string][]*pb.VpcEndpoint{}
	for _, e := range endpoints.Msg.Endpoints {
		epByID[e.Id] = e
		epsOf[e.VpcId] = append(epsOf[e.VpcId], e)
	}
	// A route to a service's prefix list reaches hosts as one route per
	// CIDR of the service, toward the endpoint.
	expand := func(rt *pb.RouteTable) *pb.RouteTable {
		rt = proto.CloneOf(rt)
		var out []*pb.Route
		for _, r := range rt.Routes {
			if r.DestinationPrefixListId == "" {
				out = append(out, r)
				continue
			}
			if e := epByID[r.Target]; e != nil {
				if sv := svcByName[e.ServiceName]; sv != nil && sv.PrefixListId == r.DestinationPrefixListId {
					for _, c := range sv.Cidrs {
						out = append(out, &pb.Route{DestinationCidr: c, Target: r.Target, State: pb.RouteState_ROUTE_STATE_ACTIVE})
					}
				}
			}
		}
		rt.Routes = out
		return rt
	}
	plCIDRs := map[string][]string{}
	for _, pl := range pls.Msg.PrefixLists {
		for _, e := range pl.Entries {
			plCIDRs[pl.Id] = append(plCIDRs[pl.Id], e.Cidr)
		}
	}
	// A rule naming a prefix list reaches hosts with the list's CIDRs; one
	// naming an empty list allows nothing and does not reach them.
	withCIDRs := func(rs []*pb.SecurityGroupRule) []*pb.SecurityGroupRule {
		var out []*pb.SecurityGroupRule
		for _, r := range rs {
			if r.PrefixListId != "" {
				if r.PrefixCidrs = plCIDRs[r.PrefixListId]; len(r.PrefixCidrs) == 0 {
					continue
				}
			}
			out = append(out, r)
		}
		return out
	}
	igwOf := map[string]string{}
	for _, g := range igws.Msg.InternetGateways {
		if g.VpcId != "" {
			igwOf[g.VpcId] = g.Id
		}
	}
	registered := map[string]*pb.Host{}
	for _, h := range hosts.Msg.Hosts {
		registered[h.Id] = h
	}
	vpns, err := cl.VPN.ListVpnConnections(ctx, connect.NewRequest(&pb.ListVpnConnectionsRequest{}))
	if err != nil {
		return st, err
	}
	vgws, err := cl.VPN.ListVpnGateways(ctx, connect.NewRequest(&pb.ListVpnGatewaysRequest{}))
	if err != nil {
		return st, err
	}
	vpcOf := map[string]string{}
	for _, g := range vgws.Msg.VpnGateways {
		vpcOf[g.Id] = g.VpcId
	}
	// An edge's VPN function, as hosts hold it, names the connections whose
	// preferred tunnel it holds, and stands by for those of which it holds
	// another up tunnel; an edge with neither has no VPN function.
	vpnFunction := func(edge string) *pb.EdgeFunction {
		f := &pb.EdgeFunction{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN}
		for _, c := range vpns.Msg.VpnConnections {
			preferredHere, upHere, preferredEdge := false, false, ""
			for _, t := range c.Tunnels {
				if t.Preferred {
					preferredEdge = t.EdgeId
				}
				if t.EdgeId == edge && t.Status.GetState() == pb.TunnelState_TUNNEL_STATE_UP {
					upHere = true
					preferredHere = preferredHere || t.Preferred
				}
			}
			switch {
			case preferredHere:
				f.Targets = append(f.Targets, c.Id)
			case upHere && preferredEdge != edge:
				f.StandbyTargets = append(f.StandbyTargets, c.Id)
			}
		}
		slices.Sort(f.Targets)
		slices.Sort(f.StandbyTargets)
		if len(f.Targets)+len(f.StandbyTargets) == 0 {
			return nil
		}
		return f
	}
	holdHost := func(id string) {
		if h, ok := registered[id]; ok {
			st.Hosts[id] = &pb.HostRecord{Id: h.Id, UnderlayAddress: h.UnderlayAddress, Role: h.Role, Healthy: !h.Unhealthy}
			for _, f := range h.Functions {
				if f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN {
					if f = vpnFunction(h.Id); f == nil {
						continue
					}
				}
				st.Hosts[id].Functions = append(st.Hosts[id].Functions, f)
			}
		}
	}
	// A host knows the hosts of the instances in its scope, and every edge.
	for _, h := range hosts.Msg.Hosts {
		if h.Role == pb.HostRole_HOST_ROLE_EDGE {
			holdHost(h.Id)
		}
	}
	byID := map[string]*pb.Vpc{}
	for _, v := range vpcs.Msg.Vpcs {
		byID[v.Id] = v
	}
	peersOf := map[string][]*pb.Peering{}
	for _, p := range peerings.Msg.Peerings {
		if p.State == pb.PeeringState_PEERING_STATE_ACTIVE {
			peersOf[p.RequesterVpcId] = append(peersOf[p.RequesterVpcId], p)
			peersOf[p.AccepterVpcId] = append(peersOf[p.AccepterVpcId], p)
		}
	}
	live := func(i *pb.Instance) bool { return i.State != pb.InstanceState_INSTANCE_STATE_TERMINATED }
	scope := map[string]bool{}
	if h := registered[host]; h != nil && h.Role == pb.HostRole_HOST_ROLE_EDGE {
		// An edge serves every VPC with an internet gateway.
		for v := range igwOf {
			scope[v] = true
		}
		// One serving endpoints, every VPC with an endpoint.
		if slices.ContainsFunc(h.Functions, func(f *pb.EdgeFunction) bool { return f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT }) {
			for v := range epsOf {
				scope[v] = true
			}
		}
		// And, holding VPN tunnels, the VPCs behind them.
		for _, c := range vpns.Msg.VpnConnections {
			for _, t := range c.Tunnels {
				if t.EdgeId == host && vpcOf[c.VpnGatewayId] != "" {
					scope[vpcOf[c.VpnGatewayId]] = true
				}
			}
		}
	}
	for _, i := range insts.Msg.Instances {
		if live(i) && i.HostId == host {
			scope[i.VpcId] = true
			for _, p := range peersOf[i.VpcId] {
				scope[p.RequesterVpcId], scope[p.AccepterVpcId] = true, true
			}
		}
	}
	for id := range scope {
		v := byID[id]
		f := &pb.VpcFacts{Vni: v.Vni, Id: v.Id, Name: v.Name, Cidr: v.Cidr, InternetGatewayId: igwOf[id], DnsSupportDisabled: v.DnsSupportDisabled, DnsHostnamesDisabled: v.DnsHostnamesDisabled,
			DefaultSecurityGroupId: v.DefaultSecurityGroupId, DefaultNetworkAclId: v.DefaultNetworkAclId}
		for _, sn := range subnets.Msg.Subnets {
			if sn.VpcId == id {
				f.Subnets = append(f.Subnets, &pb.SubnetFacts{Id: sn.Id, Cidr: sn.Cidr, RouteTableId: sn.RouteTableId, NetworkAclId: sn.NetworkAclId})
			}
		}
		for _, g := range sgs.Msg.SecurityGroups {
			if g.VpcId == id {
				f.SecurityGroups = append(f.SecurityGroups, &pb.SecurityGroupFacts{Id: g.Id, Ingress: withCIDRs(g.Ingress), Egress: withCIDRs(g.Egress)})
			}
		}
		for _, a := range acls.Msg.NetworkAcls {
			if a.VpcId == id {
				f.NetworkAcls = append(f.NetworkAcls, &pb.NetworkAclFacts{Id: a.Id, Inbound: a.Inbound, Outbound: a.Outbound})
			}
		}
		for _, fl := range flowLogs.Msg.FlowLogs {
			if fl.VpcId == id {
				path, _ := strings.CutPrefix(fl.Destination, "file:")
				f.FlowLogs = append(f.FlowLogs, &pb.FlowLogFacts{Id: fl.Id, EniId: fl.EniId, SubnetId: fl.SubnetId, TrafficType: fl.TrafficType, Path: path, IntervalSeconds: fl.IntervalSeconds})
			}
		}
		for _, z := range zones.Msg.Zones { // listed by name, as facts hold them
			if slices.Contains(z.VpcIds, id) {
				f.Zones = append(f.Zones, &pb.ZoneFacts{Id: z.Id, Name: z.Name, Records: z.Records})
			}
		}
		for _, rt := range rtbs.Msg.RouteTables {
			if rt.VpcId == id {
				// Hosts hold only the routes that carry traffic: not the
				// propagated ones that are inactive (source down, or beaten).
				rt.Routes = slices.DeleteFunc(rt.Routes, func(r *pb.Route) bool { return r.State == pb.RouteState_ROUTE_STATE_INACTIVE })
				f.RouteTables = append(f.RouteTables, expand(rt))
			}
		}
		for _, e := range epsOf[id] {
			ef := &pb.EndpointFacts{Id: e.Id, ServiceName: e.ServiceName, PolicyDocument: e.PolicyDocument}
			if sv := svcByName[e.ServiceName]; sv != nil {
				ef.Cidrs, ef.NodeAddresses = sv.Cidrs, sv.NodeAddresses
			}
			f.Endpoints = append(f.Endpoints, ef)
		}
		for _, p := range peersOf[id] {
			peer := byID[p.AccepterVpcId]
			if peer.Id == id {
				peer = byID[p.RequesterVpcId]
			}
			f.Peers = append(f.Peers, &pb.PeerFacts{PeeringId: p.Id, PeerVni: peer.Vni, PeerVpcId: peer.Id, PeerCidr: peer.Cidr, AllowRemoteDns: p.AllowRemoteDns})
		}
		sortFacts(f)
		st.VPCs[v.Vni] = f
	}
	for _, i := range insts.Msg.Instances {
		if live(i) && scope[i.VpcId] {
			vni := byID[i.VpcId].Vni
			st.Mappings[node.MappingKey{VNI: vni, IP: i.PrivateIp}] = &pb.MappingRecord{
				Vni: vni, Ip: i.PrivateIp, HostId: i.HostId, EniId: i.EniId, Mac: i.Mac, InstanceId: i.Id, PublicIp: i.PublicIp,
				SecurityGroupIds:  i.SecurityGroupIds,
				Conntrack:         conntrackOf(i.Conntrack),
				InstanceName:      i.Name,
				ImdsTokenRequired: i.ImdsTokenRequired,
			}
			if i.HostId == host { // user data goes to the instance's host alone
				st.Mappings[node.MappingKey{VNI: vni, IP: i.PrivateIp}].UserData = i.UserData
			}
			holdHost(i.HostId)
		}
	}
	return st, nil
}

// conntrackOf is an ENI's timeouts: its settings over AWS's defaults.
func conntrackOf(c *pb.ConntrackSettings) *pb.ConntrackTimeouts {
	t := &pb.ConntrackTimeouts{TcpEstablishedSeconds: 432000, UdpSeconds: 30, UdpStreamSeconds: 180, OtherSeconds: 600}
	if v := c.GetTcpEstablishedSeconds(); v != 0 {
		t.TcpEstablishedSeconds = v
	}
	if v := c.GetUdpSeconds(); v != 0 {
		t.UdpSeconds = v
	}
	if v := c.GetUdpStreamSeconds(); v != 0 {
		t.UdpStreamSeconds = v
	}
	if v := c.GetOtherSeconds(); v != 0 {
		t.OtherSeconds = v
	}
	return t
}

func sortFacts(f *pb.VpcFacts) {
	slices.SortFunc(f.Subnets, func(a, b *pb.SubnetFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.RouteTables, func(a, b *pb.RouteTable) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.Peers, func(a, b *pb.PeerFacts) int { return strings.Compare(a.PeeringId, b.PeeringId) })
	slices.SortFunc(f.SecurityGroups, func(a, b *pb.SecurityGroupFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.NetworkAcls, func(a, b *pb.NetworkAclFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.FlowLogs, func(a, b *pb.FlowLogFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.Zones, func(a, b *pb.ZoneFacts) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(f.Endpoints, func(a, b *pb.EndpointFacts) int { return strings.Compare(a.Id, b.Id) })
	for _, rt := range f.RouteTables {
		rt.CreateTime = nil
	}
}

// Diff describes how got differs from want, or returns "".
func Diff(got, want node.State) string {
	var d []string
	for vni, w := range want.VPCs {
		g, ok := got.VPCs[vni]
		if !ok {
			d = append(d, fmt.Sprintf("missing VPC %d (%s)", vni, w.Id))
			continue
		}
		g = proto.CloneOf(g)
		sortFacts(g)
		if !proto.Equal(g, w) {
			d = append(d, fmt.Sprintf("VPC %d facts differ:\n got  %v\n want %v", vni, g, w))
		}
	}
	for vni, g := range got.VPCs {
		if _, ok := want.VPCs[vni]; !ok {
			d = append(d, fmt.Sprintf("extra VPC %d (%s)", vni, g.Id))
		}
	}
	for k, w := range want.Mappings {
		if g, ok := got.Mappings[k]; !ok {
			d = append(d, fmt.Sprintf("missing mapping %v (%s)", k, w.InstanceId))
		} else if !proto.Equal(g, w) {
			d = append(d, fmt.Sprintf("mapping %v differs: got %v want %v", k, g, w))
		}
	}
	for k, g := range got.Mappings {
		if _, ok := want.Mappings[k]; !ok {
			d = append(d, fmt.Sprintf("extra mapping %v (%s)", k, g.InstanceId))
		}
	}
	for id, w := range want.Hosts {
		if g, ok := got.Hosts[id]; !ok || !proto.Equal(g, w) {
			d = append(d, fmt.Sprintf("host %s: got %v want %v", id, g, w))
		}
	}
	for id := range got.Hosts {
		if _, ok := want.Hosts[id]; !ok {
			d = append(d, "extra host "+id)
		}
	}
	if len(d) > 12 {
		d = append(d[:12], fmt.Sprintf("… and %d more", len(d)-12))
	}
	return strings.Join(d, "\n")
}

// Converge waits until host's cache equals what the store says it should
// hold, and fails the test with the difference if it does not in time.
func (c *Cloud) Converge(cl Clients, hosts ...*Host) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, h := range hosts {
		if errs := h.Mirror.Failures(); len(errs) > 0 {
			c.t.Fatalf("host %s saw the stream break its promises: %v", h.ID, errs)
		}
		for {
			want, err := Expected(c.Ctx(), cl, h.ID)
			if err != nil {
				c.t.Fatal(err)
			}
			diff := Diff(h.Mirror.State(), want)
			if diff == "" {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("host %s cache (revision %d) differs from the store:\n%s", h.ID, h.Mirror.Revision(), diff)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Main runs a test binary's tests with an embedded etcd, shared by them
// through *e, and exits: call it from TestMain.
func Main(m *testing.M, e **Etcd, opts ...MainOption) {
	var err error
	if *e, err = StartEtcd(); err != nil {
		fmt.Fprintln(os.Stderr, "testcloud: embedded etcd:", err)
		os.Exit(2)
	}
	code := m.Run()
	(*e).Stop()
	if code == 0 && slices.Contains(opts, CheckLeaks) {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "testcloud: goroutines outlived the tests (something's Run or Close does not wait for what it started):", err)
			code = 1
		}
	}
	os.Exit(code)
}

// EtcdStreams ignores, in a test's goroutine check, what the shared
// embedded etcd runs for its clients' streams, and what etcd's client runs
// to wind down a cancelled watch: those end when etcd notices that a client
// (a server the test stopped) went away, which may be just after the test.
// They belong to etcd and grpc-go (which only etcd uses here), not to the
// code under test.
var EtcdStreams = []goleak.Option{
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGRPCStream).serveSubstream"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGRPCStream).run"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGRPCStream).serveWatchClient"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc.newClientStreamWithParams.func4"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/transport.(*recvBufferReader).readMessageHeaderClient"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*serverWatchStream).recvLoop"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*serverWatchStream).sendLoop"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*watchServer).Watch"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*LeaseServer).leaseKeepAlive"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*LeaseServer).LeaseKeepAlive"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc.(*Server).serveStreams.func2.1"),
}

// NoLeaks fails t if goroutines other than those opts ignore (and
// EtcdStreams) are still running some seconds after the call: etcd's
// clients and grpc-go wind down after Close returns, on their own time,
// so the check waits for them longer than goleak alone does; a real leak
// still fails, only later.
func NoLeaks(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	opts = append(opts, EtcdStreams...)
	var err error
	for deadline := time.Now().Add(6 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err = goleak.Find(opts...); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Error(err)
	}
}

// MainOption changes what Main does.
type MainOption int

// CheckLeaks fails the test binary when goroutines outlive its tests and
// the etcd (go.uber.org/goleak): every server, agent and edge a test
// started must have stopped everything it started.
const CheckLeaks MainOption = 1
