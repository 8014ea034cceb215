package store

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Route propagation, shared by VPN and Direct Connect.
//
// A source (a VPN connection vpn-…, a Direct Connect virtual interface
// dxvif-…) propagates prefixes through a virtual private gateway: one
// record prop/<vgw-id>.<source-id> holds all of them, replaced whole by
// SetPropagatedRoutes. A route table with the vgw among its
// propagating_vgws receives them, as routes that target the source (so a
// host's next hop names the edge function that reaches the site), ranked
// against its own routes by EffectiveRoutes.

func (s *Store) propKey(vgw, source string) string { return s.key(RecPropagated, vgw+"."+source) }
func (s *Store) propPrefix(vgw string) string      { return s.key(RecPropagated, vgw+".") }

// SetPropagatedRoutes atomically replaces everything sourceID propagates
// into vgwID with prefixes (none: the source withdraws all it had).
// origin says what kind of source it is, which decides AWS's priority
// between routes for the same prefix.
func (s *Store) SetPropagatedRoutes(ctx context.Context, vgwID, sourceID string, origin pb.RouteOrigin, prefixes []netip.Prefix) error {
	if !model.IsID(model.KindVPNGateway, vgwID) {
		return model.Invalidf("propagated routes: %q is not a virtual private gateway id (vgw-…)", vgwID)
	}
	if !model.IsID(model.KindVPNConnection, sourceID) && !model.IsID(model.KindDirectConnect, sourceID) {
		return model.Invalidf("propagated routes: source %q is neither a VPN connection (vpn-…) nor a Direct Connect virtual interface (dxvif-…)", sourceID)
	}
	if origin <= pb.RouteOrigin_ROUTE_ORIGIN_STATIC || origin > pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT {
		return model.Invalidf("propagated routes: origin %v is not a propagated origin (VPN_STATIC, VPN_BGP or DIRECT_CONNECT)", origin)
	}
	for _, p := range prefixes {
		if err := ValidateSiteRoute(p); err != nil {
			return err
		}
	}
	var t txn
	s.putPropagated(&t, vgwID, sourceID, origin, prefixes)
	_, _, err := s.commit(ctx, &t)
	return err
}

// putPropagated adds SetPropagatedRoutes's write to t, so that a change
// that causes it (a VPN static route added) commits with it.
func (s *Store) putPropagated(t *txn, vgwID, sourceID string, origin pb.RouteOrigin, prefixes []netip.Prefix) {
	if len(prefixes) == 0 {
		t.del(s.propKey(vgwID, sourceID))
		return
	}
	strs := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		strs = append(strs, p.Masked().String())
	}
	slices.SortFunc(strs, comparePrefixStrings)
	t.putProto(s.propKey(vgwID, sourceID), &pb.PropagatedRoutes{VgwId: vgwID, SourceId: sourceID, Origin: origin, Prefixes: slices.Compact(strs)})
}

func comparePrefixStrings(a, b string) int {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	if ea != nil || eb != nil {
		return strings.Compare(a, b)
	}
	if c := pa.Addr().Compare(pb.Addr()); c != 0 {
		return c
	}
	return pa.Bits() - pb.Bits()
}

// ListPropagatedRoutes returns every source's record of vgwID.
func (s *Store) ListPropagatedRoutes(ctx context.Context, vgwID string) ([]*pb.PropagatedRoutes, error) {
	return listProto(ctx, s, s.propPrefix(vgwID), func() *pb.PropagatedRoutes { return new(pb.PropagatedRoutes) })
}

// originRank orders origins for one prefix: higher wins (AWS: static,
// then Direct Connect, then VPN static, then VPN BGP).
func originRank(o pb.RouteOrigin) int {
	switch o {
	case pb.RouteOrigin_ROUTE_ORIGIN_UNSPECIFIED, pb.RouteOrigin_ROUTE_ORIGIN_STATIC:
		return 4
	case pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT:
		return 3
	case pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC:
		return 2
	case pb.RouteOrigin_ROUTE_ORIGIN_VPN_BGP:
		return 1
	}
	return 0
}

