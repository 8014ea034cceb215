package store

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

func (s *Store) underlayKey(a netip.Addr) string { return s.key("underlay", a.String()) }

// RegisterHost records a host or edge and its underlay address. A host may
// re-register (after a restart, or to move address); two hosts never share
// an underlay address.
func (s *Store) RegisterHost(ctx context.Context, id string, underlay netip.Addr, role pb.HostRole, agentURL string, functions ...*pb.EdgeFunction) (*pb.Host, error) {
	var out *pb.Host
	err := retry(ctx, "register host", func() error {
		h := new(pb.Host)
		rev, found, err := s.getProto(ctx, s.hostKey(id), h)
		if err != nil {
			return err
		}
		var t txn
		if found {
			t.unchanged(s.hostKey(id), rev)
			if h.UnderlayAddress != underlay.String() {
				if old, err := netip.ParseAddr(h.UnderlayAddress); err == nil {
					t.del(s.underlayKey(old))
				}
			}
		} else {
			t.absent(s.hostKey(id))
			h = &pb.Host{Id: id, RegisterTime: timestamppb.Now()}
		}
		if h.UnderlayAddress != underlay.String() {
			t.absent(s.underlayKey(underlay))
		}
		h.UnderlayAddress, h.Role, h.LastSeen, h.AgentUrl = underlay.String(), role, timestamppb.Now(), agentURL
		h.Functions = functions
		h.Unhealthy = false // registering is reporting in
		t.putProto(s.hostKey(id), h)
		t.put(s.underlayKey(underlay), id)
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			r, err := s.c.Get(ctx, s.underlayKey(underlay))
			if err != nil {
				return unavailable(err)
			}
			if len(r.Kvs) > 0 && string(r.Kvs[0].Value) != id {
				return model.Existsf("underlay address %s is already used by host %s", underlay, r.Kvs[0].Value)
			}
			return errRetry
		}
		out = h
		return nil
	})
	if err == nil {
		s.placer.refresh() // a new host is a placement candidate at once
	}
	return out, err
}

// SetHostHealth records whether a host or edge is healthy, as judged by
// the Mapping Service from its heartbeats. The write reaches every host's
// cache as a changed host record; nothing is written if nothing changes.
func (s *Store) SetHostHealth(ctx context.Context, id string, healthy bool) error {
	return retry(ctx, "set host health", func() error {
		h := new(pb.Host)
		rev, found, err := s.getProto(ctx, s.hostKey(id), h)
		if err != nil || !found || h.Unhealthy == !healthy {
			return err
		}
		h.Unhealthy = !healthy
		var t txn
		t.unchanged(s.hostKey(id), rev)
		t.putProto(s.hostKey(id), h)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		return nil
	})
}

// GetHost reads a registered host.
func (s *Store) GetHost(ctx context.Context, id string) (*pb.Host, error) {
	h := new(pb.Host)
	_, found, err := s.getProto(ctx, s.hostKey(id), h)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, model.NotFoundf("host %q is not registered; start its host agent first", id)
	}
	return h, nil
}

// ListHosts lists registered hosts and edges with their instance counts.
func (s *Store) ListHosts(ctx context.Context) ([]*pb.Host, error) {
	hs, err := listProto(ctx, s, s.key("host")+"/", func() *pb.Host { return new(pb.Host) })
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		r, err := s.c.Get(ctx, s.key("onhost", h.Id)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return nil, unavailable(err)
		}
		h.Instances = r.Count
	}
	slices.SortFunc(hs, func(a, b *pb.Host) int { return strings.Compare(a.Id, b.Id) })
	return hs, nil
}
