package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Direct Connect keys: a port is held by one connection
// (dxport/<edge>/<port>), a VLAN by one VIF of its connection
// (dxvlan/<dxcon>/<vid>); a VIF's BGP status, which its edge reports
// often, lives apart from its configuration (dxstatus/<dxvif>) so the two
// never race.
func (s *Store) dxPortKey(edge, port string) string { return s.key("dxport", edge, port) }
func (s *Store) dxVLANKey(con string, vid uint32) string {
	return s.key("dxvlan", con, fmt.Sprintf("%04d", vid))
}
func (s *Store) dxStatusKey(vif string) string { return s.key("dxstatus", vif) }

// nameTxn adds the writes and checks of a resource's unique name.
func (s *Store) nameTxn(t *txn, k model.Kind, name, id string) {
	if name != "" {
		t.absent(s.nameKey(k, name))
		t.put(s.nameKey(k, name), id)
	}
}

// nameTaken turns a failed create into the error that says why.
func (s *Store) nameTaken(ctx context.Context, k model.Kind, name string) error {
	if name != "" {
		if err := s.nameFree(ctx, k, name); err != nil {
			return err
		}
	}
	return errRetry
}

// CreateDXConnection records a port on an edge as a Direct Connect
// connection.
func (s *Store) CreateDXConnection(ctx context.Context, name, edge, port string) (*pb.DxConnection, error) {
	h, err := s.GetHost(ctx, edge)
	if err != nil {
		return nil, model.NotFoundf("edge %q is not registered: start it (openvpc edge --id %s) before giving it a connection", edge, edge)
	}
	if h.Role != pb.HostRole_HOST_ROLE_EDGE {
		return nil, model.Preconditionf("%s is a host, not an edge: a Direct Connect port is on an edge", edge)
	}
	c := &pb.DxConnection{Id: model.NewID(model.KindDXConnection), Name: name, Edge: edge, Port: port, State: "available", CreateTime: timestamppb.Now()}
	var out *pb.DxConnection
	err = retry(ctx, "create connection", func() error {
		var t txn
		s.nameTxn(&t, model.KindDXConnection, name, c.Id)
		t.absent(s.dxPortKey(edge, port))
		t.put(s.dxPortKey(edge, port), c.Id)
		t.putProto(s.resKey(model.KindDXConnection, c.Id), c)
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if r, err := s.c.Get(ctx, s.dxPortKey(edge, port)); err == nil && len(r.Kvs) > 0 {
				return model.Existsf("port %s of edge %s is already connection %s", port, edge, r.Kvs[0].Value)
			}
			return s.nameTaken(ctx, model.KindDXConnection, name)
		}
		out = c
		return nil
	})
	return out, err
}

// GetDXConnection reads a connection by name or id, its state that of its
// edge: available while the edge is healthy, down otherwise.
func (s *Store) GetDXConnection(ctx context.Context, ref string) (*pb.DxConnection, error) {
	c := new(pb.DxConnection)
	if _, err := s.load(ctx, model.KindDXConnection, ref, c); err != nil {
		return nil, err
	}
	s.dxState(ctx, c)
	return c, nil
}

// ListDXConnections lists every connection.
func (s *Store) ListDXConnections(ctx context.Context) ([]*pb.DxConnection, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindDXConnection))+"/", func() *pb.DxConnection { return new(pb.DxConnection) })
	slices.SortFunc(all, func(a, b *pb.DxConnection) int { return strings.Compare(a.Id, b.Id) })
	for _, c := range all {
		s.dxState(ctx, c)
	}
	return all, err
}

func (s *Store) dxState(ctx context.Context, c *pb.DxConnection) {
	c.State = "available"
	if h, err := s.GetHost(ctx, c.Edge); err != nil || h.Unhealthy {
		c.State = "down"
	}
}

