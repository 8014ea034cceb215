package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Prefix lists: VpcService's named sets of CIDRs for security group rules.

func entries(es []*pb.PrefixListEntry) []model.PrefixListEntry {
	out := make([]model.PrefixListEntry, len(es))
	for i, e := range es {
		out[i] = model.PrefixListEntry{CIDR: e.Cidr, Description: e.Description}
	}
	return out
}

func (h *VPCs) CreatePrefixList(ctx context.Context, req *connect.Request[pb.CreatePrefixListRequest]) (*connect.Response[pb.CreatePrefixListResponse], error) {
	m := req.Msg
	if m.Name == "" {
		return nil, model.Invalidf("a prefix list needs a name (--name)")
	}
	if err := model.ValidateName(model.KindPrefixList, m.Name); err != nil {
		return nil, err
	}
	if err := count("entries", int64(len(m.Entries)), model.MaxPrefixListEntries); err != nil {
		return nil, err
	}
	pl, err := h.Store.CreatePrefixList(ctx, m.Name, m.MaxEntries, entries(m.Entries))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreatePrefixListResponse{PrefixList: pl}), nil
}

func (h *VPCs) GetPrefixList(ctx context.Context, req *connect.Request[pb.GetPrefixListRequest]) (*connect.Response[pb.GetPrefixListResponse], error) {
	return byRef(ctx, model.KindPrefixList, req.Msg.Ref, h.Store.GetPrefixList, func(m *pb.PrefixList) *pb.GetPrefixListResponse {
		return &pb.GetPrefixListResponse{PrefixList: m}
	})
}

func (h *VPCs) ListPrefixLists(ctx context.Context, _ *connect.Request[pb.ListPrefixListsRequest]) (*connect.Response[pb.ListPrefixListsResponse], error) {
	pls, err := h.Store.ListPrefixLists(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListPrefixListsResponse{PrefixLists: pls}), nil
}

func (h *VPCs) ModifyPrefixList(ctx context.Context, req *connect.Request[pb.ModifyPrefixListRequest]) (*connect.Response[pb.ModifyPrefixListResponse], error) {
	m := req.Msg
	if err := ref(model.KindPrefixList, "prefix list", m.Ref); err != nil {
		return nil, err
	}
	if err := count("entries", int64(len(m.AddEntries)+len(m.RemoveCidrs)), 2*model.MaxPrefixListEntries); err != nil {
		return nil, err
	}
	pl, err := h.Store.ModifyPrefixList(ctx, m.Ref, entries(m.AddEntries), m.RemoveCidrs)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ModifyPrefixListResponse{PrefixList: pl}), nil
}

func (h *VPCs) DeletePrefixList(ctx context.Context, req *connect.Request[pb.DeletePrefixListRequest]) (*connect.Response[pb.DeletePrefixListResponse], error) {
	return remove[pb.DeletePrefixListResponse](ctx, model.KindPrefixList, req.Msg.Ref, h.Store.DeletePrefixList)
}
