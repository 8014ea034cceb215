package dx

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/bgp"
	"github.com/openvpc/openvpc/edge/dx/vlan"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/nsthread"
)

// Function is the Direct Connect function on one port.
type Function struct {
	cfg     Config
	changed chan struct{} // Set wakes Run

	mu      sync.Mutex
	want    []VIF
	running map[string]*vifRun // by VIF id
	port    *vlan.Port
}

// vifRun is one VIF being served: its namespace, link and speaker.
type vifRun struct {
	vif    VIF
	id     uint64 // the dxvif id's number
	tun    *edge.TUNOutside
	mu     sync.Mutex
	routes []netip.Prefix // the learned prefixes routed in the namespace
	ns     string         // namespace name
	link   string         // the edge's end of its veth
	proc   *bgp.Process
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns the function; Run serves it.
func New(cfg Config) (*Function, error) {
	cfg.defaults()
	if cfg.Port == "" {
		return nil, errors.New("dx: no port: name the edge's interface cabled to the customer's router")
	}
	return &Function{cfg: cfg, changed: make(chan struct{}, 1), running: map[string]*vifRun{}}, nil
}

// Set says which VIFs the port carries now. It refuses a set with an
// invalid VIF or two VIFs on one VLAN, and keeps the previous one.
func (f *Function) Set(vifs []VIF) error {
	seen := map[uint16]string{}
	for _, v := range vifs {
		if err := v.Validate(); err != nil {
			return err
		}
		if other, ok := seen[v.VLAN]; ok {
			return fmt.Errorf("dx: %s and %s are both on VLAN %d", other, v.ID, v.VLAN)
		}
		seen[v.VLAN] = v.ID
	}
	f.mu.Lock()
	f.want = slices.Clone(vifs)
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return nil
}

// Statuses are the sessions of the VIFs served now.
func (f *Function) Statuses() map[string]Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]Status, len(f.running))
	for id, r := range f.running {
		st := Status{BGP: r.proc.Status()}
		if f.port != nil {
			st.In, st.Out = f.port.VLANFrames(r.vif.VLAN)
		}
		out[id] = st
	}
	return out
}

// Counters are the port's frame counters.
func (f *Function) Counters() vlan.Counters {
	f.mu.Lock()
	p := f.port
	f.mu.Unlock()
	if p == nil {
		return vlan.Counters{}
	}
	return p.Counters()
}