// Usable says whether a propagating source can carry traffic now (a VPN
// connection with a tunnel up); when not, why, for route-table get.
type Usable func(sourceID string) (ok bool, why string)

// EffectiveRoutes ranks a route table's own routes against the routes
// propagated into it and returns them all, each with its state:
//   - the table's own routes come first, as they are (their state filled
//     by the caller); one for a prefix beats every propagated route for
//     that prefix;
//   - for each other prefix, of the propagated routes whose source is
//     usable the one of the best origin is active (Direct Connect over VPN
//     static over VPN BGP; equal origins: the lowest source id, so every
//     server picks the same); the rest are inactive, with the reason.
//
// Longest prefix first needs nothing here: hosts match the longest prefix
// among the active routes. Active routes are what hosts receive.
func EffectiveRoutes(own []*pb.Route, propagated []*pb.PropagatedRoutes, usable Usable) []*pb.Route {
	out := slices.Clone(own)
	ownDst := map[string]bool{}
	for _, r := range own {
		if p, err := netip.ParsePrefix(r.DestinationCidr); err == nil {
			ownDst[p.Masked().String()] = true
		}
	}
	type cand struct {
		r    *pb.Route
		ok   bool
		rank int
	}
	byDst := map[string][]cand{}
	var dsts []string
	usableMemo := map[string][2]string{}
	for _, pr := range propagated {
		memo, seen := usableMemo[pr.SourceId]
		if !seen {
			ok, why := true, ""
			if usable != nil {
				ok, why = usable(pr.SourceId)
			}
			memo = [2]string{"", why}
			if ok {
				memo[0] = "ok"
			}
			usableMemo[pr.SourceId] = memo
		}
		for _, d := range pr.Prefixes {
			if _, ok := byDst[d]; !ok {
				dsts = append(dsts, d)
			}
			r := &pb.Route{DestinationCidr: d, Target: pr.SourceId, Origin: pr.Origin, VgwId: pr.VgwId}
			c := cand{r: r, ok: memo[0] == "ok", rank: originRank(pr.Origin)}
			if !c.ok {
				r.State, r.InactiveReason = pb.RouteState_ROUTE_STATE_INACTIVE, memo[1]
			}
			byDst[d] = append(byDst[d], c)
		}
	}
	slices.SortFunc(dsts, comparePrefixStrings)
	for _, d := range dsts {
		cs := byDst[d]
		slices.SortStableFunc(cs, func(a, b cand) int {
			if a.ok != b.ok {
				if a.ok {
					return -1
				}
				return 1
			}
			if a.rank != b.rank {
				return b.rank - a.rank
			}
			return strings.Compare(a.r.Target, b.r.Target)
		})
		for i, c := range cs {
			switch {
			case !c.ok:
			case ownDst[d]:
				c.r.State, c.r.InactiveReason = pb.RouteState_ROUTE_STATE_INACTIVE, "the route table's own route for "+d+" wins"
			case i > 0:
				c.r.State, c.r.InactiveReason = pb.RouteState_ROUTE_STATE_INACTIVE, "the route from "+cs[0].r.Target+" wins ("+originName(cs[0].r.Origin)+")"
			default:
				c.r.State = pb.RouteState_ROUTE_STATE_ACTIVE
			}
			out = append(out, c.r)
		}
	}
	return out
}

// ActiveRoutes keeps the routes that carry traffic: the table's own ones
// (active or blackhole) and the active propagated ones. This is what a
// host's route table holds.
func ActiveRoutes(routes []*pb.Route) []*pb.Route {
	out := make([]*pb.Route, 0, len(routes))
	for _, r := range routes {
		if r.State != pb.RouteState_ROUTE_STATE_INACTIVE {
			out = append(out, r)
		}
	}
	return out
}

// originName is how messages and the CLI name an origin.
func originName(o pb.RouteOrigin) string {
	switch o {
	case pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC:
		return "vpn static"
	case pb.RouteOrigin_ROUTE_ORIGIN_VPN_BGP:
		return "vpn bgp"
	case pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT:
		return "direct connect"
	}
	return "static"
}

