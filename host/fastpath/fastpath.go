package fastpath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/tables"
)

// Counter indices of the programs' per-CPU counters (enum counter in
// bpf/fastpath.c).
const (
	CEgressForwarded = iota
	CEgressDelivered
	CIngressDelivered
	CEgressMiss
	CIngressMiss
	CStale
	CExpired
	CBypass
	NumCounters
)

// CounterNames name the counters, for metrics and logs.
var CounterNames = [NumCounters]string{"egress_forwarded", "egress_delivered", "ingress_delivered", "egress_miss", "ingress_miss", "stale", "expired", "bypass"}

const (
	actEncap   = 1
	actDeliver = 2
	geneveLen  = 16 // base header + SourceVPC, what the programs replay
)

// DefaultLifetime is how long an entry is replayed at most before the Go
// story decides its flow again: what keeps connection tracking fresh for
// flows the kernel carries (each such flow costs one slow-path packet per
// lifetime, which may arrive after the kernel's next ones: TCP sees it
// reordered) and bounds how long a neighbour change goes unseen. A third
// of the shortest connection-tracking timeout an ENI may have (UDP, 30 s).
const DefaultLifetime = 10 * time.Second

// Config is what the fast path needs to know of its host.
type Config struct {
	// Underlay is this host's underlay address; the device holding it is
	// where Geneve from other hosts arrives.
	Underlay netip.Addr
	// WirePort is the UDP port of Geneve (default 6081).
	WirePort uint16
	// MTU is the instance MTU: larger packets take the Go story.
	MTU int
	// Lifetime bounds an entry's life (default DefaultLifetime).
	Lifetime time.Duration
	Log      *slog.Logger
}

// FastPath is the kernel flow cache of one host agent: the programs, their
// maps and the links attaching them to the underlay device and to the
// host ends of the instances' veths. It implements dataplane.FlowCache.
// Nothing is pinned: the programs and links live as long as this process
// holds them, so a crash (kill -9) leaves nothing attached.
type FastPath struct {
	cfg  Config
	objs fastpathObjects

	wireIndex int
	wireLink  link.Link

	mu    sync.Mutex // writers of ports
	ports atomic.Pointer[map[uint64]port]
	links map[uint64]link.Link

	// hops are the underlay next hops by destination, resolved off the
	// packet path (resolve); want asks for one not known yet.
	hops atomic.Pointer[map[netip.Addr]hop]
	want chan netip.Addr

	// Installs counts entries installed; Skipped those not installed
	// because a next hop was not resolved yet; Revalidated and Invalidated
	// the entries kept and removed by Revalidate at snapshot swaps.
	Installs, Skipped, Revalidated, Invalidated atomic.Uint64
	// Forgets counts the deletions Forget issued (a system call each);
	// the rest were keys known to have no entry.
	Forgets atomic.Uint64
	// absentEgress and absentIngress are the keys known to have no entry.
	absentEgress, absentIngress absent
	merged                      [NumCounters]uint64 // what Merge has added so far
	failed                      atomic.Bool         // a generation could not be set: nothing is replayed
}

type port struct {
	ifindex          uint32
	hostMAC, instMAC [6]byte
}

type hop struct {
	ifindex    uint32
	dmac, smac [6]byte
}

var _ dataplane.FlowCache = (*FastPath)(nil)

// Probe loads the programs into the kernel and unloads them: whether this
// machine can run the fast path (root, BPF, the verifier accepting them).
func Probe() error {
	if os.Geteuid() != 0 {
		return errors.New("the fast path needs root to load BPF programs")
	}
	var objs fastpathObjects
	if err := loadFastpathObjects(&objs, nil); err != nil {
		return fmt.Errorf("the kernel refused the fast path's BPF programs: %w", err)
	}
	return objs.Close()
}

// Load loads the programs and attaches the wire program to the device
// holding cfg.Underlay in this network namespace.
func Load(cfg Config) (*FastPath, error) {
	if cfg.WirePort == 0 {
		cfg.WirePort = 6081
	}
	if cfg.MTU == 0 {
		cfg.MTU = dataplane.DefaultMTU
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("fastpath: loading BPF programs needs root")
	}
	dev, err := deviceOf(cfg.Underlay)
	if err != nil {
		return nil, err
	}
	if dev.Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("fastpath: the underlay address %v is on the loopback device %s: the fast path redirects to a real or veth underlay device", cfg.Underlay, dev.Name)
	}
	f := &FastPath{cfg: cfg, wireIndex: dev.Index, links: map[uint64]link.Link{}, want: make(chan netip.Addr, 64)}
	f.ports.Store(&map[uint64]port{})
	f.hops.Store(&map[netip.Addr]hop{})
	if err := loadFastpathObjects(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("fastpath: the kernel refused the BPF programs: %w", err)
	}
	if err := errors.Join(f.setGeneration(currentGen, 0), f.setGeneration(nextGen, 0)); err != nil {
		f.objs.Close()
		return nil, err
	}
	f.wireLink, err = link.AttachTCX(link.TCXOptions{Interface: dev.Index, Program: f.objs.FromWire, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		f.objs.Close()
		return nil, fmt.Errorf("fastpath: attaching to the underlay device %s: %w", dev.Name, err)
	}
	return f, nil
}