// DeleteDXConnection deletes a connection that has no virtual interfaces.
func (s *Store) DeleteDXConnection(ctx context.Context, ref string) error {
	return retry(ctx, "delete connection", func() error {
		c := new(pb.DxConnection)
		rev, err := s.load(ctx, model.KindDXConnection, ref, c)
		if err != nil {
			return err
		}
		if b, err := s.blockers(ctx, c.Id); err != nil || b != "" {
			if err != nil {
				return err
			}
			return model.Preconditionf("connection %s still has virtual interfaces %s; delete them first (openvpc dx vif delete …)", c.Id, b)
		}
		var t txn
		t.unchanged(s.resKey(model.KindDXConnection, c.Id), rev)
		t.emptyPrefix(s.refPrefix(c.Id))
		t.del(s.resKey(model.KindDXConnection, c.Id))
		t.del(s.dxPortKey(c.Edge, c.Port))
		if c.Name != "" {
			t.del(s.nameKey(model.KindDXConnection, c.Name))
		}
		return s.commitOrRetry(ctx, &t)
	})
}

// CreateDXVIF records a validated virtual interface (id, addresses and
// key already filled in): its VLAN must be free on its connection, and
// its Direct Connect gateway, if it names one, must exist.
func (s *Store) CreateDXVIF(ctx context.Context, v *pb.DxVirtualInterface) (*pb.DxVirtualInterface, error) {
	con, err := s.GetDXConnection(ctx, v.ConnectionId)
	if err != nil {
		return nil, err
	}
	v.ConnectionId = con.Id
	if v.DxGatewayId != "" {
		gw, err := s.GetDXGateway(ctx, v.DxGatewayId)
		if err != nil {
			return nil, err
		}
		v.DxGatewayId = gw.Id
		if v.AmazonAsn == 0 {
			v.AmazonAsn = gw.AmazonAsn
		}
	}
	if v.VpnGatewayId != "" {
		g, err := s.GetVpnGateway(ctx, v.VpnGatewayId)
		if err != nil {
			return nil, err
		}
		v.VpnGatewayId = g.Id
		if v.AmazonAsn == 0 {
			v.AmazonAsn = g.AmazonSideAsn
		}
	}
	if v.AmazonAsn == 0 {
		v.AmazonAsn = model.DefaultAmazonASN
	}
	if v.CustomerAsn == v.AmazonAsn {
		return nil, model.Invalidf("the customer ASN %d is the Amazon-side ASN too; eBGP needs two ASNs", v.CustomerAsn)
	}
	v.CreateTime = timestamppb.Now()
	var out *pb.DxVirtualInterface
	err = retry(ctx, "create virtual interface", func() error {
		var t txn
		s.nameTxn(&t, model.KindDirectConnect, v.Name, v.Id)
		t.present(s.resKey(model.KindDXConnection, con.Id))
		t.absent(s.dxVLANKey(con.Id, v.Vlan))
		t.put(s.dxVLANKey(con.Id, v.Vlan), v.Id)
		t.put(s.refKey(con.Id, v.Id), "")
		if v.VpnGatewayId != "" {
			t.present(s.resKey(model.KindVPNGateway, v.VpnGatewayId))
		}
		if v.DxGatewayId != "" {
			t.present(s.resKey(model.KindDXGateway, v.DxGatewayId))
			t.put(s.refKey(v.DxGatewayId, v.Id), "")
		}
		t.putProto(s.resKey(model.KindDirectConnect, v.Id), v)
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if r, err := s.c.Get(ctx, s.dxVLANKey(con.Id, v.Vlan)); err == nil && len(r.Kvs) > 0 {
				return model.Existsf("VLAN %d of connection %s is taken by %s; a VLAN carries one virtual interface", v.Vlan, con.Id, r.Kvs[0].Value)
			}
			return s.nameTaken(ctx, model.KindDirectConnect, v.Name)
		}
		out = v
		return nil
	})
	return out, err
}

