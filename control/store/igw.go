package store

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// igwOfKey names the internet gateway attached to a VPC: at most one.
func (s *Store) igwOfKey(vpc string) string { return s.key("igwof", vpc) }

// CreateInternetGateway creates a detached internet gateway.
func (s *Store) CreateInternetGateway(ctx context.Context, name string) (*pb.InternetGateway, error) {
	if name != "" {
		if err := model.ValidateName(model.KindIGW, name); err != nil {
			return nil, err
		}
	}
	g := &pb.InternetGateway{Id: model.NewID(model.KindIGW), Name: name, CreateTime: timestamppb.Now()}
	var t txn
	if name != "" {
		t.absent(s.nameKey(model.KindIGW, name))
		t.put(s.nameKey(model.KindIGW, name), g.Id)
	}
	t.putProto(s.resKey(model.KindIGW, g.Id), g)
	ok, _, err := s.commit(ctx, &t)
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := s.nameFree(ctx, model.KindIGW, name); err != nil {
			return nil, err
		}
		return nil, model.Unavailablef("internet gateway %q: a concurrent change got in the way; try again", name)
	}
	return g, nil
}

// GetInternetGateway reads an internet gateway by name or id.
func (s *Store) GetInternetGateway(ctx context.Context, ref string) (*pb.InternetGateway, error) {
	g := new(pb.InternetGateway)
	_, err := s.load(ctx, model.KindIGW, ref, g)
	return g, err
}

// ListInternetGateways lists every internet gateway.
func (s *Store) ListInternetGateways(ctx context.Context) ([]*pb.InternetGateway, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindIGW))+"/", func() *pb.InternetGateway { return new(pb.InternetGateway) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *pb.InternetGateway) int { return strings.Compare(a.Id, b.Id) })
	return all, nil
}

// AttachInternetGateway attaches a detached gateway to a VPC that has none.
func (s *Store) AttachInternetGateway(ctx context.Context, ref, vpcRef string) (*pb.InternetGateway, error) {
	var out *pb.InternetGateway
	err := retry(ctx, "attach internet gateway", func() error {
		g := new(pb.InternetGateway)
		rev, err := s.load(ctx, model.KindIGW, ref, g)
		if err != nil {
			return err
		}
		vpc, err := s.GetVPC(ctx, vpcRef)
		if err != nil {
			return err
		}
		if g.VpcId != "" {
			return model.Preconditionf("internet gateway %s is already attached to %s; detach it first", g.Id, g.VpcId)
		}
		g.VpcId = vpc.Id
		var t txn
		t.unchanged(s.resKey(model.KindIGW, g.Id), rev)
		t.present(s.resKey(model.KindVPC, vpc.Id))
		t.absent(s.igwOfKey(vpc.Id))
		t.putProto(s.resKey(model.KindIGW, g.Id), g)
		t.put(s.igwOfKey(vpc.Id), g.Id)
		t.put(s.refKey(vpc.Id, g.Id), "")
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if r, err := s.c.Get(ctx, s.igwOfKey(vpc.Id)); err == nil && len(r.Kvs) > 0 {
				return model.Preconditionf("VPC %s already has internet gateway %s; a VPC has at most one", vpc.Id, r.Kvs[0].Value)
			}
			return errRetry
		}
		out = g
		return nil
	})
	return out, err
}

// DetachInternetGateway detaches a gateway from its VPC. Routes that target
// it stay, as blackholes, until removed (as in AWS).
func (s *Store) DetachInternetGateway(ctx context.Context, ref string) (*pb.InternetGateway, error) {
	var out *pb.InternetGateway
	err := retry(ctx, "detach internet gateway", func() error {
		g := new(pb.InternetGateway)
		rev, err := s.load(ctx, model.KindIGW, ref, g)
		if err != nil {
			return err
		}
		if g.VpcId == "" {
			return model.Preconditionf("internet gateway %s is not attached to a VPC", g.Id)
		}
		vpc := g.VpcId
		g.VpcId = ""
		var t txn
		t.unchanged(s.resKey(model.KindIGW, g.Id), rev)
		t.putProto(s.resKey(model.KindIGW, g.Id), g)
		t.del(s.igwOfKey(vpc))
		t.del(s.refKey(vpc, g.Id))
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = g
		return nil
	})
	return out, err
}

// DeleteInternetGateway deletes a detached gateway.
func (s *Store) DeleteInternetGateway(ctx context.Context, ref string) error {
	return retry(ctx, "delete internet gateway", func() error {
		g := new(pb.InternetGateway)
		rev, err := s.load(ctx, model.KindIGW, ref, g)
		if err != nil {
			return err
		}
		if g.VpcId != "" {
			return model.Preconditionf("internet gateway %s is attached to %s; detach it first (openvpc igw detach %s)", g.Id, g.VpcId, g.Id)
		}
		var t txn
		t.unchanged(s.resKey(model.KindIGW, g.Id), rev)
		t.del(s.resKey(model.KindIGW, g.Id))
		if g.Name != "" {
			t.del(s.nameKey(model.KindIGW, g.Name))
		}
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		return nil
	})
}