// EnableRoutePropagation makes a route table receive what a virtual
// private gateway propagates. The vgw must be attached to the table's VPC.
func (s *Store) EnableRoutePropagation(ctx context.Context, rtbRef, vgwRef string) (*pb.RouteTable, error) {
	return s.setPropagation(ctx, rtbRef, vgwRef, true)
}

// DisableRoutePropagation stops it; the routes leave the table.
func (s *Store) DisableRoutePropagation(ctx context.Context, rtbRef, vgwRef string) (*pb.RouteTable, error) {
	return s.setPropagation(ctx, rtbRef, vgwRef, false)
}

func (s *Store) setPropagation(ctx context.Context, rtbRef, vgwRef string, on bool) (*pb.RouteTable, error) {
	var out *pb.RouteTable
	err := retry(ctx, "route propagation", func() error {
		rtb := new(pb.RouteTable)
		rev, err := s.load(ctx, model.KindRouteTable, rtbRef, rtb)
		if err != nil {
			return err
		}
		g := new(pb.VpnGateway)
		grev, err := s.load(ctx, model.KindVPNGateway, vgwRef, g)
		if err != nil {
			return err
		}
		has := slices.Contains(rtb.PropagatingVgws, g.Id)
		var t txn
		switch {
		case on && has:
			return model.Existsf("route table %s already propagates from %s", rtb.Id, g.Id)
		case !on && !has:
			return model.NotFoundf("route table %s does not propagate from %s", rtb.Id, g.Id)
		case on:
			if g.VpcId != rtb.VpcId {
				return model.Preconditionf("virtual private gateway %s is not attached to this route table's VPC %s; attach it first (openvpc vgw attach %s --vpc %s)", g.Id, rtb.VpcId, g.Id, rtb.VpcId)
			}
			t.unchanged(s.resKey(model.KindVPNGateway, g.Id), grev)
			rtb.PropagatingVgws = append(rtb.PropagatingVgws, g.Id)
			slices.Sort(rtb.PropagatingVgws)
		default:
			// No ref key either way: a vgw detached or deleted leaves an id
			// here that propagates nothing until it is attached again.
			rtb.PropagatingVgws = slices.DeleteFunc(rtb.PropagatingVgws, func(id string) bool { return id == g.Id })
		}
		t.unchanged(s.resKey(model.KindRouteTable, rtb.Id), rev)
		t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = rtb
		return s.fillRouteStates(ctx, rtb)
	})
	return out, err
}

// fillPropagated adds the routes propagated into rtb from the vgws it
// propagates from that are attached to its VPC (a detached vgw's routes
// stay out until it is attached again).
func (s *Store) fillPropagated(ctx context.Context, rtb *pb.RouteTable) error {
	if len(rtb.PropagatingVgws) == 0 {
		return nil
	}
	var all []*pb.PropagatedRoutes
	for _, id := range rtb.PropagatingVgws {
		g := new(pb.VpnGateway)
		_, found, err := s.getProto(ctx, s.resKey(model.KindVPNGateway, id), g)
		if err != nil {
			return err
		}
		if !found || g.VpcId != rtb.VpcId {
			continue
		}
		prs, err := s.ListPropagatedRoutes(ctx, id)
		if err != nil {
			return err
		}
		all = append(all, prs...)
	}
	status, err := s.allTunnelStatus(ctx)
	if err != nil {
		return err
	}
	rtb.Routes = EffectiveRoutes(rtb.Routes, all, func(src string) (bool, string) { return SourceUsable(src, status) })
	return nil
}

// SourceUsable says whether a propagating source carries traffic, given
// the tunnel states by "vpn-….N": a VPN connection needs a tunnel up.
// Other sources (Direct Connect) are usable while they propagate
// anything: they withdraw their routes when their BGP session goes down.
func SourceUsable(src string, tunnels map[string]*pb.TunnelStatus) (bool, string) {
	if !model.IsID(model.KindVPNConnection, src) {
		return true, ""
	}
	for n := range 2 {
		if st := tunnels[TunnelKey(src, n)]; Carrying(st) {
			return true, ""
		}
	}
	return false, "no tunnel of " + src + " is up"
}