// GetDXVIF reads a virtual interface with its last reported status.
func (s *Store) GetDXVIF(ctx context.Context, ref string) (*pb.DxVirtualInterface, error) {
	v := new(pb.DxVirtualInterface)
	if _, err := s.load(ctx, model.KindDirectConnect, ref, v); err != nil {
		return nil, err
	}
	st := new(pb.DxBgpStatus)
	if _, found, err := s.getProto(ctx, s.dxStatusKey(v.Id), st); err != nil {
		return nil, err
	} else if found {
		v.Status = st
	}
	return v, nil
}

// ListDXVIFs lists the virtual interfaces (of one connection, when con is
// set), with their status.
func (s *Store) ListDXVIFs(ctx context.Context, con string) ([]*pb.DxVirtualInterface, error) {
	if con != "" {
		c, err := s.GetDXConnection(ctx, con)
		if err != nil {
			return nil, err
		}
		con = c.Id
	}
	all, err := listProto(ctx, s, s.key(string(model.KindDirectConnect))+"/", func() *pb.DxVirtualInterface { return new(pb.DxVirtualInterface) })
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, v := range all {
		if con != "" && v.ConnectionId != con {
			continue
		}
		st := new(pb.DxBgpStatus)
		if _, found, err := s.getProto(ctx, s.dxStatusKey(v.Id), st); err == nil && found {
			v.Status = st
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *pb.DxVirtualInterface) int { return strings.Compare(a.Id, b.Id) })
	return out, nil
}

// DeleteDXVIF deletes a virtual interface; its edge takes the session down
// and its propagated routes go.
func (s *Store) DeleteDXVIF(ctx context.Context, ref string) error {
	return retry(ctx, "delete virtual interface", func() error {
		v := new(pb.DxVirtualInterface)
		rev, err := s.load(ctx, model.KindDirectConnect, ref, v)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindDirectConnect, v.Id), rev)
		t.del(s.resKey(model.KindDirectConnect, v.Id))
		t.del(s.dxVLANKey(v.ConnectionId, v.Vlan))
		t.del(s.refKey(v.ConnectionId, v.Id))
		t.del(s.dxStatusKey(v.Id))
		if err := s.dxPropagate(ctx, &t, v, nil); err != nil {
			return err
		}
		if v.DxGatewayId != "" {
			t.del(s.refKey(v.DxGatewayId, v.Id))
		}
		if v.Name != "" {
			t.del(s.nameKey(model.KindDirectConnect, v.Name))
		}
		return s.commitOrRetry(ctx, &t)
	})
}

// SetDXVIFStatus records what the edge holding a VIF's connection reports
// of its session; only that edge may report it.
func (s *Store) SetDXVIFStatus(ctx context.Context, vifRef, edge string, st *pb.DxBgpStatus) error {
	v := new(pb.DxVirtualInterface)
	if _, err := s.load(ctx, model.KindDirectConnect, vifRef, v); err != nil {
		return err
	}
	con, err := s.GetDXConnection(ctx, v.ConnectionId)
	if err != nil {
		return err
	}
	if edge != "" && con.Edge != edge {
		return model.Preconditionf("virtual interface %s is on connection %s of edge %s, not of %s", v.Id, con.Id, con.Edge, edge)
	}
	st.Edge, st.ReportTime = con.Edge, timestamppb.Now()
	old := new(pb.DxBgpStatus)
	if _, _, err := s.getProto(ctx, s.dxStatusKey(v.Id), old); err != nil {
		return err
	}
	var t txn
	t.present(s.resKey(model.KindDirectConnect, v.Id))
	t.putProto(s.dxStatusKey(v.Id), st)
	if err := s.dxPropagate(ctx, &t, v, st); err != nil {
		return err
	}
	ok, _, err := s.commit(ctx, &t)
	if err == nil && !ok {
		return model.NotFoundf("virtual interface %s was deleted", v.Id)
	}
	if err != nil {
		return err
	}
	down := old.BgpState == "established" && st.BgpState != "established"
	if down || (st.OverLimit && !old.OverLimit) {
		// A human should know: the site's routes left the route tables.
		ev := &pb.SecurityEvent{Time: st.ReportTime, HostId: con.Edge, Reason: ReasonDXSessionDown,
			Detail: fmt.Sprintf("the BGP session of %s (VLAN %d on %s) went %s: %s", v.Id, v.Vlan, con.Id, st.BgpState, st.Reason),
			Count:  1, Operational: true, FirstSeen: st.ReportTime, LastSeen: st.ReportTime, HostTime: st.Since}
		if _, err := s.PutEvent(ctx, ev, v.Id); err != nil {
			s.cfg.Logger.Warn("store: a Direct Connect session-down event was not recorded", "vif", v.Id, "err", err)
		}
	}
	return nil
}

