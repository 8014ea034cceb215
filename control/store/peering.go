package store

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// CreatePeering requests a peering between two VPCs; it stays
// pending-acceptance until accepted. Refused when the CIDRs overlap, a VPC
// is missing, or the pair is already peered.
func (s *Store) CreatePeering(ctx context.Context, vpcRef, peerRef, name string) (*pb.Peering, error) {
	var out *pb.Peering
	err := retry(ctx, "create peering", func() error {
		p, err := s.createPeeringOnce(ctx, vpcRef, peerRef, name)
		out = p
		return err
	})
	return out, err
}

func (s *Store) createPeeringOnce(ctx context.Context, vpcRef, peerRef, name string) (*pb.Peering, error) {
	a, err := s.GetVPC(ctx, vpcRef)
	if err != nil {
		return nil, err
	}
	b, err := s.GetVPC(ctx, peerRef)
	if err != nil {
		return nil, err
	}
	if a.Id == b.Id {
		return nil, model.Invalidf("a VPC cannot peer with itself (%s)", a.Id)
	}
	if netip.MustParsePrefix(a.Cidr).Overlaps(netip.MustParsePrefix(b.Cidr)) {
		return nil, model.Invalidf("VPC %s (%s) and VPC %s (%s) have overlapping CIDRs; peered VPCs must not overlap", a.Id, a.Cidr, b.Id, b.Cidr)
	}
	p := &pb.Peering{
		Id: model.NewID(model.KindPeering), Name: name, RequesterVpcId: a.Id, AccepterVpcId: b.Id,
		State: pb.PeeringState_PEERING_STATE_PENDING_ACCEPTANCE, CreateTime: timestamppb.Now(),
	}
	var t txn
	t.present(s.resKey(model.KindVPC, a.Id))
	t.present(s.resKey(model.KindVPC, b.Id))
	t.absent(s.pairKey(a.Id, b.Id))
	if name != "" {
		t.absent(s.nameKey(model.KindPeering, name))
		t.put(s.nameKey(model.KindPeering, name), p.Id)
	}
	t.putProto(s.resKey(model.KindPeering, p.Id), p)
	t.put(s.pairKey(a.Id, b.Id), p.Id)
	t.put(s.refKey(a.Id, p.Id), "")
	t.put(s.refKey(b.Id, p.Id), "")
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return p, err
	}
	if r, err := s.c.Get(ctx, s.pairKey(a.Id, b.Id)); err == nil && len(r.Kvs) > 0 {
		return nil, model.Existsf("VPCs %s and %s are already peered by %s", a.Id, b.Id, r.Kvs[0].Value)
	}
	if err := s.nameFree(ctx, model.KindPeering, name); err != nil {
		return nil, err
	}
	return nil, errRetry // a VPC or the pair changed meanwhile: look again
}

// AcceptPeering activates a pending peering.
func (s *Store) AcceptPeering(ctx context.Context, ref string) (*pb.Peering, error) {
	var out *pb.Peering
	err := retry(ctx, "accept peering", func() error {
		p, err := s.acceptOnce(ctx, ref)
		out = p
		return err
	})
	return out, err
}

func (s *Store) acceptOnce(ctx context.Context, ref string) (*pb.Peering, error) {
	p := new(pb.Peering)
	rev, err := s.load(ctx, model.KindPeering, ref, p)
	if err != nil {
		return nil, err
	}
	if p.State == pb.PeeringState_PEERING_STATE_ACTIVE {
		return nil, model.Preconditionf("peering %s is already active", p.Id)
	}
	p.State = pb.PeeringState_PEERING_STATE_ACTIVE
	var t txn
	t.unchanged(s.resKey(model.KindPeering, p.Id), rev)
	t.putProto(s.resKey(model.KindPeering, p.Id), p)
	ok, _, err := s.commit(ctx, &t)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errRetry
	}
	return p, nil
}

// ModifyPeering changes a peering's options: allowRemoteDNS, when set,
// whether each VPC's resolver answers the other's instance names. The
// record changes, so both VPCs' facts reach every host in scope again.
func (s *Store) ModifyPeering(ctx context.Context, ref string, allowRemoteDNS *bool) (*pb.Peering, error) {
	if allowRemoteDNS == nil {
		return nil, model.Invalidf("nothing to change: give --allow-remote-dns (true or false)")
	}
	var out *pb.Peering
	err := retry(ctx, "modify peering", func() error {
		p := new(pb.Peering)
		rev, err := s.load(ctx, model.KindPeering, ref, p)
		if err != nil {
			return err
		}
		out = p
		if p.AllowRemoteDns == *allowRemoteDNS {
			return nil // nothing changes: no write, no push
		}
		p.AllowRemoteDns = *allowRemoteDNS
		var t txn
		t.unchanged(s.resKey(model.KindPeering, p.Id), rev)
		t.putProto(s.resKey(model.KindPeering, p.Id), p)
		return s.commitOrRetry(ctx, &t)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetPeering reads a peering by name or id.
func (s *Store) GetPeering(ctx context.Context, ref string) (*pb.Peering, error) {
	p := new(pb.Peering)
	_, err := s.load(ctx, model.KindPeering, ref, p)
	return p, err
}

// ListPeerings lists peerings, of one VPC (either side) when vpcID is set.
func (s *Store) ListPeerings(ctx context.Context, vpcID string) ([]*pb.Peering, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindPeering))+"/", func() *pb.Peering { return new(pb.Peering) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(p *pb.Peering) bool { return p.RequesterVpcId != vpcID && p.AccepterVpcId != vpcID })
	}
	slices.SortFunc(all, func(a, b *pb.Peering) int { return strings.Compare(a.Id, b.Id) })
	return all, nil
}

// DeletePeering deletes a peering in any state. Routes that targeted it
// stay, as blackholes, until removed (as in AWS).
func (s *Store) DeletePeering(ctx context.Context, ref string) error {
	return retry(ctx, "delete peering", func() error { return s.deletePeeringOnce(ctx, ref) })
}

func (s *Store) deletePeeringOnce(ctx context.Context, ref string) error {
	p := new(pb.Peering)
	rev, err := s.load(ctx, model.KindPeering, ref, p)
	if err != nil {
		return err
	}
	var t txn
	t.unchanged(s.resKey(model.KindPeering, p.Id), rev)
	t.del(s.resKey(model.KindPeering, p.Id))
	t.del(s.pairKey(p.RequesterVpcId, p.AccepterVpcId))
	t.del(s.refKey(p.RequesterVpcId, p.Id))
	t.del(s.refKey(p.AccepterVpcId, p.Id))
	if p.Name != "" {
		t.del(s.nameKey(model.KindPeering, p.Name))
	}
	ok, _, err := s.commit(ctx, &t)
	if err != nil {
		return err
	}
	if !ok {
		return errRetry
	}
	return nil
}
