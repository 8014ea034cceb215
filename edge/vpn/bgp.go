package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/edge/bgp"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// BGP over a tunnel. For a connection whose routing is BGP, each tunnel
// runs an edge/bgp speaker (a child process) inside the tunnel's
// namespace on the tunnel's inside address — the /30's first host; the
// site's router is the second — announcing the VPC's CIDR. What the
// session learned while established is the tunnel's routes: into ipsec0
// in the tunnel's namespace, into the tunnel's namespace from the edge's
// (when it carries the connection), and what the source check admits.
// The state goes to the Mapping Service with the tunnel's, which
// propagates the learned prefixes (VPN_BGP) and, once the session is
// down, withdraws them: hosts then use the other tunnel.

// DefaultBGPHold is the hold time AWS's VPN tunnels offer.
const DefaultBGPHold = 30 * time.Second

// bgpSession is the speaker's session for tunnel et: local = the vgw's
// ASN on the inside /30's first host, peer = the cgw's ASN on its second.
func bgpSession(et *pb.EdgeTunnel, vpc netip.Prefix, hold time.Duration) (bgp.Config, error) {
	b := et.GetBgp()
	if b == nil {
		return bgp.Config{}, fmt.Errorf("the connection's routing is static")
	}
	inside, err := model.ParseCIDR("inside CIDR", et.Config.GetInsideCidr(), 30, 30)
	if err != nil {
		return bgp.Config{}, fmt.Errorf("tunnel inside CIDR %q: %v", et.Config.GetInsideCidr(), err)
	}
	if hold == 0 {
		hold = DefaultBGPHold
	}
	cfg := bgp.Config{LocalASN: b.LocalAsn, PeerASN: b.PeerAsn,
		LocalAddr: inside.Addr().Next(), PeerAddr: inside.Addr().Next().Next(),
		Hold: hold, Keepalive: hold / 3, Announce: []netip.Prefix{vpc.Masked()}}
	return cfg, cfg.Validate()
}

// usableLearned keeps, of what a session learned, the prefixes a site may
// be routed: not the default route, not link-local, loopback, multicast
// or reserved, and nothing overlapping the VPC (the source check must
// never take a VPC address for the site's). At most 100, AWS's limit
// (the speaker already ends a session over it).
func usableLearned(learned []netip.Prefix, vpc netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(learned))
	for _, p := range learned {
		p = p.Masked()
		a := p.Addr()
		switch {
		case !p.IsValid() || !a.Is4() || p.Bits() == 0, vpc.Overlaps(p),
			linkLocal.Overlaps(p), a.IsLoopback(), a.IsMulticast(), reserved.Overlaps(p):
			continue
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr())*64 + a.Bits() - b.Bits() })
	return out[:min(len(out), bgp.DefaultMaxPrefixes)]
}

var (
	linkLocal = netip.MustParsePrefix("169.254.0.0/16")
	reserved  = netip.MustParsePrefix("240.0.0.0/4")
)

// startBGP starts the tunnel's speaker in its namespace.
func (tu *tunnel) startBGP() error {
	sess, err := bgpSession(tu.et, tu.conn.vpc, tu.f.cfg.BGPHold)
	if err != nil {
		return err
	}
	p, err := bgp.NewProcess(bgp.ProcessConfig{Session: sess, NetNS: "/run/netns/" + tu.ns, Command: tu.f.cfg.SpeakerCommand},
		tu.f.cfg.Logger.With("tunnel", tu.key), nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	tu.bgp, tu.bgpStop = p, func() { cancel(); <-done }
	return nil
}

// followBGP makes the tunnel's routes what its session learned (none
// unless established) and returns the session's status for the report.
func (tu *tunnel) followBGP() *pb.VpnBgpStatus {
	if tu.bgp == nil {
		return nil
	}
	st := tu.bgp.Status()
	var learned []netip.Prefix
	if st.State == bgp.Established {
		learned = usableLearned(st.Learned, tu.conn.vpc)
	}
	if !slices.Equal(learned, tu.conn.routes) {
		tu.f.cfg.Logger.Info("vpn: the tunnel's BGP routes changed", "tunnel", tu.key, "state", st.State, "learned", learned)
		tu.conn.routes = learned // a new slice: the data path holds the old one
		tu.routeIPsec(learned)
	}
	out := &pb.VpnBgpStatus{State: string(st.State), Reason: st.Reason, Flaps: st.Flaps, OverLimit: st.OverLimit}
	if !st.Since.IsZero() {
		out.Since = timestamppb.New(st.Since)
	}
	for _, p := range learned {
		out.Learned = append(out.Learned, p.String())
	}
	for _, p := range st.Advertised {
		out.Advertised = append(out.Advertised, p.String())
	}
	return out
}

// routeIPsec makes the routes into ipsec0 in the tunnel's namespace want.
func (tu *tunnel) routeIPsec(want []netip.Prefix) {
	ns, err := netns.GetFromName(tu.ns)
	if err != nil {
		return
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return
	}
	defer h.Close()
	l, err := h.LinkByName("ipsec0")
	if err != nil {
		tu.ipsecRoutes = nil
		return
	}
	for _, p := range tu.ipsecRoutes {
		if !slices.Contains(want, p) {
			_ = h.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Scope: scopeLink})
		}
	}
	tu.ipsecRoutes = tu.ipsecRoutes[:0]
	for _, p := range want {
		if err := h.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Scope: scopeLink}); err != nil {
			tu.f.cfg.Logger.Warn("vpn: cannot route a learned prefix into ipsec0", "tunnel", tu.key, "prefix", p, "err", err)
			continue
		}
		tu.ipsecRoutes = append(tu.ipsecRoutes, p)
	}
}

// carrying says whether the tunnel, in state st, carries its connection:
// up, and for BGP its session established.
func carrying(st *pb.TunnelStatus) bool {
	if st.GetState() != pb.TunnelState_TUNNEL_STATE_UP {
		return false
	}
	return st.GetBgp() == nil || st.GetBgp().GetState() == string(bgp.Established)
}

// sameBGP says whether two reports of a session say the same (the
// counters aside).
func sameBGP(a, b *pb.VpnBgpStatus) bool {
	return a.GetState() == b.GetState() && a.GetReason() == b.GetReason() && a.GetOverLimit() == b.GetOverLimit() &&
		slices.Equal(a.GetLearned(), b.GetLearned()) && slices.Equal(a.GetAdvertised(), b.GetAdvertised())
}