// ReasonDXSessionDown is the operational event of a VIF's BGP session that
// was established going down (or going over its prefix limit).
const ReasonDXSessionDown = "dx-session-down"

// CreateDXGateway creates a Direct Connect gateway.
func (s *Store) CreateDXGateway(ctx context.Context, name string, asn uint32) (*pb.DxGateway, error) {
	g := &pb.DxGateway{Id: model.NewID(model.KindDXGateway), Name: name, AmazonAsn: asn, CreateTime: timestamppb.Now()}
	var t txn
	s.nameTxn(&t, model.KindDXGateway, name, g.Id)
	t.putProto(s.resKey(model.KindDXGateway, g.Id), g)
	ok, _, err := s.commit(ctx, &t)
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := s.nameFree(ctx, model.KindDXGateway, name); err != nil {
			return nil, err
		}
		return nil, model.Unavailablef("Direct Connect gateway %q: a concurrent change got in the way; try again", name)
	}
	return g, nil
}

// GetDXGateway reads a Direct Connect gateway by name or id.
func (s *Store) GetDXGateway(ctx context.Context, ref string) (*pb.DxGateway, error) {
	g := new(pb.DxGateway)
	_, err := s.load(ctx, model.KindDXGateway, ref, g)
	return g, err
}

// ListDXGateways lists every Direct Connect gateway.
func (s *Store) ListDXGateways(ctx context.Context) ([]*pb.DxGateway, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindDXGateway))+"/", func() *pb.DxGateway { return new(pb.DxGateway) })
	slices.SortFunc(all, func(a, b *pb.DxGateway) int { return strings.Compare(a.Id, b.Id) })
	return all, err
}

// DeleteDXGateway deletes a gateway with no VIFs and no associations.
func (s *Store) DeleteDXGateway(ctx context.Context, ref string) error {
	return retry(ctx, "delete Direct Connect gateway", func() error {
		g := new(pb.DxGateway)
		rev, err := s.load(ctx, model.KindDXGateway, ref, g)
		if err != nil {
			return err
		}
		if len(g.VpnGatewayIds) > 0 {
			return model.Preconditionf("Direct Connect gateway %s is associated with %s; disassociate first (openvpc dx gateway disassociate %s --vgw …)", g.Id, strings.Join(g.VpnGatewayIds, ", "), g.Id)
		}
		if b, err := s.blockers(ctx, g.Id); err != nil || b != "" {
			if err != nil {
				return err
			}
			return model.Preconditionf("Direct Connect gateway %s still has virtual interfaces %s; delete them first", g.Id, b)
		}
		var t txn
		t.unchanged(s.resKey(model.KindDXGateway, g.Id), rev)
		t.emptyPrefix(s.refPrefix(g.Id))
		t.del(s.resKey(model.KindDXGateway, g.Id))
		if g.Name != "" {
			t.del(s.nameKey(model.KindDXGateway, g.Name))
		}
		return s.commitOrRetry(ctx, &t)
	})
}

