package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openvpc/openvpc/model"
)

// The trust records: the cloud's CA (so every server over this store
// shares it), join and admin tokens (hashes only), the certificates issued
// to each host, and revoked certificates until they would have expired.
func (s *Store) caCertKey() string                  { return s.key("pki", "ca-cert") }
func (s *Store) caKeyKey() string                   { return s.key("pki", "ca-key") }
func (s *Store) joinTokenKey(id string) string      { return s.key("jointoken", id) }
func (s *Store) adminTokenKey(id string) string     { return s.key("admintoken", id) }
func (s *Store) certPrefix(host string) string      { return s.key("cert", host) + "/" }
func (s *Store) certKey(host, serial string) string { return s.certPrefix(host) + serial }
func (s *Store) revokedPrefix() string              { return s.key("revoked") + "/" }

// LoadOrCreateCA returns the cloud's CA, making it with newCA on first use.
// Servers starting at once agree: the first write wins and the others read it.
func (s *Store) LoadOrCreateCA(ctx context.Context, newCA func() (certPEM, keyPEM []byte, err error)) (certPEM, keyPEM []byte, created bool, err error) {
	for range maxRetries {
		r, err := s.c.Txn(ctx).Then(clientv3.OpGet(s.caCertKey()), clientv3.OpGet(s.caKeyKey())).Commit()
		if err != nil {
			return nil, nil, false, unavailable(err)
		}
		c, k := r.Responses[0].GetResponseRange().Kvs, r.Responses[1].GetResponseRange().Kvs
		if len(c) == 1 && len(k) == 1 {
			return c[0].Value, k[0].Value, false, nil
		}
		certPEM, keyPEM, err := newCA()
		if err != nil {
			return nil, nil, false, err
		}
		var t txn
		t.absent(s.caCertKey())
		t.put(s.caCertKey(), string(certPEM))
		t.put(s.caKeyKey(), string(keyPEM))
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return nil, nil, false, err
		}
		if ok {
			return certPEM, keyPEM, true, nil
		}
	}
	return nil, nil, false, model.Unavailablef("could not create the CA: too many concurrent servers; try again")
}

// PutCA stores a CA given by the operator (--ca-cert/--ca-key), unless the
// store already has one: one cloud has one CA.
func (s *Store) PutCA(ctx context.Context, certPEM, keyPEM []byte) error {
	var t txn
	t.absent(s.caCertKey())
	t.put(s.caCertKey(), string(certPEM))
	t.put(s.caKeyKey(), string(keyPEM))
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	r, err := s.c.Get(ctx, s.caCertKey())
	if err != nil {
		return unavailable(err)
	}
	if string(r.Kvs[0].Value) != string(certPEM) {
		return model.Preconditionf("this store already has a different CA; start without --ca-cert/--ca-key, or give the CA it has")
	}
	return nil
}

// JoinToken is a stored join token: what it allows, never its secret.
type JoinToken struct {
	Hash   string    `json:"hash"`
	Role   string    `json:"role"`
	HostID string    `json:"hostId,omitempty"`
	Expire time.Time `json:"expire"`
}

// PutJoinToken stores a join token; etcd forgets it when it expires.
func (s *Store) PutJoinToken(ctx context.Context, id string, tok JoinToken) error {
	b, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	lease, err := s.c.Grant(ctx, max(1, int64(time.Until(tok.Expire)/time.Second)+1))
	if err != nil {
		return unavailable(err)
	}
	if _, err := s.c.Put(ctx, s.joinTokenKey(id), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return unavailable(err)
	}
	return nil
}

// GetJoinToken reads join token id and the revision to consume it at.
func (s *Store) GetJoinToken(ctx context.Context, id string) (JoinToken, int64, error) {
	r, err := s.c.Get(ctx, s.joinTokenKey(id))
	if err != nil {
		return JoinToken{}, 0, unavailable(err)
	}
	if len(r.Kvs) == 0 {
		return JoinToken{}, 0, model.ErrNotFound
	}
	var tok JoinToken
	if err := json.Unmarshal(r.Kvs[0].Value, &tok); err != nil {
		return JoinToken{}, 0, fmt.Errorf("store: corrupt join token %s: %w", id, err)
	}
	return tok, r.Kvs[0].ModRevision, nil
}

// CommitJoin consumes join token id (unchanged since tokenRev) and records
// the certificate issued to host, in one transaction: a token joins one
// host once, and an id taken by a registered host, or by a host that holds
// a certificate, is not given to another.
func (s *Store) CommitJoin(ctx context.Context, id string, tokenRev int64, host string, underlay netip.Addr, serial string, notAfter time.Time) error {
	lease, err := s.certLease(ctx, notAfter)
	if err != nil {
		return err
	}
	var t txn
	t.unchanged(s.joinTokenKey(id), tokenRev)
	t.absent(s.hostKey(host))
	// A certificate for an address another host has registered would let
	// its holder speak as that host's underlay until registering failed.
	t.absent(s.underlayKey(underlay))
	t.emptyPrefix(s.certPrefix(host))
	t.del(s.joinTokenKey(id))
	t.put(s.certKey(host, serial), strconv.FormatInt(notAfter.Unix(), 10), clientv3.WithLease(lease))
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	_, _ = s.c.Revoke(ctx, lease)
	if _, rev, err := s.GetJoinToken(ctx, id); err != nil || rev != tokenRev {
		return model.Deniedf("the join token was used already; make another with openvpc token create")
	}
	if r, err := s.c.Get(ctx, s.underlayKey(underlay)); err == nil && len(r.Kvs) > 0 && string(r.Kvs[0].Value) != host {
		return model.Existsf("underlay address %s is already used by host %s; give %s its own address, or remove %s first (openvpc host remove %s)",
			underlay, r.Kvs[0].Value, host, r.Kvs[0].Value, r.Kvs[0].Value)
	}
	return model.Existsf("host %s has already joined; remove it first (openvpc host remove %s) or join with another id", host, host)
}