// Run attaches the port, serves the VIFs Set names until ctx ends, then
// takes every VIF down (speakers stopped, namespaces and links removed)
// and detaches the port.
func (f *Function) Run(ctx context.Context) error {
	// A port not cabled yet is waited for: the edge serves its other
	// functions meanwhile, and the VIFs come up when it appears.
	l, err := netlink.LinkByName(f.cfg.Port)
	for warned := false; err != nil; l, err = netlink.LinkByName(f.cfg.Port) {
		if !warned {
			f.cfg.Logger.Warn("dx: waiting for the Direct Connect port to appear in the edge's namespace", "port", f.cfg.Port, "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	// The port carries tagged frames only: no untagged IPv6 chatter of
	// the edge's own on the customer's wire.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+f.cfg.Port+"/disable_ipv6", []byte("1"), 0)
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("dx: port %s up: %w", f.cfg.Port, err)
	}
	port, err := vlan.Attach(l.Attrs().Index)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.port = port
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		runs := slices.Collect(maps.Values(f.running))
		f.running = map[string]*vifRun{}
		f.port = nil
		f.mu.Unlock()
		for _, r := range runs {
			f.down(port, r)
		}
		port.Close()
	}()
	for {
		f.reconcile(ctx, port)
		select {
		case <-ctx.Done():
			return nil
		case <-f.changed:
		}
	}
}

// reconcile brings the VIFs served in line with the ones wanted.
func (f *Function) reconcile(ctx context.Context, port *vlan.Port) {
	f.mu.Lock()
	want := map[string]VIF{}
	for _, v := range f.want {
		want[v.ID] = v
	}
	var stop []*vifRun
	for id, r := range f.running {
		w, ok := want[id]
		if !ok || !sameSession(w, r.vif) {
			stop = append(stop, r)
			delete(f.running, id)
		}
	}
	f.mu.Unlock()
	for _, r := range stop {
		f.down(port, r)
	}
	for id, v := range want {
		f.mu.Lock()
		r, ok := f.running[id]
		f.mu.Unlock()
		if ok {
			r.mu.Lock()
			same := slices.Equal(r.vif.Announce, v.Announce)
			r.mu.Unlock()
			if !same {
				if err := r.proc.Announce(v.Announce); err != nil {
					f.cfg.Logger.Warn("dx: announce", "vif", id, "err", err)
				}
				r.mu.Lock() // dataRoutes, from the speaker's reports, reads it
				r.vif.Announce = slices.Clone(v.Announce)
				r.mu.Unlock()
				f.dataRoutes(r, r.proc.Status())
			}
			continue
		}
		r, err := f.up(ctx, port, v)
		if err != nil {
			f.cfg.Logger.Error("dx: virtual interface not served", "vif", id, "vlan", v.VLAN, "err", err)
			f.cfg.OnStatus(id, Status{BGP: bgp.Status{State: bgp.Idle, Reason: "the edge could not set up the VIF: " + err.Error()}})
			continue
		}
		f.mu.Lock()
		f.running[id] = r
		f.mu.Unlock()
	}
}

// up makes VIF v's namespace and link, joins its VLAN to the port and
// starts its speaker.
func (f *Function) up(ctx context.Context, port *vlan.Port, v VIF) (*vifRun, error) {
	r := &vifRun{vif: v, ns: fmt.Sprintf("%s-v%d", f.cfg.Namespaces, v.VLAN), link: fmt.Sprintf("dxv%d", v.VLAN), done: make(chan struct{})}
	// What a crashed edge left behind goes first.
	_ = netns.DeleteNamed(r.ns)
	if old, err := netlink.LinkByName(r.link); err == nil {
		_ = netlink.LinkDel(old)
	}
	if err := newNamespace(r.ns); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", r.ns, err)
	}
	fail := func(err error) (*vifRun, error) {
		if l, lerr := netlink.LinkByName(r.link); lerr == nil {
			_ = netlink.LinkDel(l)
		}
		_ = netns.DeleteNamed(r.ns)
		return nil, err
	}
	ns, err := netns.GetFromName(r.ns)
	if err != nil {
		return fail(err)
	}
	defer ns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: r.link}, PeerName: "dx", PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fail(fmt.Errorf("link %s: %w", r.link, err))
	}
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+r.link+"/disable_ipv6", []byte("1"), 0)
	edgeEnd, err := netlink.LinkByName(r.link)
	if err == nil {
		err = netlink.LinkSetUp(edgeEnd)
	}
	if err != nil {
		return fail(fmt.Errorf("link %s up: %w", r.link, err))
	}
	if err := nsthread.In(ns, func() error { return vifStack(v) }); err != nil {
		return fail(fmt.Errorf("the VIF's stack in %s: %w", r.ns, err))
	}
	if err := port.AddVIF(v.VLAN, edgeEnd.Attrs().Index); err != nil {
		return fail(err)
	}
	id := v.ID
	r.id, _ = model.ParseID(model.KindDirectConnect, id)
	if f.cfg.Data != nil {
		// The VIF's way into the VPCs: a TUN the edge reads, the VPCs'
		// CIDRs routed into it.
		err := nsthread.In(ns, func() error {
			tun, err := edge.OpenTUNOutside("vpc", 1500)
			r.tun = tun
			return err
		})
		if err != nil {
			_ = port.RemoveVIF(v.VLAN)
			return fail(fmt.Errorf("the VIF's TUN: %w", err))
		}
	}
	proc, err := bgp.NewProcess(bgp.ProcessConfig{Session: v.session(), NetNS: "/run/netns/" + r.ns, Command: f.cfg.SpeakerCommand},
		f.cfg.Logger.With("vif", id), func(st bgp.Status) {
			in, out := port.VLANFrames(v.VLAN)
			f.dataRoutes(r, st)
			f.cfg.OnStatus(id, Status{BGP: st, In: in, Out: out})
		})
	if err != nil {
		if r.tun != nil {
			r.tun.Close()
		}
		_ = port.RemoveVIF(v.VLAN)
		return fail(err)
	}
	if r.tun != nil {
		f.dataRoutes(r, proc.Status())
		go f.cfg.Data.serveTUN(r.id, r.tun)
	}
	r.proc = proc
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	go func() { defer close(r.done); _ = proc.Run(pctx) }()
	f.cfg.Logger.Info("dx: virtual interface up", "vif", id, "vlan", v.VLAN, "namespace", r.ns, "local", v.Local, "peer", v.Peer)
	return r, nil
}