// AssociateDXGateway associates (or, associate false, disassociates) a
// Direct Connect gateway with a virtual private gateway.
func (s *Store) AssociateDXGateway(ctx context.Context, ref, vgwRef string, associate bool) (*pb.DxGateway, error) {
	vg, err := s.GetVpnGateway(ctx, vgwRef)
	if err != nil {
		return nil, err
	}
	vgw := vg.Id
	var out *pb.DxGateway
	err = retry(ctx, "associate Direct Connect gateway", func() error {
		g := new(pb.DxGateway)
		rev, err := s.load(ctx, model.KindDXGateway, ref, g)
		if err != nil {
			return err
		}
		has := slices.Contains(g.VpnGatewayIds, vgw)
		switch {
		case associate && has:
			return model.Existsf("Direct Connect gateway %s is already associated with %s", g.Id, vgw)
		case !associate && !has:
			return model.NotFoundf("Direct Connect gateway %s is not associated with %s", g.Id, vgw)
		case associate:
			g.VpnGatewayIds = append(g.VpnGatewayIds, vgw)
			slices.Sort(g.VpnGatewayIds)
		default:
			g.VpnGatewayIds = slices.DeleteFunc(g.VpnGatewayIds, func(x string) bool { return x == vgw })
		}
		var t txn
		if !associate {
			// The gateway's VIFs stop propagating into vgw at once; on
			// associate, their next status report propagates.
			vifs, err := s.ListDXVIFs(ctx, "")
			if err != nil {
				return err
			}
			for _, v := range vifs {
				if v.DxGatewayId == g.Id {
					s.putPropagated(&t, vgw, v.Id, pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT, nil)
				}
			}
		}
		t.unchanged(s.resKey(model.KindDXGateway, g.Id), rev)
		t.putProto(s.resKey(model.KindDXGateway, g.Id), g)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = g
		return nil
	})
	return out, err
}

// EdgeDXVIF is one VIF as the edge holding its connection serves it.
type EdgeDXVIF struct {
	VIF  *pb.DxVirtualInterface
	Port string
	// Announce are the CIDRs of the VPCs behind the VIF's gateway.
	Announce []string
}

// ListEdgeDXVIFs lists the VIFs on the connections of edge, with what each
// announces.
func (s *Store) ListEdgeDXVIFs(ctx context.Context, edge string) ([]EdgeDXVIF, error) {
	cons, err := s.ListDXConnections(ctx)
	if err != nil {
		return nil, err
	}
	ports := map[string]string{}
	for _, c := range cons {
		if c.Edge == edge {
			ports[c.Id] = c.Port
		}
	}
	if len(ports) == 0 {
		return nil, nil
	}
	vifs, err := s.ListDXVIFs(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []EdgeDXVIF
	for _, v := range vifs {
		port, ok := ports[v.ConnectionId]
		if !ok {
			continue
		}
		ann, err := s.dxAnnounce(ctx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, EdgeDXVIF{VIF: v, Port: port, Announce: ann})
	}
	return out, nil
}

// dxAnnounce is what VIF v announces: the CIDR of the VPC its vgw is
// attached to, or of each VPC whose vgw its Direct Connect gateway is
// associated with.
func (s *Store) dxAnnounce(ctx context.Context, v *pb.DxVirtualInterface) ([]string, error) {
	vgws := []string{v.VpnGatewayId}
	if v.DxGatewayId != "" {
		g, err := s.GetDXGateway(ctx, v.DxGatewayId)
		if err != nil {
			return nil, err
		}
		vgws = g.VpnGatewayIds
	}
	var out []string
	for _, id := range vgws {
		if id == "" {
			continue
		}
		cidr, err := s.vgwCIDR(ctx, id)
		if err != nil {
			return nil, err
		}
		if cidr != "" && !slices.Contains(out, cidr) {
			out = append(out, cidr)
		}
	}
	slices.Sort(out)
	return out, nil
}
