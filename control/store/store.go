package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/model"
)

// Store reads and writes openvpc's resources in etcd. Every mutation is one
// etcd transaction whose conditions guard the invariants (unique names,
// VNIs and addresses; no dangling references), so concurrent servers and
// clients never collide.
type Store struct {
	c      *clientv3.Client
	cfg    Config
	log    *slog.Logger
	etcd   *embed.Etcd // nil with an external cluster
	ipam   *ipam
	placer *placer
	events eventLease
	lock   *dataDirLock // the embedded etcd's data dir, held until Close
}

func newStore(c *clientv3.Client, cfg Config, e *embed.Etcd) *Store {
	s := &Store{c: c, cfg: cfg, log: cfg.Logger, etcd: e}
	s.ipam = newIPAM(s)
	s.placer = newPlacer(s)
	return s
}

// Close releases the client and stops the embedded etcd, if any.
func (s *Store) Close() error {
	err := s.c.Close()
	if errors.Is(err, context.Canceled) {
		err = nil // the client cancels its own context to close: not a failure
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	s.lock.release()
	return err
}

// Key layout, under the configured prefix:
//
//	vpc/<id>, subnet/<id>, rtb/<id>, i/<id>, pcx/<id>   resources (protobuf)
//	sg/<id>, acl/<id>                                 security groups (with their rules), network ACLs
//	fl/<id>                                           flow logs
//	pl/<id>                                           prefix lists (regional; ref/<pl>/<sg> while a rule names one)
//	flowlogof/<scope-id>/<fl-id> → name               the flow logs of an instance, subnet or VPC,
//	                                                  deleted with it (flowlog.go)
//	host/<host-id>                                    registered hosts and edges
//	name/<kind>/<name>          → id                  unique names
//	vni/<vni>                   → vpc id              unique VNIs
//	ip/<subnet-id>/<ip>         → instance id         unique addresses
//	ref/<parent-id>/<child-id>  → ""                  what stands in the way of a delete
//	                                                  (also ref/<sg>/<instance>: members,
//	                                                  ref/<sg>/<sg>: rules naming a group,
//	                                                  ref/<acl>/<subnet>: associations)
//	onhost/<host-id>/<inst-id>  → vpc id              placement and host scope
//	pair/<vpc-id>/<vpc-id>      → pcx id              one peering per pair
//	event/<host>/<reason>/<src> → SecurityEvent       security events, aggregated (events.go)
func (s *Store) key(parts ...string) string {
	return s.cfg.Prefix + strings.Join(parts, "/")
}

func (s *Store) resKey(k model.Kind, id string) string { return s.key(string(k), id) }
func (s *Store) nameKey(k model.Kind, n string) string { return s.key("name", string(k), n) }
func (s *Store) refKey(parent, child string) string    { return s.key("ref", parent, child) }
func (s *Store) refPrefix(parent string) string        { return s.key("ref", parent) + "/" }
func (s *Store) vniKey(vni uint32) string              { return s.key("vni", fmt.Sprintf("%08d", vni)) }
func (s *Store) ipKey(subnet string, ip string) string { return s.key("ip", subnet, ip) }
func (s *Store) onHostKey(host, inst string) string    { return s.key("onhost", host, inst) }
func (s *Store) hostKey(id string) string              { return s.key("host", id) }
func (s *Store) pairKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return s.key("pair", a, b)
}

// unavailable turns an etcd failure into an error the user can act on.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var me *model.Error
	if errors.As(err, &me) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return model.Unavailablef("the store (etcd) did not answer in time: %v", err)
	}
	return model.Unavailablef("the store (etcd) failed: %v; check that etcd is running", err)
}

// getProto reads key into m; found is false when the key is absent.
func (s *Store) getProto(ctx context.Context, key string, m proto.Message) (modRev int64, found bool, err error) {
	r, err := s.c.Get(ctx, key)
	if err != nil {
		return 0, false, unavailable(err)
	}
	if len(r.Kvs) == 0 {
		return 0, false, nil
	}
	if err := proto.Unmarshal(r.Kvs[0].Value, m); err != nil {
		return 0, false, fmt.Errorf("store: corrupt value at %s: %w", key, err)
	}
	return r.Kvs[0].ModRevision, true, nil
}

// listProto reads every value under prefix.
func listProto[M proto.Message](ctx context.Context, s *Store, prefix string, newM func() M) ([]M, error) {
	r, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]M, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		m := newM()
		if err := proto.Unmarshal(kv.Value, m); err != nil {
			return nil, fmt.Errorf("store: corrupt value at %s: %w", kv.Key, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// keysUnder lists the last path element of every key under prefix.
func (s *Store) keysUnder(ctx context.Context, prefix string) ([]string, error) {
	r, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]string, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		out = append(out, k[strings.LastIndexByte(k, '/')+1:])
	}
	return out, nil
}

