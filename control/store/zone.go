package store

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Private hosted zones are kept whole at zone/<id>, records included, with
// the name index name/zone/<name>: every mutation (records, associations)
// rewrites the one record in one transaction guarded by its revision, so
// the Mapping Service sees a zone change as one change of the facts of
// every VPC associated before or after it.

// CreateZone creates a zone named name associated with vpcs (names or ids,
// at least one), in one transaction guarded by the VPCs' existence. It
// returns the zone and the store revision that wrote it.
func (s *Store) CreateZone(ctx context.Context, name string, vpcs []string) (*pb.Zone, int64, error) {
	name, err := model.CheckZoneName(name)
	if err != nil {
		return nil, 0, err
	}
	if len(vpcs) == 0 {
		return nil, 0, model.Invalidf("a private hosted zone is associated with at least one VPC: give --vpc")
	}
	var out *pb.Zone
	var rev int64
	err = retry(ctx, "create zone", func() error {
		z := &pb.Zone{Id: model.NewID(model.KindZone), Name: name, CreateTime: timestamppb.Now()}
		var t txn
		for _, ref := range vpcs {
			vpc, err := s.GetVPC(ctx, ref)
			if err != nil {
				return err
			}
			t.present(s.resKey(model.KindVPC, vpc.Id))
			if !slices.Contains(z.VpcIds, vpc.Id) {
				z.VpcIds = append(z.VpcIds, vpc.Id)
			}
		}
		slices.Sort(z.VpcIds)
		t.absent(s.nameKey(model.KindZone, name))
		t.put(s.nameKey(model.KindZone, name), z.Id)
		t.putProto(s.resKey(model.KindZone, z.Id), z)
		ok, r, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.nameFree(ctx, model.KindZone, name); err != nil {
				return err
			}
			return errRetry
		}
		out, rev = z, r
		return nil
	})
	return out, rev, err
}

// GetZone reads a zone by name (corp.example, with or without the final
// dot) or id.
func (s *Store) GetZone(ctx context.Context, ref string) (*pb.Zone, error) {
	z := new(pb.Zone)
	_, err := s.load(ctx, model.KindZone, zoneRef(ref), z)
	return z, err
}

func zoneRef(ref string) string {
	if model.IsID(model.KindZone, ref) {
		return ref
	}
	return model.CanonicalDomain(ref)
}

// ListZones lists zones by name, those associated with vpcID when set.
func (s *Store) ListZones(ctx context.Context, vpcID string) ([]*pb.Zone, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindZone))+"/", func() *pb.Zone { return new(pb.Zone) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(z *pb.Zone) bool { return !slices.Contains(z.VpcIds, vpcID) })
	}
	slices.SortFunc(all, func(a, b *pb.Zone) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

// DeleteZone deletes a zone, records and associations with it. It returns
// the zone as it was and the revision of the deletion.
func (s *Store) DeleteZone(ctx context.Context, ref string) (*pb.Zone, int64, error) {
	var out *pb.Zone
	var rev int64
	err := retry(ctx, "delete zone", func() error {
		z := new(pb.Zone)
		mod, err := s.load(ctx, model.KindZone, zoneRef(ref), z)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindZone, z.Id), mod)
		t.del(s.resKey(model.KindZone, z.Id))
		t.del(s.nameKey(model.KindZone, z.Name))
		ok, r, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			return errRetry
		}
		out, rev = z, r
		return nil
	})
	return out, rev, err
}

// modifyZone reads the zone, lets fn change it (adding conditions to t),
// and writes it back in one transaction guarded by its revision.
func (s *Store) modifyZone(ctx context.Context, what, ref string, fn func(z *pb.Zone, t *txn) error) (*pb.Zone, int64, error) {
	var out *pb.Zone
	var rev int64
	err := retry(ctx, what, func() error {
		z := new(pb.Zone)
		mod, err := s.load(ctx, model.KindZone, zoneRef(ref), z)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindZone, z.Id), mod)
		if err := fn(z, &t); err != nil {
			return err
		}
		t.putProto(s.resKey(model.KindZone, z.Id), z)
		ok, r, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			return errRetry
		}
		out, rev = z, r
		return nil
	})
	return out, rev, err
}