// deviceOf finds the interface holding addr.
func deviceOf(addr netip.Addr) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("fastpath: %w", err)
	}
	for i := range ifs {
		as, _ := ifs[i].Addrs()
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
					return &ifs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("fastpath: no interface in this namespace has the underlay address %v", addr)
}

// WireIndex is the ifindex of the underlay device the wire program is on.
func (f *FastPath) WireIndex() int { return f.wireIndex }

// Publisher returns what tables.OnPublish should call with each snapshot
// before it is published: it re-decides the entries of the snapshot in
// force with the new one (Revalidate), stamping those decided the same with
// the new generation, then makes the new generation the one the programs
// accept — every entry not re-decided misses from then on. Flows the
// change does not affect stay in the kernel across the swap; none is
// replayed from a snapshot no longer in force.
func (f *FastPath) Publisher(p *dataplane.Plane) func(*tables.Snapshot) {
	return func(s *tables.Snapshot) {
		if err := f.setGeneration(nextGen, s.Generation()); err != nil {
			f.Generation(s.Generation())
			return
		}
		f.Revalidate(p, s)
		f.Generation(s.Generation())
	}
}

// The generation map's slots (bpf/fastpath.c).
const (
	currentGen = 0
	nextGen    = 1
)

// Generation sets the snapshot generation entries must carry to be
// replayed (Publisher calls it before each snapshot is published).
// If the kernel refuses (it should not), the fast path stops replaying
// anything rather than replay decisions of an older snapshot.
func (f *FastPath) Generation(gen uint64) {
	err := f.setGeneration(currentGen, gen)
	if err == nil {
		err = f.setGeneration(nextGen, gen)
	}
	if err != nil {
		f.cfg.Log.Error("fast path: cannot set the snapshot generation; replaying nothing from now on", "err", err)
		f.failed.Store(true)
		// No entry carries it.
		_ = f.setGeneration(currentGen, ^uint64(0))
		_ = f.setGeneration(nextGen, ^uint64(0))
	}
}

func (f *FastPath) setGeneration(slot uint32, gen uint64) error {
	if err := f.objs.Generation.Update(slot, gen, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("fastpath: setting the generation: %w", err)
	}
	return nil
}

// AddPort attaches the instance program to the host end (ifindex) of ENI
// eni's veth.
func (f *FastPath) AddPort(eni uint64, ifindex int, hostMAC, instMAC net.HardwareAddr) error {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: f.objs.FromInstance, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("fastpath: attaching to eni-%016x's veth: %w", eni, err)
	}
	var p port
	p.ifindex = uint32(ifindex)
	copy(p.hostMAC[:], hostMAC)
	copy(p.instMAC[:], instMAC)
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.links[eni]; ok {
		old.Close()
	}
	f.links[eni] = l
	next := map[uint64]port{}
	for k, v := range *f.ports.Load() {
		next[k] = v
	}
	next[eni] = p
	f.ports.Store(&next)
	return nil
}

// RemovePort detaches from ENI eni's veth. Entries for it are stale by
// the next snapshot (the ENI left it) and go with the LRU.
func (f *FastPath) RemovePort(eni uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.links[eni]; ok {
		l.Close()
		delete(f.links, eni)
	}
	next := map[uint64]port{}
	for k, v := range *f.ports.Load() {
		if k != eni {
			next[k] = v
		}
	}
	f.ports.Store(&next)
}

// Close detaches everything and unloads the programs.
func (f *FastPath) Close() error {
	f.mu.Lock()
	for eni, l := range f.links {
		l.Close()
		delete(f.links, eni)
	}
	f.mu.Unlock()
	err := f.wireLink.Close()
	return errors.Join(err, f.objs.Close())
}

// native reads network-order bytes as the programs see them in memory.
func native32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
func native16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }

func monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // bpf_ktime_get_ns's clock
	return uint64(ts.Nano())
}

