package vpn

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/packet"
	"github.com/vishvananda/netns"
)

// The VPN function on one edge.
//
// The Mapping Service places tunnels on edges; the function learns its
// own with ListEdgeTunnels and runs each in a namespace of its own: a
// veth into the edge's namespace carrying the tunnel's outside address,
// and a charon (kernel-libipsec) holding the IPsec SAs with the customer
// gateway. The edge's namespace routes each site's prefixes into the
// namespace of the connection's up tunnel, and the VPC's CIDR into the
// function's outside TUN. So:
//
//	VPC → site: Geneve from a host → the edge's checks → FromVPC (the
//	    connection has an up tunnel here, the destination is a site
//	    prefix) → the TUN → the kernel → the tunnel's namespace →
//	    ipsec0 → ESP in UDP 4500 to the customer gateway.
//	site → VPC: ESP → charon → ipsec0 → the kernel → the TUN →
//	    FromOutsideTo (the source is a prefix routed to a connection with
//	    a tunnel here, never inside the VPC) → encapsulated to the
//	    instance's host, marked with the connection.
//
// Each tunnel's state (polled over VICI) is reported to the Mapping
// Service, which tells hosts which edge carries a connection.

// Config is one edge's VPN function.
type Config struct {
	// EdgeID is this edge's id: the tunnels placed on it are its own.
	EdgeID string
	// Outside is the TUN the kernel routes VPC-bound packets into (and the
	// function writes site-bound packets to).
	Outside datapath.Port
	// OutsideName is that TUN's name, for the routes into it.
	OutsideName string
	// Dir holds one directory per tunnel (charon's config, socket, log).
	Dir string
	// Poll is how often tunnels' states are read and the placement asked
	// (default 1 s).
	Poll time.Duration
	// Logger receives the function's logs.
	Logger *slog.Logger
	// BGPHold is the hold time of BGP connections' sessions (default 30 s,
	// AWS's; tests set less).
	BGPHold time.Duration
	// SpeakerCommand makes a BGP speaker's command line (default: this
	// executable's hidden `edge bgp-speaker`).
	SpeakerCommand func() *exec.Cmd
}

// Function is the VPN edge function.
type Function struct {
	cfg    Config
	client openvpcv1connect.VpnServiceClient
	tables *tables.Tables
	// conns is what the data path reads: the connections with a tunnel up
	// on this edge.
	conns atomic.Pointer[[]conn]
	// stats is what the metrics show of each tunnel, after the last poll.
	stats atomic.Pointer[[]tunnelStat]

	mu      sync.Mutex
	tunnels map[string]*tunnel // by store-style key vpn-….n
	tag     string             // random, in every namespace and link name
}

// conn is a connection as the data path sees it.
type conn struct {
	id     uint64
	vpcID  uint64
	vni    uint32 // 0 until the edge's cache holds the VPC
	vpc    netip.Prefix
	routes []netip.Prefix
	// sources are more prefixes a site's packet may come from: a BGP
	// connection's, learned by any of its tunnels (the site may answer
	// over a tunnel whose own session is down).
	sources []netip.Prefix
}

// New returns the function; Bind gives it the Mapping Service, Run runs it.
func New(cfg Config) *Function {
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Function{cfg: cfg, tunnels: map[string]*tunnel{}, tag: randomTag()}
	f.conns.Store(&[]conn{})
	f.stats.Store(&[]tunnelStat{})
	return f
}

// Bind gives the function its client of the VpnService (the edge's own
// credentials) and the edge's cache.
func (f *Function) Bind(c openvpcv1connect.VpnServiceClient, t *tables.Tables) {
	f.client, f.tables = c, t
}

// Kind is the route target kind the function serves.
func (f *Function) Kind() tables.TargetKind { return tables.TargetVPNConnection }

// Targets is nil: the Mapping Service decides which connections hosts
// send here (those whose preferred up tunnel this edge holds); FromVPC
// takes only those with a tunnel up here.
func (f *Function) Targets() []uint64 { return nil }

// Outside is the function's TUN.
func (f *Function) Outside() datapath.Port { return f.cfg.Outside }

