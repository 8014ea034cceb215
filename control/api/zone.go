package api

import (
	"context"
	"slices"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// RevisionWaiter waits until every host in scope of some VPCs has
// acknowledged a store revision (the Mapping Service).
type RevisionWaiter interface {
	WaitRevision(ctx context.Context, vpcs []string, rev int64) error
}

// Zones implements ZoneService: private hosted zones. Mutations with wait
// return once every host in scope of the zone's VPCs (before and after
// the change) has acknowledged it.
type Zones struct {
	Store   *store.Store
	Mapping RevisionWaiter
}

func (h *Zones) wait(ctx context.Context, wait bool, timeoutMs uint32, rev int64, vpcs ...[]string) error {
	if !wait {
		return nil
	}
	timeout, err := millis("wait timeout", int64(timeoutMs), defaultWait, maxWait)
	if err != nil {
		return err
	}
	var all []string
	for _, v := range vpcs {
		all = append(all, v...)
	}
	slices.Sort(all)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return h.Mapping.WaitRevision(ctx, slices.Compact(all), rev)
}

func zoneRefCheck(ref string) error {
	if ref == "" {
		return model.Invalidf("give a zone: its id (zone-…) or its name (corp.example)")
	}
	return nil
}

func (h *Zones) CreateZone(ctx context.Context, req *connect.Request[pb.CreateZoneRequest]) (*connect.Response[pb.CreateZoneResponse], error) {
	m := req.Msg
	for _, v := range m.Vpcs {
		if err := ref(model.KindVPC, "VPC", v); err != nil {
			return nil, err
		}
	}
	if _, err := millis("wait timeout", int64(m.TimeoutMs), defaultWait, maxWait); err != nil {
		return nil, err
	}
	z, rev, err := h.Store.CreateZone(ctx, m.Name, m.Vpcs)
	if err != nil {
		return nil, err
	}
	if err := h.wait(ctx, m.Wait, m.TimeoutMs, rev, z.VpcIds); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateZoneResponse{Zone: z, Revision: rev}), nil
}

func (h *Zones) GetZone(ctx context.Context, req *connect.Request[pb.GetZoneRequest]) (*connect.Response[pb.GetZoneResponse], error) {
	if err := zoneRefCheck(req.Msg.Ref); err != nil {
		return nil, err
	}
	z, err := h.Store.GetZone(ctx, req.Msg.Ref)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetZoneResponse{Zone: z}), nil
}

func (h *Zones) ListZones(ctx context.Context, req *connect.Request[pb.ListZonesRequest]) (*connect.Response[pb.ListZonesResponse], error) {
	vpcID, err := (&VPCs{Store: h.Store}).vpcFilter(ctx, req.Msg.Vpc)
	if err != nil {
		return nil, err
	}
	zs, err := h.Store.ListZones(ctx, vpcID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListZonesResponse{Zones: zs}), nil
}

func (h *Zones) DeleteZone(ctx context.Context, req *connect.Request[pb.DeleteZoneRequest]) (*connect.Response[pb.DeleteZoneResponse], error) {
	m := req.Msg
	if err := zoneRefCheck(m.Ref); err != nil {
		return nil, err
	}
	z, rev, err := h.Store.DeleteZone(ctx, m.Ref)
	if err != nil {
		return nil, err
	}
	if err := h.wait(ctx, m.Wait, m.TimeoutMs, rev, z.VpcIds); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeleteZoneResponse{Revision: rev}), nil
}

func (h *Zones) AssociateZone(ctx context.Context, req *connect.Request[pb.AssociateZoneRequest]) (*connect.Response[pb.AssociateZoneResponse], error) {
	m := req.Msg
	if err := zoneRefCheck(m.Ref); err != nil {
		return nil, err
	}
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	z, rev, err := h.Store.AssociateZone(ctx, m.Ref, m.Vpc)
	if err != nil {
		return nil, err
	}
	if err := h.wait(ctx, m.Wait, m.TimeoutMs, rev, z.VpcIds); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AssociateZoneResponse{Zone: z, Revision: rev}), nil
}

func (h *Zones) DisassociateZone(ctx context.Context, req *connect.Request[pb.DisassociateZoneRequest]) (*connect.Response[pb.DisassociateZoneResponse], error) {
	m := req.Msg
	if err := zoneRefCheck(m.Ref); err != nil {
		return nil, err
	}
	if err := ref(model.KindVPC, "VPC", m.Vpc); err != nil {
		return nil, err
	}
	before, err := h.Store.GetZone(ctx, m.Ref)
	if err != nil {
		return nil, err
	}
	z, rev, err := h.Store.DisassociateZone(ctx, m.Ref, m.Vpc)
	if err != nil {
		return nil, err
	}
	if err := h.wait(ctx, m.Wait, m.TimeoutMs, rev, before.VpcIds, z.VpcIds); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DisassociateZoneResponse{Zone: z, Revision: rev}), nil
}

func (h *Zones) AddZoneRecord(ctx context.Context, req *connect.Request[pb.AddZoneRecordRequest]) (*connect.Response[pb.AddZoneRecordResponse], error) {
	m := req.Msg
	if err := zoneRefCheck(m.Ref); err != nil {
		return nil, err
	}
	z, rev, err := h.Store.AddZoneRecord(ctx, m.Ref, store.ZoneRecordSpec{Name: m.Name, Type: m.Type, Value: m.Value, TTL: m.Ttl})
	if err != nil {
		return nil, err
	}
	if err := h.wait(ctx, m.Wait, m.TimeoutMs, rev, z.VpcIds); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AddZoneRecordResponse{Zone: z, Revision: rev}), nil
}

func (h *Zones) DeleteZoneRecord(ctx context.Context, req *connect.Request[pb.DeleteZoneRecordRequest]) (*connect.Response[pb.DeleteZoneRecordResponse], error) {
	m := req.Msg
	if err := zoneRefCheck(m.Ref); err != nil {
		return nil, err
	}
	z, rev, err := h.Store.DeleteZoneRecord(ctx, m.Ref, m.Name, m.Type)
	if err != nil {
		return nil, err
	}
	if err := h.wait(ctx, m.Wait, m.TimeoutMs, rev, z.VpcIds); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DeleteZoneRecordResponse{Zone: z, Revision: rev}), nil
}
