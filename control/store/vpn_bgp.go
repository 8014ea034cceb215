package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// BGP over a VPN connection's tunnels. Each tunnel's edge runs a session
// on the tunnel's inside address and reports it with the tunnel's state
// (TunnelStatus.bgp). What the sessions that are established learned is
// the connection's VPN_BGP propagated routes, rewritten with every report
// that changes it: a session going down (its hold timer, the site's bgpd
// gone) withdraws what only it carried.

// BGPEstablished is the state an edge reports of a session that carries
// routes.
const BGPEstablished = "established"

// maxBGPPrefixes is AWS's limit of prefixes a VPN tunnel's session
// accepts; the edge's speaker enforces it, the store only refuses more.
const maxBGPPrefixes = 100

// Carrying says whether a tunnel carries traffic: up, and for a BGP
// connection's tunnel its session established (a tunnel whose session is
// down has no routes to the site, so hosts use the other one).
func Carrying(st *pb.TunnelStatus) bool {
	if st.GetState() != pb.TunnelState_TUNNEL_STATE_UP {
		return false
	}
	return st.GetBgp() == nil || st.GetBgp().GetState() == BGPEstablished
}

// ValidateBGPStatus checks what an edge reports of a tunnel's session.
func ValidateBGPStatus(b *pb.VpnBgpStatus) error {
	if b == nil {
		return nil
	}
	if len(b.Learned) > maxBGPPrefixes {
		return model.Invalidf("BGP status: %d learned prefixes, more than the %d a VPN tunnel accepts", len(b.Learned), maxBGPPrefixes)
	}
	for _, l := range b.Learned {
		p, err := netip.ParsePrefix(l)
		if err != nil {
			return model.Invalidf("BGP status: learned prefix %q is not a CIDR such as 10.1.0.0/16", l)
		}
		if err := ValidateSiteRoute(p); err != nil {
			return err
		}
	}
	return nil
}

// bgpLearned is the union of what the carrying sessions of a connection
// learned, given its tunnels' statuses.
func bgpLearned(sts []*pb.TunnelStatus) []netip.Prefix {
	var out []netip.Prefix
	for _, st := range sts {
		if !Carrying(st) || st.GetBgp() == nil {
			continue
		}
		for _, l := range st.Bgp.Learned {
			if p, err := netip.ParsePrefix(l); err == nil && !slices.Contains(out, p.Masked()) {
				out = append(out, p.Masked())
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return comparePrefixStrings(a.String(), b.String()) })
	return out
}

// putBGPPropagated adds to t the rewrite of c's VPN_BGP routes, given the
// statuses of its tunnels after this report, if they changed.
func (s *Store) putBGPPropagated(ctx context.Context, t *txn, c *pb.VpnConnection, sts []*pb.TunnelStatus) error {
	if c.StaticRoutesOnly || c.VpnGatewayId == "" {
		return nil
	}
	want := bgpLearned(sts)
	old := new(pb.PropagatedRoutes)
	if _, _, err := s.getProto(ctx, s.propKey(c.VpnGatewayId, c.Id), old); err != nil {
		return err
	}
	cur := make([]string, len(want))
	for i, p := range want {
		cur[i] = p.String()
	}
	if slices.Equal(cur, old.Prefixes) && (len(cur) == 0 || old.Origin == pb.RouteOrigin_ROUTE_ORIGIN_VPN_BGP) {
		return nil
	}
	s.putPropagated(t, c.VpnGatewayId, c.Id, pb.RouteOrigin_ROUTE_ORIGIN_VPN_BGP, want)
	return nil
}

// otherTunnelStatus is the stored status of c's tunnel other than n, nil
// when there is none or it was reported by an edge the tunnel is no
// longer placed on (stale).
func (s *Store) otherTunnelStatus(ctx context.Context, c *pb.VpnConnection, n int, place [2]string) (*pb.TunnelStatus, error) {
	o := 1 - n
	st := new(pb.TunnelStatus)
	_, found, err := s.getProto(ctx, s.tunnelKey(c.Id, o), st)
	if err != nil || !found || st.EdgeId != place[o] {
		return nil, err
	}
	return st, nil
}

// bgpDetail words a session's state for an event or a listing.
func bgpDetail(b *pb.VpnBgpStatus) string {
	if b == nil {
		return ""
	}
	d := fmt.Sprintf("BGP %s, %d prefixes learned", b.State, len(b.Learned))
	if b.Reason != "" && b.State != BGPEstablished {
		d += " (" + b.Reason + ")"
	}
	return d
}

// tunnelDownDetail words the event of tunnel n of vpn no longer carrying:
// the tunnel went down, or (BGP) its session did.
func tunnelDownDetail(vpn string, n int, st *pb.TunnelStatus) string {
	if st.GetState() == pb.TunnelState_TUNNEL_STATE_UP && st.GetBgp() != nil {
		return fmt.Sprintf("tunnel %d of %s is up but its BGP session went %s: %s; its routes are withdrawn", n+1, vpn, st.Bgp.State, bgpDetail(st.Bgp))
	}
	d := fmt.Sprintf("tunnel %d of %s went %s: %s", n+1, vpn, tunnelStateName(st.State), st.Detail)
	if st.GetBgp() != nil {
		d += "; " + bgpDetail(st.Bgp)
	}
	return d
}
