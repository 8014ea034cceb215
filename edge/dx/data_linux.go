package dx

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/packet"
)

// Data is the Direct Connect function of the edge's data plane, over
// every port's VIFs. Each VIF's namespace has a TUN, "vpc", into which
// that namespace routes the VPCs' CIDRs; the site's prefixes the session
// learned are routed to the customer router on the VIF's link. So:
//
//	VPC → site: Geneve from a host → the edge's checks → FromVPC (the
//	    VIF's session is up, the source in its VPC, the destination a
//	    prefix it learned) → Write: the TUN of the VIF that learned the
//	    longest prefix for it → the VIF's kernel → tagged, out of the port.
//	site → VPC: tagged frame → the VIF's link → its kernel → its TUN →
//	    Read (which VIF it came from) → FromOutsideTo (the source is a
//	    prefix that VIF learned, never inside the VPC) → encapsulated to
//	    the instance's host, marked with the VIF.
//
// Data is itself the function's outside port: Read hands the edge one
// VIF's batch at a time and remembers which VIF it was, which
// FromOutsideTo (called by the same goroutine, for that batch) reads.
type Data struct {
	vifs    atomic.Pointer[[]*dataVIF] // immutable; replaced whole
	batches chan *readBatch
	closed  chan struct{}
	once    sync.Once
	tables  atomic.Pointer[tables.Tables]
	// current is the VIF of the batch Read returned last; only the edge's
	// goroutine serving this port touches it.
	current *dataVIF

	mu  sync.Mutex // writers of vifs; Write's scratch
	all map[uint64]*dataVIF
	out map[*dataVIF][][]byte
}

// dataVIF is a VIF as the data path sees it; replaced, never changed.
type dataVIF struct {
	id      uint64
	up      bool
	vpcs    []netip.Prefix
	vnis    []uint32 // of vpcs, 0 while the edge's cache lacks one
	learned []netip.Prefix
	tun     *edge.TUNOutside
}

type readBatch struct {
	vif   *dataVIF
	bufs  [][]byte
	sizes []int
	n     int
	done  chan struct{}
}

// readBatchSize bounds the packets a VIF's TUN hands over at once.
const readBatchSize = 32

// NewData returns the data path with no VIF.
func NewData() *Data {
	d := &Data{batches: make(chan *readBatch), closed: make(chan struct{}), all: map[uint64]*dataVIF{}, out: map[*dataVIF][][]byte{}}
	d.vifs.Store(&[]*dataVIF{})
	return d
}

var (
	_ edge.Function = (*Data)(nil)
	_ edge.Targeted = (*Data)(nil)
)

// Bind gives the data path the edge's cache, for the VPCs' VNIs.
func (d *Data) Bind(t *tables.Tables) { d.tables.Store(t); d.Refresh() }

// Kind is the route target kind the function serves.
func (d *Data) Kind() tables.TargetKind { return tables.TargetDirectConnect }

// Targets is nil: the Mapping Service names the VIFs on this edge's
// connections as its targets in the record hosts hold.
func (d *Data) Targets() []uint64 { return nil }

// Outside is the data path itself: the VIFs' TUNs.
func (d *Data) Outside() datapath.Port { return d }

// FromVPC: the VIF's session must be up, the packet come from one of its
// VPCs and go to a prefix it learned.
//
//	VIF up → site prefix → into the VIF
func (d *Data) FromVPC(snap *tables.Snapshot, vni uint32, target uint64, inner packet.IPv4, t *datapath.Trace) datapath.Verdict {
	v := d.vif(target)
	ok := v != nil && v.up && slices.Contains(v.vnis, vni) && containsAddr(v.vpcs, inner.Src())
	if t != nil {
		t.Step("VIF up", ok, fmt.Sprintf("%s's session is up on this edge, for VPC %d", model.FormatID(model.KindDirectConnect, target), vni))
	}
	if !ok {
		return datapath.NoRoute
	}
	ok = containsAddr(v.learned, inner.Dst())
	if t != nil {
		t.Step("site prefix", ok, fmt.Sprintf("%v in the prefixes the VIF learned %v", inner.Dst(), v.learned))
	}
	if !ok {
		return datapath.NoRoute
	}
	return datapath.Forwarded
}

