package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Record kinds seen by watchers of the whole store.
const (
	RecVPC        = "vpc"
	RecSubnet     = "subnet"
	RecRouteTable = "rtb"
	RecInstance   = "i"
	RecPeering    = "pcx"
	RecIGW        = "igw"
	RecSG         = "sg"
	RecACL        = "acl"
	RecFlowLog    = "fl"
	RecZone       = "zone"
	RecPrefixList = "pl"
	RecHost       = "host"
	RecAck        = "ack"
	// VPN and route propagation (vpn*.go).
	RecVPNGateway    = "vgw"
	RecVPNConnection = "vpn"
	RecTunnelStatus  = "vpntun"
	RecPropagated    = "prop"
	// Services and gateway endpoints (endpoint*.go).
	RecService  = svcPrefix
	RecEndpoint = "vpce"
	// Direct Connect (dx*.go).
	RecDXConnection = "dxcon"
	RecDXVIF        = "dxvif"
	RecDXGateway    = "dxgw"
)

var watched = map[string]bool{RecVPC: true, RecSubnet: true, RecRouteTable: true, RecInstance: true, RecPeering: true, RecIGW: true, RecSG: true, RecACL: true, RecFlowLog: true, RecZone: true, RecPrefixList: true, RecHost: true, RecAck: true,
	RecVPNGateway: true, RecVPNConnection: true, RecTunnelStatus: true, RecPropagated: true,
	RecService: true, RecEndpoint: true,
	RecDXConnection: true, RecDXVIF: true, RecDXGateway: true}

// Record is one resource as stored, or its deletion.
type Record struct {
	Kind           string
	ID             string
	Value          []byte // nil when Deleted
	Deleted        bool
	ModRevision    int64
	CreateRevision int64
}

// Batch is the records changed up to and including Revision.
type Batch struct {
	Records  []Record
	Revision int64
}

// ErrCompacted means the store no longer has the history a watch asked
// for; the watcher must Load afresh.
var ErrCompacted = errors.New("store: history compacted")

func (s *Store) record(kv *mvccpb.KeyValue, deleted bool) (Record, bool) {
	rest := strings.TrimPrefix(string(kv.Key), s.cfg.Prefix)
	kind, id, ok := strings.Cut(rest, "/")
	if !ok || !watched[kind] || strings.Contains(id, "/") {
		return Record{}, false
	}
	r := Record{Kind: kind, ID: id, Deleted: deleted, ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision}
	if !deleted {
		r.Value = kv.Value
	}
	return r, true
}

// Load reads every watched record at one revision.
func (s *Store) Load(ctx context.Context) (Batch, error) {
	r, err := s.c.Get(ctx, s.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return Batch{}, unavailable(err)
	}
	b := Batch{Revision: r.Header.Revision}
	for _, kv := range r.Kvs {
		if rec, ok := s.record(kv, false); ok {
			b.Records = append(b.Records, rec)
		}
	}
	return b, nil
}

// Watch streams every change to watched records after revision from, in
// order, one batch per store revision range. The channel closes when ctx
// ends or the watch fails; a failure is sent first as a batch-less error.
func (s *Store) Watch(ctx context.Context, from int64, errc chan<- error) <-chan Batch {
	out := make(chan Batch, 64)
	go func() {
		defer close(out)
		wc := s.c.Watch(clientv3.WithRequireLeader(ctx), s.cfg.Prefix, clientv3.WithPrefix(),
			clientv3.WithRev(from+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
		for resp := range wc {
			if err := resp.Err(); err != nil {
				if resp.CompactRevision > 0 || errors.Is(err, rpctypes.ErrCompacted) {
					err = ErrCompacted
				}
				errc <- err
				return
			}
			if len(resp.Events) == 0 {
				continue
			}
			b := Batch{}
			for _, ev := range resp.Events {
				if rec, ok := s.record(ev.Kv, ev.Type == clientv3.EventTypeDelete); ok {
					if rec.Deleted && ev.PrevKv != nil {
						rec.Value, rec.CreateRevision = ev.PrevKv.Value, ev.PrevKv.CreateRevision
					}
					b.Records = append(b.Records, rec)
				}
				b.Revision = ev.Kv.ModRevision
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil {
			errc <- errors.New("store: watch ended")
		}
	}()
	return out
}

// Ack is a host's acknowledged revision and when it last spoke.
type Ack struct {
	Revision int64
	Seen     time.Time
}

// EncodeAck and DecodeAck spell an ack record's value.
func EncodeAck(a Ack) string {
	return strconv.FormatInt(a.Revision, 10) + "," + strconv.FormatInt(a.Seen.UnixNano(), 10)
}

func DecodeAck(v []byte) (Ack, bool) {
	r, t, ok := strings.Cut(string(v), ",")
	if !ok {
		return Ack{}, false
	}
	rev, err1 := strconv.ParseInt(r, 10, 64)
	ns, err2 := strconv.ParseInt(t, 10, 64)
	return Ack{Revision: rev, Seen: time.Unix(0, ns)}, err1 == nil && err2 == nil
}

// maxOpsPerTxn stays under etcd's default limit of 128 operations.
const maxOpsPerTxn = 100

// PutAcks records hosts' acknowledgements. The writes go out as several
// small transactions at once, which etcd commits together (one disk sync
// for all), staying under etcd's default limit of 128 operations each.
func (s *Store) PutAcks(ctx context.Context, acks map[string]Ack) error {
	var chunks [][]clientv3.Op
	var ops []clientv3.Op
	for host, a := range acks {
		ops = append(ops, clientv3.OpPut(s.key(RecAck, host), EncodeAck(a)))
		if len(ops) == maxOpsPerTxn {
			chunks, ops = append(chunks, ops), nil
		}
	}
	if len(ops) > 0 {
		chunks = append(chunks, ops)
	}
	errs := make(chan error, len(chunks))
	for _, c := range chunks {
		go func() {
			_, err := s.c.Txn(ctx).Then(c...).Commit()
			errs <- err
		}()
	}
	var first error
	for range chunks {
		if err := <-errs; err != nil && first == nil {
			first = unavailable(err)
		}
	}
	return first
}

// Compact discards history before rev (tests use it to force resyncs).
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.c.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return unavailable(err)
}
