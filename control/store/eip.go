package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// pubIPKey maps an allocated public address to its allocation id: it keeps
// addresses unique and lets users name an Elastic IP by its address.
func (s *Store) pubIPKey(a string) string { return s.key("pubip", a) }

// AllocateAddress takes the lowest free address of the configured pools.
func (s *Store) AllocateAddress(ctx context.Context, name string) (*pb.ElasticIp, error) {
	if len(s.cfg.EIPPools) == 0 {
		return nil, model.Preconditionf("this server has no Elastic IP pool; start it with --eip-pool CIDR (e.g. 198.51.100.0/24)")
	}
	if name != "" {
		if err := model.ValidateName(model.KindEIP, name); err != nil {
			return nil, err
		}
	}
	var out *pb.ElasticIp
	err := retry(ctx, "allocate address", func() error {
		used, err := s.keysUnder(ctx, s.key("pubip")+"/")
		if err != nil {
			return err
		}
		ip, ok := freeAddress(s.cfg.EIPPools, used)
		if !ok {
			return model.Preconditionf("every address of the Elastic IP pools %v is allocated; release one or add a pool", s.cfg.EIPPools)
		}
		e := &pb.ElasticIp{AllocationId: model.NewID(model.KindEIP), Name: name, PublicIp: ip.String(), CreateTime: timestamppb.Now()}
		var t txn
		t.absent(s.pubIPKey(e.PublicIp))
		if name != "" {
			t.absent(s.nameKey(model.KindEIP, name))
			t.put(s.nameKey(model.KindEIP, name), e.AllocationId)
		}
		t.put(s.pubIPKey(e.PublicIp), e.AllocationId)
		t.putProto(s.resKey(model.KindEIP, e.AllocationId), e)
		ok, _, err = s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.nameFree(ctx, model.KindEIP, name); err != nil {
				return err
			}
			return errRetry // another allocation took the address
		}
		out = e
		return nil
	})
	return out, err
}

// freeAddress is the lowest address of pools not in used, skipping each
// pool's network and broadcast addresses where it has them.
func freeAddress(pools []netip.Prefix, used []string) (netip.Addr, bool) {
	taken := make(map[string]bool, len(used))
	for _, u := range used {
		taken[u] = true
	}
	for _, p := range pools {
		base := model.Addr4(p.Masked().Addr())
		first, last := model.AddrFrom4(base), model.AddrFrom4(base+model.SubnetSize(p)-1)
		if p.Bits() <= 30 {
			first, last = first.Next(), last.Prev()
		}
		for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
			if !taken[a.String()] {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// loadEIP resolves an allocation id, a name or a public address.
func (s *Store) loadEIP(ctx context.Context, ref string, e *pb.ElasticIp) (int64, error) {
	if a, err := netip.ParseAddr(ref); err == nil {
		r, err := s.c.Get(ctx, s.pubIPKey(a.String()))
		if err != nil {
			return 0, unavailable(err)
		}
		if len(r.Kvs) == 0 {
			return 0, model.NotFoundf("no Elastic IP %s is allocated", a)
		}
		ref = string(r.Kvs[0].Value)
	}
	return s.load(ctx, model.KindEIP, ref, e)
}

// GetAddress reads an Elastic IP by allocation id, name or address.
func (s *Store) GetAddress(ctx context.Context, ref string) (*pb.ElasticIp, error) {
	e := new(pb.ElasticIp)
	_, err := s.loadEIP(ctx, ref, e)
	return e, err
}

// ListAddresses lists every allocated Elastic IP.
func (s *Store) ListAddresses(ctx context.Context) ([]*pb.ElasticIp, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindEIP))+"/", func() *pb.ElasticIp { return new(pb.ElasticIp) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *pb.ElasticIp) int {
		return netip.MustParseAddr(a.PublicIp).Compare(netip.MustParseAddr(b.PublicIp))
	})
	return all, nil
}

