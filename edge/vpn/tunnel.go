package vpn

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strongswan/govici/vici"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/edge/bgp"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/nsthread"
)

// hop is the edge side's address on every tunnel's veth: the tunnel
// namespace's default gateway (a /32 on each veth, answered by ARP).
var hop = netip.MustParseAddr("169.254.255.254")

// Proposals the edge accepts: what `vpn config` proposes.
var (
	ikeProposals = []string{"aes128gcm16-prfsha256-modp2048", "aes256-sha256-modp2048"}
	espProposals = []string{"aes128gcm16-modp2048", "aes256-sha256-modp2048"}
)

func randomTag() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tunnel is one tunnel placed on this edge: its namespace, veth, charon.
type tunnel struct {
	f           *Function
	key         string
	et          *pb.EdgeTunnel
	fingerprint string
	conn        conn
	ns          string // named network namespace
	veth        string // its end in the edge's namespace
	dir         string
	outside     netip.Addr
	peer        netip.Addr

	charon   *Charon
	sess     *vici.Session
	err      string    // why the tunnel cannot run, if it cannot
	restart  time.Time // when to start a charon that exited
	state    *pb.TunnelStatus
	reported *pb.TunnelStatus
	lastSent time.Time
	routed   bool // the site's prefixes are routed into this tunnel
	// edgeRoutes are the site prefixes routed into this tunnel's namespace
	// from the edge's; ipsecRoutes those routed into ipsec0 (BGP: they
	// follow the session).
	edgeRoutes  []netip.Prefix
	ipsecRoutes []netip.Prefix
	bgp         *bgp.Process // BGP connections: the session's speaker
	sources     []netip.Prefix
	bgpStop     func()
	wasUp       bool
	downs       uint64 // times it went from up to down
}

func (f *Function) newTunnel(key string, et *pb.EdgeTunnel) *tunnel {
	tu := &tunnel{f: f, key: key, et: et, fingerprint: fingerprint(et)}
	id := tu.f.tag + strconv.FormatUint(uint64(et.Tunnel), 10) + shortID(et.VpnConnectionId)
	tu.ns, tu.veth = "ovpn-"+id, "vt"+id
	tu.dir = filepath.Join(f.cfg.Dir, key)
	tu.state = &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_DOWN, Since: timestamppb.Now()}
	if err := tu.parse(); err != nil {
		tu.err = err.Error()
		return tu
	}
	if err := tu.setup(); err != nil {
		tu.err = err.Error()
		f.cfg.Logger.Warn("vpn: tunnel cannot run", "tunnel", key, "err", err)
		tu.teardown()
	}
	return tu
}

// shortID is the last 6 hex digits of an id: namespace and link names are short.
func shortID(id string) string {
	if len(id) < 6 {
		return id
	}
	return id[len(id)-6:]
}

func (tu *tunnel) parse() error {
	et := tu.et
	var err error
	if tu.outside, err = netip.ParseAddr(et.Config.GetOutsideAddress()); err != nil {
		return fmt.Errorf("outside address %q: %v", et.Config.GetOutsideAddress(), err)
	}
	if tu.peer, err = netip.ParseAddr(et.PeerAddress); err != nil {
		return fmt.Errorf("customer gateway address %q: %v", et.PeerAddress, err)
	}
	id, ok := model.ParseID(model.KindVPNConnection, et.VpnConnectionId)
	if !ok {
		return fmt.Errorf("bad connection id %q", et.VpnConnectionId)
	}
	vpcID, _ := model.ParseID(model.KindVPC, et.VpcId)
	tu.conn = conn{id: id, vpcID: vpcID}
	if et.VpcCidr == "" {
		return fmt.Errorf("its virtual private gateway is attached to no VPC")
	}
	if tu.conn.vpc, err = netip.ParsePrefix(et.VpcCidr); err != nil {
		return err
	}
	if et.Bgp != nil {
		// The session learns the routes; it runs on the inside /30.
		tu.sources = parsePrefixes(et.Routes)
		_, err := bgpSession(et, tu.conn.vpc, tu.f.cfg.BGPHold)
		return err
	}
	for _, r := range et.Routes {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return err
		}
		tu.conn.routes = append(tu.conn.routes, p)
	}
	if len(tu.conn.routes) == 0 {
		return fmt.Errorf("the connection has no routes yet: add the site's prefixes (openvpc vpn route add %s --dest CIDR)", et.VpnConnectionId)
	}
	return nil
}