// Egress implements dataplane.FlowCache: it installs the entry that
// replays an egress decision for the rest of the flow.
func (f *FastPath) Egress(snap *tables.Snapshot, from *dataplane.Attachment, r *dataplane.Result) {
	if k, e, ok := f.egressEntry(snap, from, r); ok && f.objs.EgressFlows.Update(&k, &e, ebpf.UpdateAny) == nil {
		f.absentEgress.installed(k.hash())
		f.Installs.Add(1)
	}
}

// egressEntry is the entry replaying decision r for from's packet r.Inner.
func (f *FastPath) egressEntry(snap *tables.Snapshot, from *dataplane.Attachment, r *dataplane.Result) (fastpathEgressKey, fastpathEgressEntry, bool) {
	ports := *f.ports.Load()
	src, ok := ports[from.ENI]
	pkt := r.Inner
	if !ok || len(pkt) < 24 {
		return fastpathEgressKey{}, fastpathEgressEntry{}, false
	}
	k := fastpathEgressKey{Ifindex: src.ifindex, Saddr: native32(pkt[12:]), Daddr: native32(pkt[16:]), Sport: native16(pkt[20:]), Dport: native16(pkt[22:]), Proto: pkt[9]}
	e := fastpathEgressEntry{Gen: snap.Generation(), Expires: monotonic() + uint64(f.cfg.Lifetime), Mtu: uint16(f.cfg.MTU)}
	if r.RouterHop {
		e.DecTtl = 1
	}
	switch r.Verdict {
	case datapath.Forwarded:
		if len(r.Payload) < geneveLen || r.Payload[0] != 2 {
			return k, e, false
		}
		h, ok := (*f.hops.Load())[r.Dst]
		if !ok {
			f.Skipped.Add(1)
			select {
			case f.want <- r.Dst:
			default:
			}
			return k, e, false
		}
		e.Action, e.Ifindex, e.Dmac, e.Smac = actEncap, h.ifindex, h.dmac, h.smac
		e.OuterSrc, e.OuterDst = native32(f.cfg.Underlay.AsSlice()), native32(r.Dst.AsSlice())
		e.SrcPort, e.DstPort = bits.ReverseBytes16(r.SrcPort), bits.ReverseBytes16(f.cfg.WirePort)
		copy(e.Geneve[:], r.Payload[:geneveLen])
	case datapath.Delivered:
		dst, ok := ports[r.To.ENI]
		if !ok {
			return k, e, false
		}
		e.Action, e.Ifindex, e.Dmac, e.Smac = actDeliver, dst.ifindex, dst.instMAC, dst.hostMAC
	default:
		return k, e, false
	}
	return k, e, true
}

// Ingress implements dataplane.FlowCache: it installs the entry that
// replays a delivery from the wire for the rest of the flow.
func (f *FastPath) Ingress(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *dataplane.Result) {
	if k, e, ok := f.ingressEntry(snap, outerSrc, payload, r); ok && f.objs.IngressFlows.Update(&k, &e, ebpf.UpdateAny) == nil {
		f.absentIngress.installed(k.hash())
		f.Installs.Add(1)
	}
}

func (f *FastPath) ingressEntry(snap *tables.Snapshot, outerSrc netip.Addr, payload []byte, r *dataplane.Result) (fastpathIngressKey, fastpathIngressEntry, bool) {
	if r.Verdict != datapath.Delivered || len(payload) < geneveLen || payload[0] != 2 || !outerSrc.Is4() {
		return fastpathIngressKey{}, fastpathIngressEntry{}, false
	}
	dst, ok := (*f.ports.Load())[r.To.ENI]
	pkt := r.Packet
	if !ok || len(pkt) < 24 {
		return fastpathIngressKey{}, fastpathIngressEntry{}, false
	}
	k := fastpathIngressKey{OuterSrc: native32(outerSrc.AsSlice()), Vni: r.VNI, Svni: uint32(payload[12])<<16 | uint32(payload[13])<<8 | uint32(payload[14]),
		Saddr: native32(pkt[12:]), Daddr: native32(pkt[16:]), Sport: native16(pkt[20:]), Dport: native16(pkt[22:]), Proto: pkt[9]}
	e := fastpathIngressEntry{Gen: snap.Generation(), Expires: monotonic() + uint64(f.cfg.Lifetime), Ifindex: dst.ifindex,
		OuterDst: native32(f.cfg.Underlay.AsSlice()), DstPort: bits.ReverseBytes16(f.cfg.WirePort), Dmac: dst.instMAC, Smac: dst.hostMAC}
	copy(e.Geneve[:], payload[:geneveLen])
	return k, e, true
}