// AssociateZone associates a zone with one more VPC.
func (s *Store) AssociateZone(ctx context.Context, ref, vpcRef string) (*pb.Zone, int64, error) {
	return s.modifyZone(ctx, "associate zone", ref, func(z *pb.Zone, t *txn) error {
		vpc, err := s.GetVPC(ctx, vpcRef)
		if err != nil {
			return err
		}
		if slices.Contains(z.VpcIds, vpc.Id) {
			return model.Existsf("zone %s is already associated with VPC %s", z.Name, vpc.Id)
		}
		t.present(s.resKey(model.KindVPC, vpc.Id))
		z.VpcIds = append(z.VpcIds, vpc.Id)
		slices.Sort(z.VpcIds)
		return nil
	})
}

// DisassociateZone ends a zone's association with a VPC. As on AWS, the
// last association cannot be removed: delete the zone instead.
func (s *Store) DisassociateZone(ctx context.Context, ref, vpcRef string) (*pb.Zone, int64, error) {
	return s.modifyZone(ctx, "disassociate zone", ref, func(z *pb.Zone, t *txn) error {
		id := vpcRef
		if !model.IsID(model.KindVPC, vpcRef) {
			vpc, err := s.GetVPC(ctx, vpcRef)
			if err != nil {
				return err
			}
			id = vpc.Id
		}
		i := slices.Index(z.VpcIds, id)
		if i < 0 {
			return model.NotFoundf("zone %s is not associated with VPC %s", z.Name, vpcRef)
		}
		if len(z.VpcIds) == 1 {
			return model.Preconditionf("VPC %s is zone %s's last association: a private hosted zone keeps at least one; delete the zone instead", id, z.Name)
		}
		z.VpcIds = slices.Delete(z.VpcIds, i, i+1)
		return nil
	})
}

// ZoneRecordSpec is a record to add: name relative to the zone (www), "@"
// for the apex, or fully qualified with a final dot.
type ZoneRecordSpec struct {
	Name, Type, Value string
	TTL               uint32
}

// AddZoneRecord adds a record to a zone. Several values of one name and
// type make a record set (two A records answer both); a CNAME stands
// alone at its name, as DNS requires.
func (s *Store) AddZoneRecord(ctx context.Context, ref string, spec ZoneRecordSpec) (*pb.Zone, int64, error) {
	typ, err := model.ZoneRecordType(spec.Type)
	if err != nil {
		return nil, 0, err
	}
	value, err := model.CheckZoneRecordValue(typ, spec.Value)
	if err != nil {
		return nil, 0, err
	}
	ttl := spec.TTL
	if ttl == 0 {
		ttl = model.DefaultZoneTTL
	}
	if ttl > 604800 {
		return nil, 0, model.Invalidf("TTL %d s is more than a week: use 1–604800", ttl)
	}
	return s.modifyZone(ctx, "add zone record", ref, func(z *pb.Zone, t *txn) error {
		name, err := model.ZoneRecordName(z.Name, spec.Name)
		if err != nil {
			return err
		}
		for _, r := range z.Records {
			if r.Name != name {
				continue
			}
			switch {
			case r.Type == typ && r.Value == value:
				return model.Existsf("zone %s already has %s %s %s", z.Name, name, typ, value)
			case typ == "CNAME" && r.Type != "CNAME", typ != "CNAME" && r.Type == "CNAME":
				return model.Preconditionf("%s already has a %s record: a CNAME cannot share its name with other records; delete it first", name, r.Type)
			case typ == "CNAME":
				return model.Preconditionf("%s already has a CNAME (%s): a name has one CNAME; delete it first", name, r.Value)
			}
		}
		z.Records = append(z.Records, &pb.ZoneRecord{Name: name, Type: typ, Ttl: ttl, Value: value})
		slices.SortStableFunc(z.Records, func(a, b *pb.ZoneRecord) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return strings.Compare(a.Type, b.Type)
		})
		return nil
	})
}

// DeleteZoneRecord deletes the records of one name and type from a zone.
func (s *Store) DeleteZoneRecord(ctx context.Context, ref, name, typ string) (*pb.Zone, int64, error) {
	typ, err := model.ZoneRecordType(typ)
	if err != nil {
		return nil, 0, err
	}
	return s.modifyZone(ctx, "delete zone record", ref, func(z *pb.Zone, t *txn) error {
		full, err := model.ZoneRecordName(z.Name, name)
		if err != nil {
			return err
		}
		n := len(z.Records)
		z.Records = slices.DeleteFunc(z.Records, func(r *pb.ZoneRecord) bool { return r.Name == full && r.Type == typ })
		if len(z.Records) == n {
			return model.NotFoundf("zone %s has no %s record named %s", z.Name, typ, full)
		}
		return nil
	})
}