// RecordCert records a certificate issued to host without a token (to the
// agents of `openvpc up`, which run inside the server), so that removing
// the host revokes it.
func (s *Store) RecordCert(ctx context.Context, host, serial string, notAfter time.Time) error {
	lease, err := s.certLease(ctx, notAfter)
	if err != nil {
		return err
	}
	if _, err := s.c.Put(ctx, s.certKey(host, serial), strconv.FormatInt(notAfter.Unix(), 10), clientv3.WithLease(lease)); err != nil {
		return unavailable(err)
	}
	return nil
}

// RecordRenewal records a certificate that replaces oldSerial, unless the
// old one was revoked meanwhile.
func (s *Store) RecordRenewal(ctx context.Context, host, oldSerial, serial string, notAfter time.Time) error {
	lease, err := s.certLease(ctx, notAfter)
	if err != nil {
		return err
	}
	var t txn
	t.present(s.certKey(host, oldSerial))
	t.put(s.certKey(host, serial), strconv.FormatInt(notAfter.Unix(), 10), clientv3.WithLease(lease))
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	_, _ = s.c.Revoke(ctx, lease)
	return model.Deniedf("the certificate of host %s was revoked; it must join again with a new token", host)
}

// certLease lives until a certificate expires, when its records are moot.
func (s *Store) certLease(ctx context.Context, notAfter time.Time) (clientv3.LeaseID, error) {
	l, err := s.c.Grant(ctx, max(1, int64(time.Until(notAfter)/time.Second)+60))
	if err != nil {
		return 0, unavailable(err)
	}
	return l.ID, nil
}

// RevokeHost revokes every certificate issued to host and returns how many.
func (s *Store) RevokeHost(ctx context.Context, host string) (int, error) {
	r, err := s.c.Get(ctx, s.certPrefix(host), clientv3.WithPrefix())
	if err != nil {
		return 0, unavailable(err)
	}
	if len(r.Kvs) == 0 {
		return 0, nil
	}
	latest := time.Now()
	for _, kv := range r.Kvs {
		if u, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil && time.Unix(u, 0).After(latest) {
			latest = time.Unix(u, 0)
		}
	}
	lease, err := s.certLease(ctx, latest)
	if err != nil {
		return 0, err
	}
	// In batches that fit etcd's limit of operations per transaction;
	// interrupted, a second run revokes the rest.
	const batch = 50
	for kvs := range slices.Chunk(r.Kvs, batch) {
		var t txn
		for _, kv := range kvs {
			serial := strings.TrimPrefix(string(kv.Key), s.certPrefix(host))
			t.put(s.revokedPrefix()+serial, host, clientv3.WithLease(lease))
			t.del(string(kv.Key))
		}
		if _, _, err := s.commit(ctx, &t); err != nil {
			return 0, err
		}
	}
	return len(r.Kvs), nil
}

// WatchRevoked calls revoked with the serial of every revoked certificate
// until ctx ends: those revoked before first, then loaded (once), then
// each new one.
func (s *Store) WatchRevoked(ctx context.Context, revoked func(serial string), loaded func()) {
	first := true
	for ctx.Err() == nil {
		r, err := s.c.Get(ctx, s.revokedPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, kv := range r.Kvs {
			revoked(strings.TrimPrefix(string(kv.Key), s.revokedPrefix()))
		}
		if first {
			loaded()
			first = false
		}
		for wr := range s.c.Watch(clientv3.WithRequireLeader(ctx), s.revokedPrefix(), clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					revoked(strings.TrimPrefix(string(ev.Kv.Key), s.revokedPrefix()))
				}
			}
		}
	}
}

// PutAdminToken stores an administrator token's hash.
func (s *Store) PutAdminToken(ctx context.Context, id, hash string) error {
	if _, err := s.c.Put(ctx, s.adminTokenKey(id), hash); err != nil {
		return unavailable(err)
	}
	return nil
}

// AdminToken reads the hash of administrator token id.
func (s *Store) AdminToken(ctx context.Context, id string) (hash string, found bool, err error) {
	r, err := s.c.Get(ctx, s.adminTokenKey(id))
	if err != nil {
		return "", false, unavailable(err)
	}
	if len(r.Kvs) == 0 {
		return "", false, nil
	}
	return string(r.Kvs[0].Value), true, nil
}

// InstancesOnHost lists the ids of the live instances placed on host.
func (s *Store) InstancesOnHost(ctx context.Context, host string) ([]string, error) {
	return s.keysUnder(ctx, s.key("onhost", host)+"/")
}

// DeleteHost deletes a host's record, its underlay address and its acks,
// once no live instance is placed on it.
func (s *Store) DeleteHost(ctx context.Context, id string) error {
	h, err := s.GetHost(ctx, id)
	if err != nil {
		return err
	}
	var t txn
	t.present(s.hostKey(id))
	t.emptyPrefix(s.key("onhost", id) + "/")
	t.del(s.hostKey(id))
	t.del(s.key(RecAck, id))
	t.del(s.key("underlay", h.UnderlayAddress))
	ok, _, err := s.commit(ctx, &t)
	if err != nil {
		return err
	}
	if !ok {
		return model.Preconditionf("host %s still has instances, or changed meanwhile; try again", id)
	}
	s.placer.refresh()
	return nil
}
