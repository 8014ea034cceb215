package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// Security events are kept for EventRetention, and at most MaxEvents.
const (
	EventRetention = 24 * time.Hour
	MaxEvents      = 10000
)

var eventPuts atomic.Int64

func (s *Store) eventPrefix() string { return s.key("event") + "/" }

// PutEvent stores a security event with bounded retention.
func (s *Store) PutEvent(ctx context.Context, ev *pb.SecurityEvent) error {
	if ev.Id == "" {
		ev.Id = model.NewID(model.KindEvent)
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("store: marshal event: %w", err)
	}
	lease, err := s.c.Grant(ctx, int64(EventRetention/time.Second))
	if err != nil {
		return unavailable(err)
	}
	key := fmt.Sprintf("%s%020d-%s", s.eventPrefix(), ev.Time.AsTime().UnixNano(), ev.Id)
	if _, err := s.c.Put(ctx, key, string(b), clientv3.WithLease(lease.ID)); err != nil {
		return unavailable(err)
	}
	if eventPuts.Add(1)%100 == 0 {
		return s.trimEvents(ctx)
	}
	return nil
}

// trimEvents deletes the oldest events beyond MaxEvents.
func (s *Store) trimEvents(ctx context.Context) error {
	r, err := s.c.Get(ctx, s.eventPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return unavailable(err)
	}
	extra := r.Count - MaxEvents
	if extra <= 0 {
		return nil
	}
	old, err := s.c.Get(ctx, s.eventPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(extra))
	if err != nil {
		return unavailable(err)
	}
	for _, kv := range old.Kvs {
		if _, err := s.c.Delete(ctx, string(kv.Key)); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// ListEvents returns up to limit of the newest events, oldest first.
func (s *Store) ListEvents(ctx context.Context, limit int) ([]*pb.SecurityEvent, error) {
	r, err := s.c.Get(ctx, s.eventPrefix(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]*pb.SecurityEvent, len(r.Kvs))
	for i, kv := range r.Kvs {
		ev := new(pb.SecurityEvent)
		if err := unmarshal(kv, ev); err != nil {
			return nil, err
		}
		out[len(out)-1-i] = ev
	}
	return out, nil
}

// WatchEvents calls send for every event stored from now on, until ctx
// ends or send fails.
func (s *Store) WatchEvents(ctx context.Context, send func(*pb.SecurityEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range s.c.Watch(ctx, s.eventPrefix(), clientv3.WithPrefix(), clientv3.WithFilterDelete()) {
		if err := resp.Err(); err != nil {
			return unavailable(err)
		}
		for _, e := range resp.Events {
			ev := new(pb.SecurityEvent)
			if err := unmarshal(e.Kv, ev); err != nil {
				return err
			}
			if err := send(ev); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}
