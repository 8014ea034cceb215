package store

import (
	"context"
	"math/bits"
	"net/netip"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openvpc/openvpc/model"
)

// ipam hands out the lowest free address of a subnet. It keeps, per subnet,
// the addresses in use (read from etcd) and those being committed right
// now, so concurrent runs in this process get distinct candidates and their
// transactions do not collide. The etcd transaction remains the arbiter:
// a collision with another server is a failed condition, retried.
type ipam struct {
	s     *Store
	mu    sync.Mutex
	pools map[string]*pool
}

type pool struct {
	mu       sync.Mutex
	first    uint32 // first usable address
	size     uint32 // number of usable addresses
	used     []uint64
	inflight []uint64
	loaded   time.Time
}

// poolTTL bounds how long addresses freed by another server stay unseen.
const poolTTL = 2 * time.Second

func newIPAM(s *Store) *ipam { return &ipam{s: s, pools: map[string]*pool{}} }

func (a *ipam) pool(subnet string, p netip.Prefix) *pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	pl := a.pools[subnet]
	if pl == nil {
		first, last := model.UsableRange(p)
		n := model.Addr4(last) - model.Addr4(first) + 1
		words := (n + 63) / 64
		pl = &pool{first: model.Addr4(first), size: n, used: make([]uint64, words), inflight: make([]uint64, words)}
		pl.padding()
		a.pools[subnet] = pl
	}
	return pl
}

func (a *ipam) forget(subnet string) {
	a.mu.Lock()
	delete(a.pools, subnet)
	a.mu.Unlock()
}

// reserve picks the lowest address that is neither used nor in flight.
func (a *ipam) reserve(ctx context.Context, subnet string, p netip.Prefix) (netip.Addr, error) {
	pl := a.pool(subnet, p)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if time.Since(pl.loaded) > poolTTL {
		if err := a.load(ctx, subnet, pl); err != nil {
			return netip.Addr{}, err
		}
	}
	for w := range pl.used {
		free := ^(pl.used[w] | pl.inflight[w])
		if free == 0 {
			continue
		}
		i := uint32(w*64 + bits.TrailingZeros64(free))
		pl.inflight[w] |= 1 << (i % 64)
		return model.AddrFrom4(pl.first + i), nil
	}
	return netip.Addr{}, model.Preconditionf("subnet %s (%s) has no free addresses left", subnet, p)
}

// mark claims a specific address as in flight (an explicit --ip).
func (a *ipam) mark(subnet string, p netip.Prefix, ip netip.Addr) {
	pl := a.pool(subnet, p)
	pl.mu.Lock()
	i := model.Addr4(ip) - pl.first
	pl.inflight[i/64] |= 1 << (i % 64)
	pl.mu.Unlock()
}

// done settles an in-flight address: used when the commit took it (or
// someone else holds it), free otherwise.
func (a *ipam) done(subnet string, p netip.Prefix, ip netip.Addr, used bool) {
	pl := a.pool(subnet, p)
	pl.mu.Lock()
	i := model.Addr4(ip) - pl.first
	pl.inflight[i/64] &^= 1 << (i % 64)
	if used {
		pl.used[i/64] |= 1 << (i % 64)
	} else {
		pl.used[i/64] &^= 1 << (i % 64)
	}
	pl.mu.Unlock()
}

// release frees an address after its instance terminated.
func (a *ipam) release(subnet string, p netip.Prefix, ip netip.Addr) { a.done(subnet, p, ip, false) }

func (a *ipam) load(ctx context.Context, subnet string, pl *pool) error {
	r, err := a.s.c.Get(ctx, a.s.key("ip", subnet)+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return unavailable(err)
	}
	for w := range pl.used {
		pl.used[w] = 0
	}
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		ip, err := netip.ParseAddr(k[len(a.s.key("ip", subnet))+1:])
		if err != nil {
			continue
		}
		if i := model.Addr4(ip) - pl.first; i < pl.size {
			pl.used[i/64] |= 1 << (i % 64)
		}
	}
	pl.padding()
	pl.loaded = time.Now()
	return nil
}

// padding marks the bits past the last usable address as used forever.
func (pl *pool) padding() {
	for i := pl.size; i < uint32(len(pl.used))*64; i++ {
		pl.used[i/64] |= 1 << (i % 64)
	}
}
