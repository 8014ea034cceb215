package mapping

import (
	"slices"
	"strings"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// VPN in the world: virtual private gateways (which VPC each is attached
// to), VPN connections (their vgw), their tunnels' reported states and
// the routes sources propagate through vgws. From these it derives
//   - the propagated routes of each route table (store.EffectiveRoutes),
//     of which hosts receive the active ones, targeting the source;
//   - where each tunnel is placed (store.PlaceTunnels over the VPN edges)
//     and which edge holds a connection's preferred up tunnel: hosts see
//     that edge's VPN function serve the connection, and no other's;
//   - an edge's scope: the VPCs behind the tunnels placed on it.

// vpnState is what the world keeps for VPN, inside world.
type vpnState struct {
	vgws    map[string]*pb.VpnGateway
	vpns    map[string]*pb.VpnConnection
	tunnels map[string]*pb.TunnelStatus     // by store.TunnelKey
	props   map[string]*pb.PropagatedRoutes // by record id vgw.source
	// edges are the healthy VPN edges, sorted; nil when to be recomputed.
	edges []string
	fresh bool
}

func newVPNState() vpnState {
	return vpnState{vgws: map[string]*pb.VpnGateway{}, vpns: map[string]*pb.VpnConnection{},
		tunnels: map[string]*pb.TunnelStatus{}, props: map[string]*pb.PropagatedRoutes{}}
}

// vpnEdges are the edges tunnels are placed on.
func (w *world) vpnEdges() []string {
	if !w.vpn.fresh {
		hs := make([]*pb.Host, 0, len(w.hosts))
		for _, h := range w.hosts {
			hs = append(hs, h)
		}
		w.vpn.edges, w.vpn.fresh = store.VPNEdges(hs), true
	}
	return w.vpn.edges
}

// vgwVPC is the VPC a vgw is attached to, "" if none.
func (w *world) vgwVPC(vgw string) string {
	if g := w.vpn.vgws[vgw]; g != nil {
		if _, ok := w.vpcs[g.VpcId]; ok {
			return g.VpcId
		}
	}
	return ""
}

// tunnelStates are a connection's tunnels' placement and last reports
// from the edges they are placed on (a report from elsewhere is stale).
func (w *world) tunnelStates(vpn string) ([2]string, []*pb.TunnelStatus) {
	place := store.PlaceTunnels(vpn, w.vpnEdges())
	sts := make([]*pb.TunnelStatus, 2)
	for n := range 2 {
		if st := w.vpn.tunnels[store.TunnelKey(vpn, n)]; st != nil && st.EdgeId == place[n] && place[n] != "" {
			sts[n] = st
		}
	}
	return place, sts
}

// servingEdge is the edge holding vpn's preferred up tunnel, "" if none is up.
func (w *world) servingEdge(vpn string) string {
	place, sts := w.tunnelStates(vpn)
	if p := store.PreferredTunnel(sts); p >= 0 {
		return place[p]
	}
	return ""
}

// standbyEdges are the edges holding an up tunnel of vpn that is not the
// preferred one: hosts accept the connection's traffic from them too.
func (w *world) standbyEdges(vpn string) []string {
	place, sts := w.tunnelStates(vpn)
	p := store.PreferredTunnel(sts)
	var out []string
	for n, st := range sts {
		if n != p && st.GetState() == pb.TunnelState_TUNNEL_STATE_UP && place[n] != place[max(p, 0)] {
			out = append(out, place[n])
		}
	}
	return out
}

// edgeView is what hosts hold of vpn: who serves it and who stands by.
func (w *world) edgeView(vpn string) string {
	return w.servingEdge(vpn) + "|" + strings.Join(w.standbyEdges(vpn), ",")
}

// usable says whether a propagating source carries traffic now.
func (w *world) usable(src string) (bool, string) {
	if ok, why, known := w.dxUsable(src); known {
		return ok, why
	}
	if _, ok := w.vpn.vpns[src]; ok {
		if w.servingEdge(src) != "" {
			return true, ""
		}
		return false, "no tunnel of " + src + " is up"
	}
	return store.SourceUsable(src, nil)
}

// vpnVPCs are the VPCs behind every connection: their facts depend on
// placement, which any VPN edge's change can move.
func (w *world) vpnVPCs(d *delta) {
	for _, c := range w.vpn.vpns {
		if v := w.vgwVPC(c.VpnGatewayId); v != "" {
			d.facts.add(v)
		}
	}
}

// vpnEdgesDirty marks every VPN edge's scope for recomputing.
func (w *world) vpnEdgesDirty(d *delta) {
	for h := range w.hosts {
		if w.serves(h, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN) {
			d.scopeDirty.add(h)
		}
	}
}

func (w *world) applyVGW(r store.Record, d *delta) error {
	g, err := decode(r, new(pb.VpnGateway))
	if err != nil {
		return err
	}
	before := w.vgwVPC(r.ID)
	if r.Deleted {
		delete(w.vpn.vgws, r.ID)
	} else {
		w.vpn.vgws[r.ID] = g
	}
	after := w.vgwVPC(r.ID)
	if before == after {
		return nil
	}
	for _, v := range []string{before, after} {
		if v != "" {
			d.facts.add(v)
		}
	}
	w.vpnEdgesDirty(d)
	w.dxAll(d) // the VPCs Direct Connect VIFs reach moved too
	return nil
}

func (w *world) applyVPNConnection(r store.Record, d *delta) error {
	c, err := decode(r, new(pb.VpnConnection))
	if err != nil {
		return err
	}
	old := w.vpn.vpns[r.ID]
	if r.Deleted {
		delete(w.vpn.vpns, r.ID)
	} else {
		w.vpn.vpns[r.ID] = c
	}
	if old == nil || r.Deleted || old.VpnGatewayId != c.VpnGatewayId {
		w.vpnEdgesDirty(d)
		w.edgeChanged(d, w.servingEdgeOr(r.ID, old))
		if v := w.vgwVPC(c.VpnGatewayId); v != "" {
			d.facts.add(v)
		}
	}
	return nil
}

// edgeChanged: hosts must get edge e's record again (what it serves changed).
func (w *world) edgeChanged(d *delta, e string) {
	if e == "" {
		return
	}
	d.edges = d.edges.add(e)
	d.hostsChanged.add(e)
}

// servingEdgeOr names an edge whose record hosts must get again after a
// connection appeared or went; any VPN edge does when none serves it.
func (w *world) servingEdgeOr(vpn string, _ *pb.VpnConnection) string {
	if e := w.servingEdge(vpn); e != "" {
		return e
	}
	if es := w.vpnEdges(); len(es) > 0 {
		return es[0]
	}
	return ""
}

func (w *world) applyTunnelStatus(r store.Record, d *delta) error {
	st, err := decode(r, new(pb.TunnelStatus))
	if err != nil {
		return err
	}
	vpn, _, _ := strings.Cut(r.ID, ".")
	before, beforeView := w.servingEdge(vpn), w.edgeView(vpn)
	if r.Deleted {
		delete(w.vpn.tunnels, r.ID)
	} else {
		w.vpn.tunnels[r.ID] = st
	}
	after := w.servingEdge(vpn)
	if beforeView == w.edgeView(vpn) {
		return nil // byte counters and the like: nothing hosts hold changed
	}
	// The edges' records change what they serve or stand by for.
	for _, e := range w.vpnEdges() {
		w.edgeChanged(d, e)
	}
	// The routes propagated from vpn become active or inactive when one
	// side is "".
	if (before == "") != (after == "") {
		if c := w.vpn.vpns[vpn]; c != nil {
			if v := w.vgwVPC(c.VpnGatewayId); v != "" {
				d.facts.add(v)
			}
		}
	}
	return nil
}

func (w *world) applyPropagated(r store.Record, d *delta) error {
	p, err := decode(r, new(pb.PropagatedRoutes))
	if err != nil {
		return err
	}
	if old := w.vpn.props[r.ID]; old != nil {
		if v := w.vgwVPC(old.VgwId); v != "" {
			d.facts.add(v)
		}
	}
	if r.Deleted {
		delete(w.vpn.props, r.ID)
		return nil
	}
	w.vpn.props[r.ID] = p
	if v := w.vgwVPC(p.VgwId); v != "" {
		d.facts.add(v)
	}
	return nil
}

// propagatedRoutes are the active routes propagated into rt, whose VPC is vpc.
func (w *world) propagatedRoutes(vpc string, rt *pb.RouteTable) []*pb.Route {
	if len(rt.PropagatingVgws) == 0 {
		return rt.Routes
	}
	var prs []*pb.PropagatedRoutes
	for _, g := range rt.PropagatingVgws {
		if w.vgwVPC(g) != vpc {
			continue
		}
		for _, p := range w.vpn.props {
			if p.VgwId == g {
				prs = append(prs, p)
			}
		}
	}
	slices.SortFunc(prs, func(a, b *pb.PropagatedRoutes) int { return strings.Compare(a.SourceId, b.SourceId) })
	return store.ActiveRoutes(store.EffectiveRoutes(rt.Routes, prs, w.usable))
}

// vpnScope adds to s the VPCs behind the tunnels placed on edge.
func (w *world) vpnScope(edge string, s set) {
	for id, c := range w.vpn.vpns {
		v := w.vgwVPC(c.VpnGatewayId)
		if v == "" {
			continue
		}
		if p := store.PlaceTunnels(id, w.vpnEdges()); p[0] == edge || p[1] == edge {
			s.add(v)
		}
	}
}

// vpnHostsOf adds to s the edges holding tunnels into vpc.
func (w *world) vpnHostsOf(vpc string, s set) {
	for id, c := range w.vpn.vpns {
		if w.vgwVPC(c.VpnGatewayId) != vpc {
			continue
		}
		for _, e := range store.PlaceTunnels(id, w.vpnEdges()) {
			if e != "" {
				s.add(e)
			}
		}
	}
}

// hostRecord is h as hosts hold it. An edge's VPN function names, as its
// targets, the connections whose preferred up tunnel it holds: hosts
// send a connection's traffic there and accept it only from there. An
// edge holding none has no VPN function in its record.
func (w *world) hostRecord(h *pb.Host) *pb.HostRecord {
	rec := hostRecord(h)
	defer w.dxRecord(h, rec)
	i := slices.IndexFunc(h.Functions, func(f *pb.EdgeFunction) bool { return f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN })
	if i < 0 {
		return rec
	}
	var serving, standby []string
	for id := range w.vpn.vpns {
		if w.servingEdge(id) == h.Id {
			serving = append(serving, id)
		} else if slices.Contains(w.standbyEdges(id), h.Id) {
			standby = append(standby, id)
		}
	}
	slices.Sort(serving)
	slices.Sort(standby)
	fns := slices.Clone(h.Functions)
	if len(serving)+len(standby) == 0 {
		fns = slices.Delete(fns, i, i+1)
	} else {
		fns[i] = &pb.EdgeFunction{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN, Targets: serving, StandbyTargets: standby}
	}
	rec.Functions = fns
	return rec
}