// AssociateAddress associates an Elastic IP with a live instance's ENI. The
// instance record carries the address too, so that its mapping (and with
// it every edge's translation) changes in the same transaction.
func (s *Store) AssociateAddress(ctx context.Context, ref, instRef string) (*pb.ElasticIp, error) {
	var out *pb.ElasticIp
	err := retry(ctx, "associate address", func() error {
		e := new(pb.ElasticIp)
		erev, err := s.loadEIP(ctx, ref, e)
		if err != nil {
			return err
		}
		inst := new(pb.Instance)
		irev, err := s.load(ctx, model.KindInstance, instRef, inst)
		if err != nil {
			return err
		}
		switch {
		case inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED:
			return model.Preconditionf("instance %s is terminated", inst.Id)
		case e.InstanceId == inst.Id:
			return model.Preconditionf("Elastic IP %s is already associated with %s", e.PublicIp, inst.Id)
		case e.InstanceId != "":
			return model.Preconditionf("Elastic IP %s is associated with %s; disassociate it first (an Elastic IP has one ENI at a time)", e.PublicIp, e.InstanceId)
		case inst.PublicIp != "":
			return model.Preconditionf("instance %s already has Elastic IP %s; disassociate it first", inst.Id, inst.PublicIp)
		}
		e.InstanceId, e.EniId, e.PrivateIp, e.VpcId = inst.Id, inst.EniId, inst.PrivateIp, inst.VpcId
		inst.PublicIp = e.PublicIp
		var t txn
		t.unchanged(s.resKey(model.KindEIP, e.AllocationId), erev)
		t.unchanged(s.resKey(model.KindInstance, inst.Id), irev)
		t.putProto(s.resKey(model.KindEIP, e.AllocationId), e)
		t.putProto(s.resKey(model.KindInstance, inst.Id), inst)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

// DisassociateAddress takes an Elastic IP off its instance.
func (s *Store) DisassociateAddress(ctx context.Context, ref string) (*pb.ElasticIp, error) {
	var out *pb.ElasticIp
	err := retry(ctx, "disassociate address", func() error {
		e := new(pb.ElasticIp)
		erev, err := s.loadEIP(ctx, ref, e)
		if err != nil {
			return err
		}
		if e.InstanceId == "" {
			return model.Preconditionf("Elastic IP %s is not associated", e.PublicIp)
		}
		var t txn
		inst := new(pb.Instance)
		irev, found, err := s.getProto(ctx, s.resKey(model.KindInstance, e.InstanceId), inst)
		if err != nil {
			return err
		}
		if found && inst.PublicIp == e.PublicIp {
			inst.PublicIp = ""
			t.unchanged(s.resKey(model.KindInstance, inst.Id), irev)
			t.putProto(s.resKey(model.KindInstance, inst.Id), inst)
		}
		e.InstanceId, e.EniId, e.PrivateIp, e.VpcId = "", "", "", ""
		t.unchanged(s.resKey(model.KindEIP, e.AllocationId), erev)
		t.putProto(s.resKey(model.KindEIP, e.AllocationId), e)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

// ReleaseAddress returns a disassociated Elastic IP to the pool.
func (s *Store) ReleaseAddress(ctx context.Context, ref string) error {
	return retry(ctx, "release address", func() error {
		e := new(pb.ElasticIp)
		rev, err := s.loadEIP(ctx, ref, e)
		if err != nil {
			return err
		}
		if e.InstanceId != "" {
			return model.Preconditionf("Elastic IP %s is associated with %s; disassociate it first (openvpc eip disassociate %s)", e.PublicIp, e.InstanceId, e.PublicIp)
		}
		var t txn
		t.unchanged(s.resKey(model.KindEIP, e.AllocationId), rev)
		t.del(s.resKey(model.KindEIP, e.AllocationId))
		t.del(s.pubIPKey(e.PublicIp))
		if e.Name != "" {
			t.del(s.nameKey(model.KindEIP, e.Name))
		}
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		return nil
	})
}

// disassociateOnTerminate adds to t the writes that free inst's Elastic IP,
// as AWS does when an instance terminates: the address stays allocated.
func (s *Store) disassociateOnTerminate(ctx context.Context, inst *pb.Instance, t *txn) error {
	if inst.PublicIp == "" {
		return nil
	}
	e := new(pb.ElasticIp)
	rev, err := s.loadEIP(ctx, inst.PublicIp, e)
	inst.PublicIp = ""
	if errors.Is(err, model.ErrNotFound) || err == nil && e.InstanceId != inst.Id {
		return nil // released or moved meanwhile: nothing of ours to undo
	}
	if err != nil {
		return err
	}
	e.InstanceId, e.EniId, e.PrivateIp, e.VpcId = "", "", "", ""
	t.unchanged(s.resKey(model.KindEIP, e.AllocationId), rev)
	t.putProto(s.resKey(model.KindEIP, e.AllocationId), e)
	return nil
}

// EIPPools returns the configured Elastic IP pools.
func (s *Store) EIPPools() []netip.Prefix { return slices.Clone(s.cfg.EIPPools) }
