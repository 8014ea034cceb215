package mapping

import (
	"slices"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// dxState holds Direct Connect connections, VIFs and gateways: which edge
// holds which VIF, and which VPCs each VIF reaches (through its vgw or its
// Direct Connect gateway's vgws).
type dxState struct {
	cons map[string]*pb.DxConnection
	vifs map[string]*pb.DxVirtualInterface
	gws  map[string]*pb.DxGateway
}

func newDXState() dxState {
	return dxState{cons: map[string]*pb.DxConnection{}, vifs: map[string]*pb.DxVirtualInterface{}, gws: map[string]*pb.DxGateway{}}
}

// dxEdge is the edge holding VIF v's port ("" when unknown).
func (w *world) dxEdge(v *pb.DxVirtualInterface) string {
	if c := w.dx.cons[v.ConnectionId]; c != nil {
		return c.Edge
	}
	return ""
}

// dxVPCs are the VPCs VIF v reaches.
func (w *world) dxVPCs(v *pb.DxVirtualInterface) []string {
	vgws := []string{v.VpnGatewayId}
	if g := w.dx.gws[v.DxGatewayId]; v.DxGatewayId != "" {
		vgws = nil
		if g != nil {
			vgws = g.VpnGatewayIds
		}
	}
	var out []string
	for _, g := range vgws {
		if vpc := w.vgwVPC(g); vpc != "" && !slices.Contains(out, vpc) {
			out = append(out, vpc)
		}
	}
	return out
}

// dxTouch marks what a change to VIF v (before or after it) moves: its
// edge's scope and record, and the VPCs it reaches (their hosts' views of
// the edge).
func (w *world) dxTouch(v *pb.DxVirtualInterface, d *delta) {
	if v == nil {
		return
	}
	if e := w.dxEdge(v); e != "" {
		d.scopeDirty.add(e)
		// The edge's record (its VIFs as targets) concerns every host.
		d.hostsChanged.add(e)
		d.edges = d.edges.add(e)
	}
	for _, vpc := range w.dxVPCs(v) {
		d.facts.add(vpc)
	}
}

// dxAll touches every VIF (a connection, a gateway or a vgw changed).
func (w *world) dxAll(d *delta) {
	for _, v := range w.dx.vifs {
		w.dxTouch(v, d)
	}
}

func (w *world) applyDXConnection(r store.Record, d *delta) error {
	c, err := decode(r, new(pb.DxConnection))
	if err != nil {
		return err
	}
	w.dxAll(d)
	if r.Deleted {
		delete(w.dx.cons, r.ID)
	} else {
		w.dx.cons[r.ID] = c
	}
	w.dxAll(d)
	return nil
}

func (w *world) applyDXVIF(r store.Record, d *delta) error {
	v, err := decode(r, new(pb.DxVirtualInterface))
	if err != nil {
		return err
	}
	w.dxTouch(w.dx.vifs[r.ID], d)
	if r.Deleted {
		delete(w.dx.vifs, r.ID)
		return nil
	}
	w.dx.vifs[r.ID] = v
	w.dxTouch(v, d)
	return nil
}

func (w *world) applyDXGateway(r store.Record, d *delta) error {
	g, err := decode(r, new(pb.DxGateway))
	if err != nil {
		return err
	}
	w.dxAll(d)
	if r.Deleted {
		delete(w.dx.gws, r.ID)
	} else {
		w.dx.gws[r.ID] = g
	}
	w.dxAll(d)
	return nil
}

// dxScope adds to s the VPCs behind the VIFs on edge's connections.
func (w *world) dxScope(edge string, s set) {
	for _, v := range w.dx.vifs {
		if w.dxEdge(v) == edge {
			for _, vpc := range w.dxVPCs(v) {
				s.add(vpc)
			}
		}
	}
}

// dxHostsOf adds to s the edges holding VIFs into vpc.
func (w *world) dxHostsOf(vpc string, s set) {
	for _, v := range w.dx.vifs {
		if e := w.dxEdge(v); e != "" && slices.Contains(w.dxVPCs(v), vpc) {
			s.add(e)
		}
	}
}

// dxRecord gives an edge's Direct Connect function, in the record hosts
// hold, the VIFs on its connections as targets: hosts send a VIF's
// traffic to the edge with its port, and accept it only from there. An
// edge with no VIF has no Direct Connect function in its record.
func (w *world) dxRecord(h *pb.Host, rec *pb.HostRecord) {
	i := slices.IndexFunc(rec.Functions, func(f *pb.EdgeFunction) bool {
		return f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT
	})
	if i < 0 {
		return
	}
	var vifs []string
	for id, v := range w.dx.vifs {
		if w.dxEdge(v) == h.Id {
			vifs = append(vifs, id)
		}
	}
	slices.Sort(vifs)
	fns := slices.Clone(rec.Functions)
	if len(vifs) == 0 {
		fns = slices.Delete(fns, i, i+1)
	} else {
		fns[i] = &pb.EdgeFunction{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT, Targets: vifs}
	}
	rec.Functions = fns
}

// dxUsable says whether a propagating source that is a VIF carries
// traffic: only while the edge holding its port is healthy (a dead edge
// reports no session going down, so its VIFs' routes would stay).
// known is false for a source that is no VIF.
func (w *world) dxUsable(src string) (ok bool, why string, known bool) {
	v := w.dx.vifs[src]
	if v == nil {
		return false, "", false
	}
	e := w.dxEdge(v)
	if h := w.hosts[e]; h == nil || h.Unhealthy {
		return false, "the edge holding " + src + "'s port (" + e + ") is down", true
	}
	return true, "", true
}

// dxEdgeHealth re-ranks the routes of the VPCs behind edge's VIFs when
// its health changes.
func (w *world) dxEdgeHealth(edge string, d *delta) {
	for _, v := range w.dx.vifs {
		if w.dxEdge(v) == edge {
			w.dxTouch(v, d)
		}
	}
}