// setup makes the namespace, the veth and the routes, and starts charon.
func (tu *tunnel) setup() error {
	if err := os.MkdirAll(tu.dir, 0o700); err != nil {
		return err
	}
	tu.f.own(tu.ns)
	ns, err := newNamedNS(tu.ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", tu.ns, err)
	}
	defer ns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tu.veth}, PeerName: "o0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s: %w", tu.veth, err)
	}
	l, err := netlink.LinkByName(tu.veth)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: host32(hop)}); err != nil {
		return fmt.Errorf("address on %s: %w", tu.veth, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return err
	}
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: host32(tu.outside), Scope: scopeLink}); err != nil {
		return fmt.Errorf("route to the outside address %v: %w", tu.outside, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, name := range []string{"lo", "o0"} {
		nl, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if name == "lo" {
			// kernel-libipsec installs an SA's policy only with a local
			// address inside its local selector, the VPC: the VPC's fourth
			// address, which AWS reserves and no instance ever has.
			if err := h.AddrAdd(nl, &netlink.Addr{IPNet: host32(reservedAddr(tu.conn.vpc))}); err != nil {
				return fmt.Errorf("the VPC's reserved address in %s: %w", tu.ns, err)
			}
		}
		if name == "o0" {
			if err := h.AddrAdd(nl, &netlink.Addr{IPNet: host32(tu.outside)}); err != nil {
				return err
			}
		}
		if err := h.LinkSetUp(nl); err != nil {
			return err
		}
		if name == "o0" {
			if err := h.RouteAdd(&netlink.Route{LinkIndex: nl.Attrs().Index, Dst: host32(hop), Scope: scopeLink}); err != nil {
				return err
			}
			if err := h.RouteAdd(&netlink.Route{LinkIndex: nl.Attrs().Index, Gw: hop.AsSlice()}); err != nil {
				return err
			}
		}
	}
	if tu.et.Bgp != nil {
		// With the inside address on ipsec0 inside its local selector,
		// charon routes 0.0.0.0/0 into ipsec0 in table 220 (kernel-libipsec
		// does so whatever install_routes says), which would send the
		// site's packets for the VPC back into the tunnel: the main table,
		// which routes what BGP learned, is consulted first.
		rule := netlink.NewRule()
		rule.Table, rule.Priority = rtTableMain, 100
		if err := h.RuleAdd(rule); err != nil {
			return fmt.Errorf("routing rule in %s: %w", tu.ns, err)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", tu.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		return fmt.Errorf("forwarding in %s: %v: %s", tu.ns, err, out)
	}
	// The VPC comes back through the edge's TUN.
	if out, err := netlink.LinkByName(tu.f.cfg.OutsideName); err == nil {
		_ = netlink.RouteReplace(&netlink.Route{LinkIndex: out.Attrs().Index, Dst: prefixNet(tu.conn.vpc), Scope: scopeLink})
	}
	if err := tu.startCharon(); err != nil {
		return err
	}
	if tu.et.Bgp != nil {
		return tu.startBGP()
	}
	return nil
}

func (tu *tunnel) startCharon() error {
	tries, timeout, base := DeadPeerRetransmits(time.Duration(max(1, tu.et.Config.GetDpdTimeoutSeconds())) * time.Second)
	c, err := StartCharon(context.Background(), CharonConfig{Netns: tu.ns, Dir: tu.dir, RetransmitTries: tries, RetransmitTimeout: timeout, RetransmitBase: base, NoRoutes: true})
	if err != nil {
		return err
	}
	tu.charon = c
	if err := tu.load(); err != nil {
		c.Stop()
		tu.charon = nil
		return err
	}
	if err := tu.routeIntoIPsec(); err != nil {
		c.Stop()
		tu.charon = nil
		return err
	}
	return nil
}

// routeIntoIPsec routes the site's prefixes, inside the tunnel's
// namespace, into kernel-libipsec's TUN, which charon made at start.
func (tu *tunnel) routeIntoIPsec() error {
	ns, err := netns.GetFromName(tu.ns)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	var l netlink.Link
	for range 50 {
		if l, err = h.LinkByName("ipsec0"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("charon made no ipsec0 in %s (is kernel-libipsec installed? libcharon-extra-plugins): %w", tu.ns, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	if tu.et.Bgp != nil {
		// The session's address, the inside /30's first host, on ipsec0:
		// the site's router (the second) is reached through the tunnel.
		sess, _ := bgpSession(tu.et, tu.conn.vpc, tu.f.cfg.BGPHold)
		a := &netlink.Addr{IPNet: &net.IPNet{IP: sess.LocalAddr.AsSlice(), Mask: net.CIDRMask(30, 32)}}
		if err := addrReplace(h, l, a); err != nil {
			return fmt.Errorf("the inside address %v on ipsec0 in %s: %w", sess.LocalAddr, tu.ns, err)
		}
		tu.ipsecRoutes = nil // a new ipsec0: route what is learned again
		tu.routeIPsec(tu.conn.routes)
		return nil
	}
	for _, p := range tu.conn.routes {
		if err := h.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Scope: scopeLink}); err != nil {
			return fmt.Errorf("route %v into ipsec0 in %s: %w", p, tu.ns, err)
		}
	}
	return nil
}

// load gives charon the key and the connection, as a responder: the
// customer gateway initiates (its config starts both tunnels).
func (tu *tunnel) load() error {
	s, err := vici.NewSession(vici.WithSocketPath(tu.charon.Socket()))
	if err != nil {
		return fmt.Errorf("VICI %s: %w", tu.charon.Socket(), err)
	}
	tu.sess = s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := vici.NewMessage()
	_ = key.Set("type", "IKE")
	_ = key.Set("data", tu.et.Config.GetPreSharedKey())
	_ = key.Set("owners", []string{tu.outside.String(), tu.peer.String()})
	if m, err := s.Call(ctx, "load-shared", key); err != nil || m.Err() != nil {
		return fmt.Errorf("load-shared: %v %v", err, m.Err())
	}
	dpd := max(1, tu.et.Config.GetDpdTimeoutSeconds())
	routes := make([]string, len(tu.conn.routes))
	for i, r := range tu.conn.routes {
		routes[i] = r.String()
	}
	localTS := []string{tu.conn.vpc.String()}
	if tu.et.Bgp != nil {
		// Route-based, as AWS's: the tunnel carries any prefix (the site
		// may narrow it); what goes in is what BGP routes into ipsec0,
		// what comes out passes the source check.
		localTS, routes = []string{"0.0.0.0/0"}, []string{"0.0.0.0/0"}
	}
	child := vici.NewMessage()
	_ = child.Set("local_ts", localTS)
	_ = child.Set("remote_ts", routes)
	_ = child.Set("esp_proposals", espProposals)
	_ = child.Set("dpd_action", "clear")
	_ = child.Set("start_action", "none")
	children := vici.NewMessage()
	_ = children.Set("t", child)
	local, remote := vici.NewMessage(), vici.NewMessage()
	_ = local.Set("auth", "psk")
	_ = local.Set("id", tu.outside.String())
	_ = remote.Set("auth", "psk")
	_ = remote.Set("id", tu.peer.String())
	c := vici.NewMessage()
	_ = c.Set("version", "2")
	_ = c.Set("local_addrs", []string{tu.outside.String()})
	_ = c.Set("remote_addrs", []string{tu.peer.String()})
	_ = c.Set("proposals", ikeProposals)
	_ = c.Set("encap", "yes")
	_ = c.Set("mobike", "no")
	_ = c.Set("dpd_delay", strconv.Itoa(int(max(1, dpd/3)))+"s")
	_ = c.Set("local", local)
	_ = c.Set("remote", remote)
	_ = c.Set("children", children)
	conns := vici.NewMessage()
	_ = conns.Set("t", c)
	if m, err := s.Call(ctx, "load-conn", conns); err != nil || m.Err() != nil {
		return fmt.Errorf("load-conn: %v %v", err, m.Err())
	}
	return nil
}

// poll reads the tunnel's state from charon; a charon that exited is
// started again (after a pause) and the tunnel is down meanwhile.
func (tu *tunnel) poll(ctx context.Context) *pb.TunnelStatus {
	switch {
	case tu.err != "":
		return tu.set(pb.TunnelState_TUNNEL_STATE_DOWN, tu.err, 0, 0)
	case tu.charon == nil:
		if time.Now().After(tu.restart) {
			if err := tu.startCharon(); err != nil {
				tu.restart = time.Now().Add(3 * time.Second)
				return tu.set(pb.TunnelState_TUNNEL_STATE_DOWN, "charon does not start: "+err.Error(), 0, 0)
			}
		}
		return tu.set(pb.TunnelState_TUNNEL_STATE_DOWN, "charon exited; starting it again", 0, 0)
	}
	select {
	case <-tu.charon.Done():
		tu.f.cfg.Logger.Warn("vpn: charon exited", "tunnel", tu.key)
		if tu.sess != nil {
			tu.sess.Close()
			tu.sess = nil
		}
		tu.charon, tu.restart = nil, time.Now().Add(2*time.Second)
		tu.unroute()
		return tu.set(pb.TunnelState_TUNNEL_STATE_DOWN, "charon exited; starting it again", 0, 0)
	default:
	}
	state, in, out := tu.listSAs(ctx)
	detail := ""
	if state != pb.TunnelState_TUNNEL_STATE_UP {
		detail = tu.why()
	}
	st := tu.set(state, detail, in, out)
	st.Bgp = tu.followBGP()
	return st
}

// listSAs is the tunnel's state by its SAs: up with an established IKE SA
// and an installed child SA.
func (tu *tunnel) listSAs(ctx context.Context) (pb.TunnelState, uint64, uint64) {
	if tu.sess == nil {
		return pb.TunnelState_TUNNEL_STATE_DOWN, 0, 0
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	state := pb.TunnelState_TUNNEL_STATE_DOWN
	var in, out uint64
	for m, err := range tu.sess.CallStreaming(ctx, "list-sas", "list-sa", vici.NewMessage()) {
		if err != nil {
			break
		}
		for _, name := range m.Keys() {
			ike, ok := m.Get(name).(*vici.Message)
			if !ok {
				continue
			}
			switch ike.Get("state") {
			case "ESTABLISHED":
				children, _ := ike.Get("child-sas").(*vici.Message)
				if children == nil {
					break
				}
				for _, cn := range children.Keys() {
					ch, _ := children.Get(cn).(*vici.Message)
					if ch != nil && ch.Get("state") == "INSTALLED" {
						state = pb.TunnelState_TUNNEL_STATE_UP
						in += num(ch.Get("bytes-in"))
						out += num(ch.Get("bytes-out"))
					}
				}
				if state != pb.TunnelState_TUNNEL_STATE_UP {
					state = pb.TunnelState_TUNNEL_STATE_CONNECTING
				}
			case "CONNECTING":
				if state == pb.TunnelState_TUNNEL_STATE_DOWN {
					state = pb.TunnelState_TUNNEL_STATE_CONNECTING
				}
			}
		}
	}
	return state, in, out
}

func num(v any) uint64 {
	s, _ := v.(string)
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// why reads charon's log for the reason a tunnel is not up, in words a
// user acts on.
func (tu *tunnel) why() string {
	f, err := os.Open(tu.charon.Log())
	if err != nil {
		return "waiting for the customer gateway " + tu.peer.String() + " to connect"
	}
	defer f.Close()
	reason := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, "MAC mismatched"), strings.Contains(l, "AUTHENTICATION_FAILED"), strings.Contains(l, "authentication of") && strings.Contains(l, "failed"):
			reason = "authentication failed: the customer gateway's pre-shared key does not match (see openvpc vpn config)"
		case strings.Contains(l, "no IKE config found"):
			// charon answers NO_PROPOSAL_CHOSEN to a gateway that knocked
			// before the connection was loaded: no proposal was wrong.
			reason = "the customer gateway connected before this tunnel was ready and was refused; initiate it again (swanctl --initiate) or let its DPD restart it"
		case strings.Contains(l, "NO_PROPOSAL_CHOSEN"), strings.Contains(l, "no acceptable proposal"):
			reason = "no proposal both sides accept: configure the proposals openvpc vpn config prints"
		case strings.Contains(l, "TS_UNACCEPTABLE"), strings.Contains(l, "traffic selectors") && strings.Contains(l, "unacceptable"):
			reason = "traffic selectors unacceptable: the site must propose its routed prefixes and the VPC's CIDR"
		case strings.Contains(l, "IKE_SA") && strings.Contains(l, "established"):
			reason = ""
		}
	}
	if reason == "" {
		return "waiting for the customer gateway " + tu.peer.String() + " to connect"
	}
	return reason
}

// set records the state, keeping since when it did not change.
func (tu *tunnel) set(s pb.TunnelState, detail string, in, out uint64) *pb.TunnelStatus {
	if tu.state.State != s {
		tu.state = &pb.TunnelStatus{State: s, Since: timestamppb.Now()}
	}
	tu.state.Detail, tu.state.BytesIn, tu.state.BytesOut = detail, in, out
	return proto.CloneOf(tu.state)
}

// changed says whether st is to be reported: a new state or detail, or
// byte counters not sent for 5 s.
func (tu *tunnel) changed(st *pb.TunnelStatus) bool {
	r := tu.reported
	if r != nil && r.State == st.State && r.Detail == st.Detail && sameBGP(r.Bgp, st.Bgp) && (time.Since(tu.lastSent) < 5*time.Second || r.BytesIn == st.BytesIn && r.BytesOut == st.BytesOut) {
		return false
	}
	tu.reported, tu.lastSent = st, time.Now()
	return true
}

// route sends the site's prefixes into this tunnel's namespace (and
// stops sending those it no longer has: BGP withdrew them).
func (tu *tunnel) route() {
	if tu.routed && slices.Equal(tu.edgeRoutes, tu.conn.routes) {
		return
	}
	l, err := netlink.LinkByName(tu.veth)
	if err != nil {
		return
	}
	for _, p := range tu.edgeRoutes {
		if !slices.Contains(tu.conn.routes, p) {
			_ = netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Gw: tu.outside.AsSlice()})
		}
	}
	tu.edgeRoutes = nil
	for _, p := range tu.conn.routes {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Gw: tu.outside.AsSlice()}); err != nil {
			tu.f.cfg.Logger.Warn("vpn: cannot route a site prefix into its tunnel", "tunnel", tu.key, "prefix", p, "err", err)
			return
		}
		tu.edgeRoutes = append(tu.edgeRoutes, p)
	}
	tu.routed = true
}

