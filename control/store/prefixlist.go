package store

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Prefix lists are kept at pl/<id>, regional (of no VPC). A security
// group whose rule names one keeps ref/<pl-id>/<sg-id>, so the list cannot
// be deleted while a rule names it.

// prefixListEntries converts a list's entries for model.EditPrefixList.
func prefixListEntries(es []*pb.PrefixListEntry) []model.PrefixListEntry {
	out := make([]model.PrefixListEntry, len(es))
	for i, e := range es {
		out[i] = model.PrefixListEntry{CIDR: e.Cidr, Description: e.Description}
	}
	return out
}

func pbEntries(es []model.PrefixListEntry) []*pb.PrefixListEntry {
	out := make([]*pb.PrefixListEntry, len(es))
	for i, e := range es {
		out[i] = &pb.PrefixListEntry{Cidr: e.CIDR, Description: e.Description}
	}
	return out
}

// CreatePrefixList creates a list of at most maxEntries CIDRs, with
// entries to begin with.
func (s *Store) CreatePrefixList(ctx context.Context, name string, maxEntries uint32, entries []model.PrefixListEntry) (*pb.PrefixList, error) {
	if name == "" {
		return nil, model.Invalidf("a prefix list needs a name")
	}
	if err := model.CheckMaxEntries(maxEntries); err != nil {
		return nil, err
	}
	es, err := model.EditPrefixList("prefix list "+name, maxEntries, nil, entries, nil)
	if err != nil {
		return nil, err
	}
	pl := &pb.PrefixList{Id: model.NewID(model.KindPrefixList), Name: name, MaxEntries: maxEntries,
		Entries: pbEntries(es), Version: 1, CreateTime: timestamppb.Now()}
	var t txn
	t.absent(s.nameKey(model.KindPrefixList, name))
	t.put(s.nameKey(model.KindPrefixList, name), pl.Id)
	t.putProto(s.resKey(model.KindPrefixList, pl.Id), pl)
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return pl, err
	}
	return nil, model.Existsf("prefix list %q already exists", name)
}

// GetPrefixList reads a prefix list by name or id.
func (s *Store) GetPrefixList(ctx context.Context, ref string) (*pb.PrefixList, error) {
	pl := new(pb.PrefixList)
	_, err := s.load(ctx, model.KindPrefixList, ref, pl)
	return pl, err
}

// ListPrefixLists lists every prefix list, by name.
func (s *Store) ListPrefixLists(ctx context.Context) ([]*pb.PrefixList, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindPrefixList))+"/", func() *pb.PrefixList { return new(pb.PrefixList) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b *pb.PrefixList) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

// ModifyPrefixList removes the entries of remove and adds add, in one
// transaction; the version goes up by one. Every group's rule naming the
// list allows the new entries from then on.
func (s *Store) ModifyPrefixList(ctx context.Context, ref string, add []model.PrefixListEntry, remove []string) (*pb.PrefixList, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, model.Invalidf("nothing to change: give entries to add (--add-entry) or remove (--remove-entry)")
	}
	var out *pb.PrefixList
	err := retry(ctx, "modify prefix list", func() error {
		pl := new(pb.PrefixList)
		rev, err := s.load(ctx, model.KindPrefixList, ref, pl)
		if err != nil {
			return err
		}
		es, err := model.EditPrefixList("prefix list "+pl.Id, pl.MaxEntries, prefixListEntries(pl.Entries), add, remove)
		if err != nil {
			return err
		}
		pl.Entries, pl.Version = pbEntries(es), pl.Version+1
		var t txn
		t.unchanged(s.resKey(model.KindPrefixList, pl.Id), rev)
		t.putProto(s.resKey(model.KindPrefixList, pl.Id), pl)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = pl
		return nil
	})
	return out, err
}

// DeletePrefixList deletes a list that no security group rule names.
func (s *Store) DeletePrefixList(ctx context.Context, ref string) error {
	return retry(ctx, "delete prefix list", func() error {
		pl := new(pb.PrefixList)
		rev, err := s.load(ctx, model.KindPrefixList, ref, pl)
		if err != nil {
			return err
		}
		var t txn
		t.unchanged(s.resKey(model.KindPrefixList, pl.Id), rev)
		t.emptyPrefix(s.refPrefix(pl.Id))
		t.del(s.resKey(model.KindPrefixList, pl.Id))
		t.del(s.nameKey(model.KindPrefixList, pl.Name))
		ok, _, err := s.commit(ctx, &t)
		if err != nil || ok {
			return err
		}
		groups, err := s.blockers(ctx, pl.Id)
		if err != nil {
			return err
		}
		if groups != "" {
			return model.Preconditionf("prefix list %s is named by rules of security groups %s; revoke those rules first", pl.Id, groups)
		}
		return errRetry
	})
}

// ruleWeight is how many rules r counts as toward its group's quota per
// direction: as on AWS, a rule naming a prefix list counts as the list's
// max entries. maxEntries holds the lists already read.
func (s *Store) ruleWeight(ctx context.Context, r *pb.SecurityGroupRule, maxEntries map[string]uint32) (int, error) {
	if r.PrefixListId == "" {
		return 1, nil
	}
	if n, ok := maxEntries[r.PrefixListId]; ok {
		return int(n), nil
	}
	pl := new(pb.PrefixList)
	_, found, err := s.getProto(ctx, s.resKey(model.KindPrefixList, r.PrefixListId), pl)
	if err != nil {
		return 0, err
	}
	if !found { // cannot happen while the rule's ref/ key holds it
		return 1, nil
	}
	maxEntries[r.PrefixListId] = pl.MaxEntries
	return int(pl.MaxEntries), nil
}