// ForgetEgress implements dataplane.FlowCache: the Go story decided a
// packet of from's differently from what the cache may replay; its entry
// (if any) goes.
func (f *FastPath) ForgetEgress(from *dataplane.Attachment, r *dataplane.Result) {
	src, ok := (*f.ports.Load())[from.ENI]
	if pkt := r.Inner; ok && len(pkt) >= 24 {
		k := fastpathEgressKey{Ifindex: src.ifindex, Saddr: native32(pkt[12:]), Daddr: native32(pkt[16:]), Sport: native16(pkt[20:]), Dport: native16(pkt[22:]), Proto: pkt[9]}
		if h := k.hash(); !f.absentEgress.known(h) {
			// Only the deletion's key escapes to the heap: every packet builds k.
			del := k
			_ = f.objs.EgressFlows.Delete(&del) // ErrKeyNotExist: nearly always
			f.absentEgress.deleted(h)
			f.Forgets.Add(1)
		}
	}
}

// ForgetIngress implements dataplane.FlowCache for the wire.
func (f *FastPath) ForgetIngress(outerSrc netip.Addr, payload []byte, r *dataplane.Result) {
	if pkt := r.Inner; len(payload) >= geneveLen && outerSrc.Is4() && len(pkt) >= 24 {
		k := fastpathIngressKey{OuterSrc: native32(outerSrc.AsSlice()), Vni: r.VNI, Svni: uint32(payload[12])<<16 | uint32(payload[13])<<8 | uint32(payload[14]),
			Saddr: native32(pkt[12:]), Daddr: native32(pkt[16:]), Sport: native16(pkt[20:]), Dport: native16(pkt[22:]), Proto: pkt[9]}
		if h := k.hash(); !f.absentIngress.known(h) {
			del := k
			_ = f.objs.IngressFlows.Delete(&del)
			f.absentIngress.deleted(h)
			f.Forgets.Add(1)
		}
	}
}

// Counters sums the programs' per-CPU counters.
func (f *FastPath) Counters() ([NumCounters]uint64, error) {
	var out [NumCounters]uint64
	var per []uint64
	for i := range out {
		if err := f.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return out, fmt.Errorf("fastpath: reading counters: %w", err)
		}
		for _, v := range per {
			out[i] += v
		}
	}
	return out, nil
}

// Merge adds what the programs counted since the last Merge to the data
// plane's counters, so metrics and the differential tests see one count
// whichever path carried a packet.
func (f *FastPath) Merge(p *dataplane.Plane) error {
	c, err := f.Counters()
	if err != nil {
		return err
	}
	d := func(i int) uint64 { n := c[i] - f.merged[i]; f.merged[i] = c[i]; return n }
	fwd, local, in := d(CEgressForwarded), d(CEgressDelivered), d(CIngressDelivered)
	p.Counters[datapath.Forwarded].Add(fwd)
	// A local delivery is counted once as Delivered, as the Go story counts it.
	p.Counters[datapath.Delivered].Add(local + in)
	p.FromWire[datapath.Delivered].Add(in)
	return nil
}

// MergeInterval is how often the programs' counters are added to the data
// plane's: how far behind the metrics may be.
const MergeInterval = 100 * time.Millisecond

// Run resolves next hops (every second, and at once when one is wanted),
// merges counters into p every MergeInterval and the entries' packets and
// bytes into p's flow records every second, until ctx ends.
func (f *FastPath) Run(ctx context.Context, p *dataplane.Plane) error {
	merge, resolve := time.NewTicker(MergeInterval), time.NewTicker(time.Second)
	defer merge.Stop()
	defer resolve.Stop()
	flows := newFlowMerger(p)
	defer flows.release(p)
	for {
		select {
		case <-ctx.Done():
			_ = f.Merge(p)
			flows.merge(f, p)
			return nil
		case dst := <-f.want:
			f.resolve(dst)
		case <-resolve.C:
			for dst := range *f.hops.Load() {
				f.resolve(dst)
			}
			flows.merge(f, p)
		case <-merge.C:
			if err := f.Merge(p); err != nil {
				f.cfg.Log.Error("fast path counters", "err", err)
			}
		}
	}
}

// resolve finds the device and MACs a packet to dst leaves by, from the
// routing and neighbour tables; a next hop without a neighbour entry yet
// stays unknown (the Go path's packet makes the kernel resolve it).
func (f *FastPath) resolve(dst netip.Addr) {
	h, ok := lookupHop(dst)
	cur := *f.hops.Load()
	if old, had := cur[dst]; had == ok && old == h {
		return
	}
	next := make(map[netip.Addr]hop, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if ok {
		next[dst] = h
	} else {
		delete(next, dst)
	}
	f.hops.Store(&next)
}