// vifStack sets up the VIF's namespace, run from a thread inside it: the
// link with the Amazon-side address, no IPv6, forwarding on (the VIF is
// a router between the site and the edge's data path).
func vifStack(v VIF) error {
	for _, s := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6", "/proc/sys/net/ipv6/conf/dx/disable_ipv6"} {
		_ = os.WriteFile(s, []byte("1"), 0)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0); err != nil {
		return err
	}
	for _, name := range []string{"lo", "dx"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if name == "dx" {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: v.Local.Addr().AsSlice(), Mask: net.CIDRMask(v.Local.Bits(), 32)}}
			if err := netlink.AddrAdd(l, a); err != nil {
				return err
			}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

// down stops r's speaker (the peer sees a Cease) and removes its VLAN,
// link and namespace.
func (f *Function) down(port *vlan.Port, r *vifRun) {
	r.cancel()
	<-r.done
	if r.tun != nil {
		f.cfg.Data.put(r.id, nil)
		r.tun.Close()
	}
	f.cfg.OnStatus(r.vif.ID, Status{BGP: bgp.Status{State: bgp.Idle, Reason: "the virtual interface is no longer served on this edge"}})
	_ = port.RemoveVIF(r.vif.VLAN)
	if l, err := netlink.LinkByName(r.link); err == nil {
		_ = netlink.LinkDel(l)
	}
	if err := netns.DeleteNamed(r.ns); err != nil {
		f.cfg.Logger.Warn("dx: removing namespace", "namespace", r.ns, "err", err)
	}
	f.cfg.Logger.Info("dx: virtual interface down", "vif", r.vif.ID, "vlan", r.vif.VLAN)
}

// newNamespace makes a named namespace without moving the process: the
// thread that makes it goes back to the edge's namespace.
func newNamespace(name string) error {
	return nsthread.Run(func() error {
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		return err
	})
}

// dataRoutes makes VIF r's namespace and the data path follow its
// session: the VPCs' CIDRs into its TUN, the prefixes it learned (while
// established) to the customer's router, and what FromVPC and
// FromOutsideTo check.
func (f *Function) dataRoutes(r *vifRun, st bgp.Status) {
	if r.tun == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	up := st.State == bgp.Established
	var learned []netip.Prefix
	if up {
		learned = st.Learned
	}
	ns, err := netns.GetFromName(r.ns)
	if err != nil {
		return
	}
	defer ns.Close()
	err = nsthread.In(ns, func() error {
		tun, err := netlink.LinkByName("vpc")
		if err != nil {
			return err
		}
		dx, err := netlink.LinkByName("dx")
		if err != nil {
			return err
		}
		for _, p := range r.vif.Announce {
			if err := netlink.RouteReplace(&netlink.Route{Dst: ipNet(p), LinkIndex: tun.Attrs().Index}); err != nil {
				return fmt.Errorf("route %v into the TUN: %w", p, err)
			}
		}
		for _, p := range r.routes {
			if !slices.Contains(learned, p) {
				_ = netlink.RouteDel(&netlink.Route{Dst: ipNet(p), LinkIndex: dx.Attrs().Index})
			}
		}
		for _, p := range learned {
			if err := netlink.RouteReplace(&netlink.Route{Dst: ipNet(p), Gw: r.vif.Peer.Addr().AsSlice(), LinkIndex: dx.Attrs().Index}); err != nil {
				return fmt.Errorf("route %v to the router: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		f.cfg.Logger.Warn("dx: the VIF's routes", "vif", r.vif.ID, "err", err)
	}
	r.routes = slices.Clone(learned)
	f.cfg.Data.put(r.id, &dataVIF{id: r.id, up: up, vpcs: slices.Clone(r.vif.Announce), learned: slices.Clone(learned), tun: r.tun})
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}