func (tu *tunnel) unroute() {
	if !tu.routed {
		return
	}
	if l, err := netlink.LinkByName(tu.veth); err == nil {
		for _, p := range tu.edgeRoutes {
			_ = netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Gw: tu.outside.AsSlice()})
		}
	}
	tu.edgeRoutes = nil
	tu.routed = false
}

// stop ends the tunnel: charon, namespace and veth go.
func (tu *tunnel) stop() {
	tu.unroute()
	tu.teardown()
}

func (tu *tunnel) teardown() {
	if tu.bgpStop != nil {
		tu.bgpStop()
		tu.bgp, tu.bgpStop = nil, nil
	}
	if tu.sess != nil {
		tu.sess.Close()
		tu.sess = nil
	}
	if tu.charon != nil {
		tu.charon.Stop()
		tu.charon = nil
	}
	if l, err := netlink.LinkByName(tu.veth); err == nil {
		_ = netlink.LinkDel(l)
	}
	_ = netns.DeleteNamed(tu.ns)
	_ = os.RemoveAll(tu.dir)
	tu.f.disown(tu.ns)
}

// newNamedNS makes a named namespace without moving the process.
func newNamedNS(name string) (netns.NsHandle, error) {
	h := netns.None()
	err := nsthread.Run(func() error {
		var err error
		h, err = netns.NewNamed(name) // moves this thread in; nsthread.Run moves it back
		return err
	})
	if err != nil && h.IsOpen() {
		h.Close()
	}
	return h, err
}

// reservedAddr is a VPC's network address + 3 (AWS: "reserved for future use").
func reservedAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	a[3] += 3
	return netip.AddrFrom4(a)
}

func host32(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}