// FromVPC: the connection must have a tunnel up here, the packet come from
// its VPC and go to one of its site prefixes.
//
//	tunnel up → site prefix → into the tunnel
func (f *Function) FromVPC(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4, t *datapath.Trace) datapath.Verdict {
	c := f.conn(target)
	ok := c != nil && c.vni == vni && c.vpc.Contains(inner.Src())
	if t != nil {
		t.Step("tunnel up", ok, fmt.Sprintf("%s has a tunnel up on this edge for %v", model.FormatID(model.KindVPNConnection, target), inner.Src()))
	}
	if !ok {
		return datapath.NoRoute
	}
	ok = containsAddr(c.routes, inner.Dst())
	if t != nil {
		t.Step("site prefix", ok, fmt.Sprintf("%v in the connection's routes %v", inner.Dst(), c.routes))
	}
	if !ok {
		return datapath.NoRoute
	}
	clampMSS(inner)
	return datapath.Forwarded
}

// FromOutsideTo: a packet out of a tunnel must come from a prefix routed
// to a connection with a tunnel here — never from inside a VPC — and go
// into that connection's VPC.
//
//	site source → VPC destination
func (f *Function) FromOutsideTo(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (vni uint32, target uint64, v datapath.Verdict) {
	src, dst := pkt.Src(), pkt.Dst()
	for _, c := range *f.conns.Load() {
		if !c.vpc.Contains(dst) {
			continue
		}
		if c.vpc.Contains(src) || !containsAddr(c.routes, src) && !containsAddr(c.sources, src) {
			if t != nil {
				t.Fail("site source", "%v is not a prefix routed to %s (or is inside its VPC %v)", src, model.FormatID(model.KindVPNConnection, c.id), c.vpc)
			}
			return 0, 0, datapath.SpoofedSource
		}
		ok := c.vni != 0
		if t != nil {
			t.Step("VPC", ok, fmt.Sprintf("%v is in VPC %s (VNI %d)", dst, model.FormatID(model.KindVPC, c.vpcID), c.vni))
		}
		if !ok {
			return 0, 0, datapath.NoMapping
		}
		clampMSS(pkt)
		return c.vni, c.id, datapath.Forwarded
	}
	if t != nil {
		t.Fail("site source", "%v → %v belongs to no connection with a tunnel on this edge", src, dst)
	}
	return 0, 0, datapath.SpoofedSource
}

// FromOutside is FromOutsideTo without the target (the edge asks that one).
func (f *Function) FromOutside(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (uint32, datapath.Verdict) {
	vni, _, v := f.FromOutsideTo(snap, pkt, t)
	return vni, v
}

func (f *Function) conn(id uint64) *conn {
	cs := *f.conns.Load()
	for i := range cs {
		if cs[i].id == id {
			return &cs[i]
		}
	}
	return nil
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Run follows the tunnels placed on this edge until ctx ends, then stops
// every one (their charons and namespaces go).
func (f *Function) Run(ctx context.Context) error {
	if f.client == nil {
		return fmt.Errorf("vpn: the function was not bound to the Mapping Service")
	}
	f.cleanup()
	defer f.stopAll()
	tick := time.NewTicker(f.cfg.Poll)
	defer tick.Stop()
	for {
		f.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sync asks the placement, starts and stops tunnels to match, polls each
// one's state and reports changes.
func (f *Function) sync(ctx context.Context) {
	r, err := f.client.ListEdgeTunnels(ctx, connect.NewRequest(&pb.ListEdgeTunnelsRequest{EdgeId: f.cfg.EdgeID}))
	if err != nil {
		if ctx.Err() == nil {
			f.cfg.Logger.Warn("vpn: cannot list this edge's tunnels; keeping the ones it has", "err", err)
		}
	} else {
		want := map[string]*pb.EdgeTunnel{}
		for _, et := range r.Msg.Tunnels {
			want[fmt.Sprintf("%s.%d", et.VpnConnectionId, et.Tunnel)] = et
		}
		f.mu.Lock()
		for k, tu := range f.tunnels {
			if et, ok := want[k]; !ok || tu.fingerprint != fingerprint(et) {
				f.cfg.Logger.Info("vpn: tunnel leaves this edge or changed", "tunnel", k)
				tu.stop()
				delete(f.tunnels, k)
			}
		}
		for k, et := range want {
			if tu, ok := f.tunnels[k]; !ok {
				f.tunnels[k] = f.newTunnel(k, et)
			} else if et.Bgp != nil {
				tu.sources = parsePrefixes(et.Routes)
			}
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	tus := make([]*tunnel, 0, len(f.tunnels))
	for _, tu := range f.tunnels {
		tus = append(tus, tu)
	}
	f.mu.Unlock()
	vnis := map[uint64]uint32{}
	if f.tables != nil {
		for v := range f.tables.Load().VPCs() {
			vnis[v.ID] = v.VNI
		}
	}
	slices.SortFunc(tus, func(a, b *tunnel) int { return strings.Compare(a.key, b.key) })
	var up []conn
	var stats []tunnelStat
	carrier := map[uint64]*tunnel{} // per connection, the up tunnel here the site's prefixes go into
	upTunnel := map[uint64]*tunnel{}
	for _, tu := range tus {
		st := tu.poll(ctx)
		stats = append(stats, tu.stat(st))
		if st.GetState() == pb.TunnelState_TUNNEL_STATE_UP && upTunnel[tu.conn.id] == nil {
			upTunnel[tu.conn.id] = tu
		}
		// A BGP tunnel whose session is down has no routes: the other
		// one, if it carries, takes the site's prefixes.
		if carrying(st) && carrier[tu.conn.id] == nil {
			carrier[tu.conn.id] = tu
		}
		if tu.changed(st) {
			_, err := f.client.ReportTunnelState(ctx, connect.NewRequest(&pb.ReportTunnelStateRequest{EdgeId: f.cfg.EdgeID,
				VpnConnectionId: tu.et.VpnConnectionId, Tunnel: tu.et.Tunnel, Status: st}))
			if err != nil && ctx.Err() == nil {
				f.cfg.Logger.Warn("vpn: tunnel state not reported", "tunnel", tu.key, "err", err)
				tu.reported = nil // try again next time
			}
		}
	}
	// Both tunnels of a connection may be here (one VPN edge): the site's
	// prefixes go into one up tunnel; unroute the others first, since
	// routing replaces the route of the same prefixes.
	for _, tu := range tus {
		if carrier[tu.conn.id] != tu {
			tu.unroute()
		}
	}
	for _, tu := range tus {
		if carrier[tu.conn.id] == tu {
			tu.route()
		}
	}
	// What the data path checks: the carrier's routes, else an up
	// tunnel's (static: the same; BGP: none, so nothing passes).
	for _, tu := range tus {
		if upTunnel[tu.conn.id] != tu {
			continue
		}
		if ca := carrier[tu.conn.id]; ca != nil {
			tu = ca
		}
		c := tu.conn
		c.vni = vnis[c.vpcID]
		c.sources = tu.sources
		up = append(up, c)
	}
	f.conns.Store(&up)
	f.stats.Store(&stats)
}

// ownedFile lists the namespaces this function made, in cfg.Dir, so that
// an edge restarted after a crash removes what the last one left.
func (f *Function) ownedFile() string { return filepath.Join(f.cfg.Dir, "namespaces") }

func (f *Function) own(ns string) {
	if fh, err := os.OpenFile(f.ownedFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintln(fh, ns)
		fh.Close()
	}
}

func (f *Function) disown(ns string) {
	b, err := os.ReadFile(f.ownedFile())
	if err != nil {
		return
	}
	lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(string(b)), "\n"), func(l string) bool { return l == ns || l == "" })
	_ = os.WriteFile(f.ownedFile(), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// cleanup removes the namespaces (and with them the veths and charons'
// network) that a previous run in cfg.Dir made and did not remove.
func (f *Function) cleanup() {
	b, err := os.ReadFile(f.ownedFile())
	if err != nil {
		return
	}
	for _, ns := range strings.Fields(string(b)) {
		if strings.HasPrefix(ns, "ovpn-") {
			f.cfg.Logger.Info("vpn: removing a tunnel namespace a previous run left", "namespace", ns)
			if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
				for _, p := range strings.Fields(string(out)) {
					if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL) // a charon the last run started
					}
				}
			}
			_ = netns.DeleteNamed(ns)
		}
	}
	_ = os.Remove(f.ownedFile())
}

func (f *Function) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, tu := range f.tunnels {
		tu.stop()
		delete(f.tunnels, k)
	}
	f.conns.Store(&[]conn{})
}

// fingerprint is what, changed, makes a tunnel start afresh (a BGP
// connection's routes change without: they follow its sessions).
func fingerprint(et *pb.EdgeTunnel) string {
	c := et.Config
	routes := et.Routes
	if et.Bgp != nil {
		routes = nil
	}
	return fmt.Sprint(et.PeerAddress, c.GetOutsideAddress(), c.GetPreSharedKey(), c.GetDpdTimeoutSeconds(), et.VpcCidr, routes,
		c.GetInsideCidr(), et.GetBgp().GetLocalAsn(), et.GetBgp().GetPeerAsn())
}

// parsePrefixes parses what the Mapping Service sent, skipping what is not
// a prefix.
func parsePrefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range ss {
		if p, err := netip.ParsePrefix(x); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}