// FromOutsideTo: a packet out of a VIF must come from a prefix that VIF
// learned — never from inside a VPC — and go into one of its VPCs.
//
//	site source → VPC destination
func (d *Data) FromOutsideTo(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (vni uint32, target uint64, v datapath.Verdict) {
	x := d.current
	if x == nil {
		return 0, 0, datapath.NoRoute
	}
	src, dst := pkt.Src(), pkt.Dst()
	if containsAddr(x.vpcs, src) || !containsAddr(x.learned, src) {
		if t != nil {
			t.Fail("site source", "%v is not a prefix %s learned (or is inside its VPCs %v)", src, model.FormatID(model.KindDirectConnect, x.id), x.vpcs)
		}
		return 0, 0, datapath.SpoofedSource
	}
	for i, p := range x.vpcs {
		if p.Contains(dst) {
			ok := x.vnis[i] != 0
			if t != nil {
				t.Step("VPC", ok, fmt.Sprintf("%v is in %v (VNI %d)", dst, p, x.vnis[i]))
			}
			if !ok {
				return 0, 0, datapath.NoMapping
			}
			return x.vnis[i], x.id, datapath.Forwarded
		}
	}
	if t != nil {
		t.Fail("VPC", "%v is in none of the VPCs behind %s", dst, model.FormatID(model.KindDirectConnect, x.id))
	}
	return 0, 0, datapath.NoRoute
}

// FromOutside is FromOutsideTo without the target.
func (d *Data) FromOutside(snap *tables.Snapshot, pkt packet.IPv4, t *datapath.Trace) (uint32, datapath.Verdict) {
	vni, _, v := d.FromOutsideTo(snap, pkt, t)
	return vni, v
}

func (d *Data) vif(id uint64) *dataVIF {
	for _, v := range *d.vifs.Load() {
		if v.id == id {
			return v
		}
	}
	return nil
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Read implements datapath.Port: one VIF's batch.
func (d *Data) Read(bufs [][]byte, sizes []int) (int, error) {
	select {
	case b := <-d.batches:
		n := min(b.n, len(bufs))
		for i := range n {
			sizes[i] = copy(bufs[i][packet.Headroom:], b.bufs[i][packet.Headroom:packet.Headroom+b.sizes[i]])
		}
		d.current = b.vif
		b.done <- struct{}{}
		return n, nil
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

// Write implements datapath.Port: each packet into the TUN of the VIF
// whose learned prefix for its destination is the longest. borrowed:
// pkts are copied by the TUNs.
func (d *Data) Write(pkts [][]byte) error {
	vifs := *d.vifs.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range pkts {
		ip := packet.IPv4(p)
		if !ip.Valid() {
			continue
		}
		var best *dataVIF
		bits := -1
		dst := ip.Dst()
		for _, v := range vifs {
			if !v.up || v.tun == nil {
				continue
			}
			for _, l := range v.learned {
				if l.Bits() > bits && l.Contains(dst) {
					best, bits = v, l.Bits()
				}
			}
		}
		if best != nil {
			d.out[best] = append(d.out[best], p)
		}
	}
	var errs []error
	for v, ps := range d.out {
		if len(ps) > 0 {
			if err := v.tun.Write(ps); err != nil {
				errs = append(errs, err)
			}
		}
		d.out[v] = ps[:0]
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// BatchSize implements datapath.Port.
func (d *Data) BatchSize() int { return readBatchSize }

// Close ends Read.
func (d *Data) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// put replaces VIF id's view (nil removes it) and publishes the set.
func (d *Data) put(id uint64, v *dataVIF) {
	d.mu.Lock()
	if old := d.all[id]; old != nil {
		delete(d.out, old)
	}
	if v == nil {
		delete(d.all, id)
	} else {
		d.fillVNIs(v)
		d.all[id] = v
	}
	d.publishLocked()
	d.mu.Unlock()
}

func (d *Data) publishLocked() {
	vs := make([]*dataVIF, 0, len(d.all))
	for _, v := range d.all {
		vs = append(vs, v)
	}
	d.vifs.Store(&vs)
}

// fillVNIs looks the VIF's VPCs up in the edge's cache.
func (d *Data) fillVNIs(v *dataVIF) {
	v.vnis = make([]uint32, len(v.vpcs))
	t := d.tables.Load()
	if t == nil {
		return
	}
	for x := range t.Load().VPCs() {
		for i, p := range v.vpcs {
			if x.CIDR == p {
				v.vnis[i] = x.VNI
			}
		}
	}
}

// Refresh looks the VPCs' VNIs up again (the cache learns VPCs after the
// VIFs come up).
func (d *Data) Refresh() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, v := range d.all {
		nv := *v
		d.fillVNIs(&nv)
		if !slices.Equal(nv.vnis, v.vnis) {
			delete(d.out, v)
			d.all[id] = &nv
		}
	}
	d.publishLocked()
}

// serveTUN hands tun's packets to Read, as VIF id's, until tun is closed.
func (d *Data) serveTUN(id uint64, tun *edge.TUNOutside) {
	b := &readBatch{bufs: make([][]byte, readBatchSize), sizes: make([]int, readBatchSize), done: make(chan struct{})}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, packet.Headroom+65535)
	}
	var retry datapath.Retry
	for {
		n, err := tun.Read(b.bufs, b.sizes)
		if err != nil {
			if retry.Again(err) {
				continue
			}
			return
		}
		retry.Reset()
		d.mu.Lock()
		b.vif = d.all[id]
		d.mu.Unlock()
		if b.vif == nil || n == 0 {
			continue
		}
		b.n = n
		select {
		case d.batches <- b:
			<-b.done
		case <-d.closed:
			return
		}
	}
}