// resolve turns a name-or-id reference into an id that exists.
func (s *Store) resolve(ctx context.Context, k model.Kind, ref string) (string, error) {
	if ref == "" {
		return "", model.Invalidf("no %s given; pass its name or id", k.Noun())
	}
	if model.IsID(k, ref) {
		return ref, nil
	}
	if vpcRef, ok := model.DefaultOf(ref); ok && (k == model.KindSecurityGroup || k == model.KindNetworkACL) {
		return s.defaultOf(ctx, k, vpcRef)
	}
	r, err := s.c.Get(ctx, s.nameKey(k, ref))
	if err != nil {
		return "", unavailable(err)
	}
	if len(r.Kvs) == 0 {
		return "", model.NotFoundf("%s %q not found", k.Noun(), ref)
	}
	return string(r.Kvs[0].Value), nil
}

// defaultOf is the id of a VPC's default security group or network ACL.
func (s *Store) defaultOf(ctx context.Context, k model.Kind, vpcRef string) (string, error) {
	vpc, err := s.GetVPC(ctx, vpcRef)
	if err != nil {
		return "", err
	}
	id := vpc.DefaultSecurityGroupId
	if k == model.KindNetworkACL {
		id = vpc.DefaultNetworkAclId
	}
	if id == "" {
		return "", model.NotFoundf("VPC %s has no default %s (it predates them)", vpc.Id, k.Noun())
	}
	return id, nil
}

// load resolves ref and reads the resource into m.
func (s *Store) load(ctx context.Context, k model.Kind, ref string, m proto.Message) (modRev int64, err error) {
	id, err := s.resolve(ctx, k, ref)
	if err != nil {
		return 0, err
	}
	rev, found, err := s.getProto(ctx, s.resKey(k, id), m)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, model.NotFoundf("%s %q not found", k.Noun(), ref)
	}
	return rev, nil
}

// txn is one etcd transaction being built: conditions and the writes that
// happen only if all of them hold.
type txn struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

func (t *txn) absent(key string) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
}

func (t *txn) present(key string) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
}

func (t *txn) unchanged(key string, modRev int64) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", modRev))
}

// emptyPrefix holds when no key exists under prefix.
func (t *txn) emptyPrefix(prefix string) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix())
}

func (t *txn) put(key, val string, opts ...clientv3.OpOption) {
	t.ops = append(t.ops, clientv3.OpPut(key, val, opts...))
}

func (t *txn) putProto(key string, m proto.Message, opts ...clientv3.OpOption) {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("store: marshal %T: %v", m, err)) // only on a programming error
	}
	t.ops = append(t.ops, clientv3.OpPut(key, string(b), opts...))
}

func (t *txn) del(key string) { t.ops = append(t.ops, clientv3.OpDelete(key)) }

// commit runs the transaction; ok is false when a condition failed.
func (s *Store) commit(ctx context.Context, t *txn) (ok bool, rev int64, err error) {
	r, err := s.c.Txn(ctx).If(t.cmps...).Then(t.ops...).Commit()
	if err != nil {
		return false, 0, unavailable(err)
	}
	return r.Succeeded, r.Header.Revision, nil
}

// commitOrRetry runs the transaction; a failed condition (a concurrent
// writer got there first) is errRetry, for retry to read afresh.
func (s *Store) commitOrRetry(ctx context.Context, t *txn) error {
	ok, _, err := s.commit(ctx, t)
	if err == nil && !ok {
		return errRetry
	}
	return err
}

// Revision is the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	r, err := s.c.Get(ctx, s.key("probe"), clientv3.WithCountOnly())
	if err != nil {
		return 0, unavailable(err)
	}
	return r.Header.Revision, nil
}

// blockers names the children recorded under ref/<parent>/, for a message
// explaining why parent cannot be deleted.
func (s *Store) blockers(ctx context.Context, parent string) (string, error) {
	ids, err := s.keysUnder(ctx, s.refPrefix(parent))
	if err != nil || len(ids) == 0 {
		return "", err
	}
	const show = 5
	more := ""
	if len(ids) > show {
		more = fmt.Sprintf(" and %d more", len(ids)-show)
		ids = ids[:show]
	}
	return strings.Join(ids, ", ") + more, nil
}

// maxRetries bounds optimistic retries when a concurrent writer wins a race.
const maxRetries = 64

var errRetry = errors.New("store: retry")

// retry runs fn until it succeeds, fails for real, or races too often.
func retry(ctx context.Context, what string, fn func() error) error {
	for i := 0; i < maxRetries; i++ {
		err := fn()
		if !errors.Is(err, errRetry) {
			return err
		}
		if ctx.Err() != nil {
			return unavailable(ctx.Err())
		}
	}
	return model.Unavailablef("%s: too many concurrent changes; try again", what)
}

func unmarshal(kv *mvccpb.KeyValue, m proto.Message) error {
	if err := proto.Unmarshal(kv.Value, m); err != nil {
		return fmt.Errorf("store: corrupt value at %s: %w", kv.Key, err)
	}
	return nil
}
