// Package servicenode is where gateway-endpoint traffic ends: it takes
// Geneve packets with the EndpointID option from the edges, terminates
// their TCP on a userspace stack of the endpoint's own — so two VPCs with
// the same CIDR and the same instance address never share a connection
// table — and hands each connection to a TCP backend (the object store,
// or any TCP service) with a PROXY v2 header that says where it really
// came from: the instance's private address and the vpce-… id. Replies
// go back to the edge encapsulated the same way, endpoint id on.
//
//	wire → parse → known edge → endpoint → service address → the endpoint's stack
//	the endpoint's stack → encapsulate (VNI, SourceVPC, EndpointID) → the edge
package servicenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/underlay"
	"github.com/openvpc/openvpc/vpceproxy"
)

// Endpoint is what the node knows of a gateway endpoint.
type Endpoint struct {
	ID  uint64 // vpce-…
	VNI uint32 // its VPC's VNI: packets for it carry no other
	VPC uint64 // vpc-…
}

// Config is what a service node needs. Field comments are the user docs.
type Config struct {
	// Wire is the underlay the node exchanges Geneve with edges on.
	Wire underlay.Conn
	// WirePort is the UDP port edges receive Geneve on (default 6081).
	WirePort uint16
	// Addrs are the service's addresses (its prefix list's), which every
	// endpoint's stack answers on.
	Addrs []netip.Addr
	// Backends maps a service port to the address of what serves it —
	// host:port for TCP, unix:/path for a unix socket (best: a directory
	// only the service's user can enter, since the backend believes the
	// header); each connection gets a vpceproxy header first.
	Backends map[uint16]string
	// MaxConns bounds the connections one endpoint may have open at once
	// (default 1024): more are refused (counted in Refused), so one VPC
	// cannot take every file descriptor of the node.
	MaxConns int
	// IdleTimeout closes a proxied connection on which nothing moved
	// either way for this long (default 5m).
	IdleTimeout time.Duration
	// Endpoint returns the endpoint with id, if it exists: packets for any
	// other are dropped, and a stack whose endpoint is gone is closed.
	Endpoint func(id uint64) (Endpoint, bool)
	// Edge reports whether addr is an edge serving endpoints: only those
	// may send to the node.
	Edge func(addr netip.Addr) bool
	// MTU of the endpoint stacks (default 1400: the instance's path MTU
	// through an edge).
	MTU int
	// Sweep is how often stacks of deleted endpoints are closed (default 2s).
	Sweep time.Duration
	// Events receives one call per packet from a sender that is no edge;
	// it must not block.
	Events func(datapath.Event)
	Log    *slog.Logger
}

// Node is a running service node.
type Node struct {
	cfg Config
	// Counters count the wire story's verdicts: Delivered (into an
	// endpoint's stack), UnknownSender, NoRoute (no such endpoint, or not
	// a service address), Malformed.
	In datapath.Counters
	// Out counts packets sent back to edges.
	Out atomic.Uint64
	// Conns counts connections handed to a backend; BackendErrors those
	// whose backend could not be reached; Refused those over MaxConns;
	// Idle those closed after IdleTimeout.
	Conns, BackendErrors, Refused, Idle atomic.Uint64

	mu     sync.Mutex
	stacks map[uint64]*stack
	ctx    context.Context
	g      *errgroup.Group
}

// stack is one endpoint's TCP/IP stack.
type stack struct {
	ep   Endpoint
	dev  tun.Device
	net  *netstack.Net
	edge atomic.Pointer[netip.Addr] // where replies go: the edge that sent last
	ls   []net.Listener
	// quiet is closed when the stack starts closing: its reader then
	// drains whatever the stack still sends, so that no send of the
	// stack's is pending when the device closes (closing it under a
	// pending send panics in netstack).
	quiet    chan struct{}
	lastRead atomic.Int64 // unix nanoseconds of the reader's last packet

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	clients int // accepted connections open, ≤ Config.MaxConns
}

// New checks cfg and returns a node; Run serves it.
func New(cfg Config) (*Node, error) {
	if cfg.Wire == nil || cfg.Endpoint == nil || cfg.Edge == nil {
		return nil, errors.New("servicenode: Wire, Endpoint and Edge are required")
	}
	if len(cfg.Addrs) == 0 || len(cfg.Backends) == 0 {
		return nil, errors.New("servicenode: give the service's addresses and at least one backend port")
	}
	for _, a := range cfg.Addrs {
		if !a.Is4() {
			return nil, fmt.Errorf("servicenode: service address %v is not IPv4", a)
		}
	}
	if cfg.WirePort == 0 {
		cfg.WirePort = underlay.Port
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1400
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = 2 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.Events == nil {
		cfg.Events = func(datapath.Event) {}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Node{cfg: cfg, stacks: map[uint64]*stack{}}, nil
}

// Run serves until ctx ends or the wire is closed; it closes every stack
// before it returns.
func (n *Node) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	n.mu.Lock()
	n.ctx, n.g = ctx, g
	n.mu.Unlock()
	g.Go(func() error {
		<-ctx.Done()
		n.cfg.Wire.Close()
		return nil
	})
	g.Go(func() error {
		t := time.NewTicker(n.cfg.Sweep)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				n.sweep()
			}
		}
	})
	g.Go(func() error {
		err := n.serveWire()
		n.mu.Lock()
		for id, s := range n.stacks {
			s.close()
			delete(n.stacks, id)
		}
		n.mu.Unlock()
		return err
	})
	return g.Wait()
}

// serveWire runs the wire story for every datagram until the wire closes.
func (n *Node) serveWire() error {
	wire := n.cfg.Wire
	ds := make([]underlay.Datagram, max(1, wire.BatchSize()))
	for i := range ds {
		ds[i].Buf = make([]byte, underlay.MaxPayload)
	}
	var retry datapath.Retry
	var e packet.Encap
	bufs := make([][]byte, 1)
	for {
		k, err := wire.ReadBatch(ds)
		if err != nil {
			if retry.Again(err) {
				continue
			}
			return nil
		}
		retry.Reset()
		for i := range k {
			d := &ds[i]
			s, v := n.classify(d.Peer.Addr(), d.Payload(), &e)
			n.In.Add(v)
			if v != datapath.Delivered {
				continue
			}
			// Hand the inner packet to the endpoint's stack; it copies it.
			bufs[0] = e.Inner
			_, _ = s.dev.Write(bufs, 0)
		}
	}
}

// classify is the wire story: which endpoint's stack a datagram from
// peer goes to.
func (n *Node) classify(peer netip.Addr, payload []byte, e *packet.Encap) (*stack, datapath.Verdict) {
	if !packet.ParseGenevePayload(payload, e) {
		return nil, datapath.Malformed
	}
	if !n.cfg.Edge(peer) {
		n.cfg.Events(datapath.Event{Verdict: datapath.UnknownSender, OuterSrc: peer, OuterDst: n.cfg.Wire.LocalAddr(),
			InnerSrc: e.Inner.Src(), InnerDst: e.Inner.Dst(), ClaimedVNI: e.Options.SourceVNI})
		return nil, datapath.UnknownSender
	}
	if !e.Options.HasEndpoint {
		return nil, datapath.NoRoute
	}
	ep, ok := n.cfg.Endpoint(e.Options.EndpointID)
	if !ok || ep.VNI != e.VNI || e.Options.SourceVNI != e.VNI || !n.isService(e.Inner.Dst()) {
		return nil, datapath.NoRoute
	}
	s, err := n.stackFor(ep)
	if err != nil {
		n.cfg.Log.Warn("service node: no stack for endpoint", "endpoint", model.FormatID(model.KindEndpoint, ep.ID), "err", err)
		return nil, datapath.NoRoute
	}
	if e := s.edge.Load(); e == nil || *e != peer {
		p := peer // a copy escapes only when the edge changes, not per packet
		s.edge.Store(&p)
	}
	return s, datapath.Delivered
}

func (n *Node) isService(a netip.Addr) bool {
	for _, s := range n.cfg.Addrs {
		if s == a {
			return true
		}
	}
	return false
}

// stackFor returns the endpoint's stack, starting it on first use.
func (n *Node) stackFor(ep Endpoint) (*stack, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.stacks[ep.ID]; s != nil && s.ep == ep {
		return s, nil
	} else if s != nil {
		n.closeLater(s) // the id came back for another VPC: never share its connections
		delete(n.stacks, ep.ID)
	}
	if n.ctx == nil || n.ctx.Err() != nil {
		return nil, errors.New("not running")
	}
	dev, tnet, err := netstack.CreateNetTUN(n.cfg.Addrs, nil, n.cfg.MTU)
	if err != nil {
		return nil, err
	}
	s := &stack{ep: ep, dev: dev, net: tnet, quiet: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	for port, backend := range n.cfg.Backends {
		for _, a := range n.cfg.Addrs {
			l, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(a, port))
			if err != nil {
				s.close()
				return nil, err
			}
			s.ls = append(s.ls, l)
			n.g.Go(func() error { n.accept(s, l, backend); return nil })
		}
	}
	n.g.Go(func() error { n.replies(s); return nil })
	n.stacks[ep.ID] = s
	n.cfg.Log.Info("service node: endpoint stack up", "endpoint", model.FormatID(model.KindEndpoint, ep.ID), "vni", ep.VNI)
	return s, nil
}

// replyBuffers is how many packets an endpoint's stack may have queued
// for the wire: the reader stops taking more until the writer catches up.
const replyBuffers = 256

// replies carries what the endpoint's stack sends back to the edge,
// encapsulated in the endpoint's VPC with the endpoint id on. The stack
// hands out one packet per Read, so a reader queues them and a writer
// sends whatever is queued as one batch: one system call for many
// packets, as the edge's own loops do.
func (n *Node) replies(s *stack) {
	free := make(chan []byte, replyBuffers)
	for range replyBuffers {
		free <- make([]byte, packet.Headroom+n.cfg.MTU+64)
	}
	queued := make(chan []byte, replyBuffers)
	go func() {
		defer close(queued)
		sizes, bufs := []int{0}, [][]byte{nil}
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-s.quiet:
				s.drain(bufs, sizes)
				return
			}
			bufs[0] = buf
			k, err := s.dev.Read(bufs, sizes, packet.Headroom)
			if err != nil {
				return // closed
			}
			s.lastRead.Store(time.Now().UnixNano())
			if k == 0 {
				free <- buf
				continue
			}
			select {
			case queued <- buf[:packet.Headroom+sizes[0]]:
			case <-s.quiet:
				s.drain(bufs, sizes)
				return
			}
		}
	}()
	bs := max(1, n.cfg.Wire.BatchSize())
	ds := make([]underlay.Datagram, 0, bs)
	bufs := make([][]byte, 0, bs)
	opts := packet.GeneveOptions{SourceVNI: s.ep.VNI, HasEndpoint: true, EndpointID: s.ep.ID}
	for buf := range queued {
		bufs = append(bufs[:0], buf)
	drain:
		for len(bufs) < bs {
			select {
			case b, ok := <-queued:
				if !ok {
					break drain
				}
				bufs = append(bufs, b)
			default:
				break drain
			}
		}
		edge := s.edge.Load()
		ds = ds[:0]
		for _, b := range bufs {
			size := len(b) - packet.Headroom
			pkt := packet.IPv4(b[packet.Headroom:])
			if edge == nil || !pkt.Valid() {
				continue
			}
			start, ok := packet.EncapsulateGeneve(b[:cap(b)], size, s.ep.VNI, opts)
			if !ok {
				continue
			}
			ds = append(ds, underlay.Datagram{Buf: b, Off: start, Len: packet.Headroom + size - start,
				Peer: netip.AddrPortFrom(*edge, n.cfg.WirePort), SrcPort: packet.SourcePort(packet.FlowHash(pkt))})
		}
		if len(ds) > 0 {
			k, _ := n.cfg.Wire.WriteBatch(ds)
			n.Out.Add(uint64(k))
		}
		for _, b := range bufs {
			free <- b[:cap(b)]
		}
	}
}

// accept hands every connection on l to backend.
func (n *Node) accept(s *stack, l net.Listener, backend string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		switch s.admit(c, n.cfg.MaxConns) {
		case closed:
			c.Close()
			return
		case full:
			c.Close()
			if r := n.Refused.Add(1); r&(r-1) == 0 { // log the 1st, 2nd, 4th, … refusal, not a flood
				n.cfg.Log.Warn("service node: endpoint at its connection limit; refusing", "endpoint", model.FormatID(model.KindEndpoint, s.ep.ID), "limit", n.cfg.MaxConns, "refused", r)
			}
			continue
		}
		n.g.Go(func() error { n.proxy(s, c, backend); return nil })
	}
}

// proxy connects c to backend, the PROXY header first, and copies both
// ways until either side ends.
func (n *Node) proxy(s *stack, c net.Conn, backend string) {
	defer s.release(c)
	src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	dst, _ := netip.ParseAddrPort(c.LocalAddr().String())
	o := vpceproxy.Origin{Source: src, Dest: dst, Endpoint: model.FormatID(model.KindEndpoint, s.ep.ID), VPC: model.FormatID(model.KindVPC, s.ep.VPC)}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	network, addr := "tcp", backend
	if p, ok := strings.CutPrefix(backend, "unix:"); ok {
		network, addr = "unix", p
	}
	b, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	cancel()
	if err != nil {
		n.BackendErrors.Add(1)
		n.cfg.Log.Warn("service node: backend unreachable", "backend", backend, "err", err)
		return
	}
	if !s.track(b) {
		b.Close()
		return
	}
	defer s.untrack(b)
	if err := vpceproxy.Write(b, o); err != nil {
		return
	}
	n.Conns.Add(1)
	var last atomic.Int64 // when anything last moved, either way (unix nanoseconds)
	last.Store(time.Now().UnixNano())
	done := make(chan bool, 2)
	pipe := func(dst, src net.Conn) {
		idle := n.copyIdle(dst, src, &last)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && !idle {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
			src.Close() // idle: the other direction ends too
		}
		done <- idle
	}
	go pipe(b, c)
	go pipe(c, b)
	if i1, i2 := <-done, <-done; i1 || i2 {
		n.Idle.Add(1)
	}
}

// copyIdle copies src to dst until src ends, or until nothing moved
// either way for IdleTimeout (true): a read deadline that each direction
// pushes on while the other is busy, so a long download with a silent
// client is not idle.
func (n *Node) copyIdle(dst, src net.Conn, last *atomic.Int64) (idle bool) {
	buf := make([]byte, 32<<10)
	var deadline int64
	slack := int64(min(time.Second, n.cfg.IdleTimeout/4))
	for {
		// Move the deadline only when it is stale by some slack: not a
		// timer reset per read on a busy connection.
		if d := last.Load() + int64(n.cfg.IdleTimeout); d-deadline > slack {
			_ = src.SetReadDeadline(time.Unix(0, d))
			deadline = d
		}
		k, err := src.Read(buf)
		if k > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return false
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(time.Unix(0, last.Load())) < n.cfg.IdleTimeout {
					deadline = 0 // the other direction moved meanwhile: a new deadline from then
					continue
				}
				return true
			}
			return false
		}
	}
}

type admission uint8

const (
	admitted admission = iota
	full               // at MaxConns
	closed             // the stack is closed
)

// admit tracks an accepted connection if the endpoint has room for it.
func (s *stack) admit(c net.Conn, limit int) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.conns == nil:
		return closed
	case s.clients >= limit:
		return full
	}
	s.clients++
	s.conns[c] = struct{}{}
	return admitted
}

// release untracks an admitted connection and frees its place.
func (s *stack) release(c net.Conn) {
	s.untrack(c)
	s.mu.Lock()
	s.clients--
	s.mu.Unlock()
}

// track remembers a connection of the stack, so that closing the stack
// (its endpoint deleted) cuts it; false if the stack is closed already.
func (s *stack) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *stack) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// drain reads and drops what the closing stack still sends, until the
// device is closed.
func (s *stack) drain(bufs [][]byte, sizes []int) {
	bufs[0] = make([]byte, packet.Headroom+64<<10)
	for {
		if _, err := s.dev.Read(bufs, sizes, packet.Headroom); err != nil {
			return
		}
		s.lastRead.Store(time.Now().UnixNano())
	}
}

// Closing waits for the stack to go quiet — no packet for quietFor,
// at most quietMax — between cutting its connections and closing it.
const (
	quietFor = 20 * time.Millisecond
	quietMax = 500 * time.Millisecond
)

// close cuts the stack's listeners and connections, lets the stack go
// quiet (their resets and FINs drained), then closes the device. It
// takes up to quietMax: callers holding Node.mu run it in the background.
func (s *stack) close() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	if conns == nil {
		return // closed already
	}
	for _, l := range s.ls {
		l.Close()
	}
	for c := range conns {
		c.Close()
	}
	close(s.quiet)
	start := time.Now()
	s.lastRead.Store(start.UnixNano())
	for time.Since(start) < quietMax && time.Since(time.Unix(0, s.lastRead.Load())) < quietFor {
		time.Sleep(quietFor / 4)
	}
	s.dev.Close()
}

// closeLater closes s off the caller's lock, inside the node's group so
// Run waits for it.
func (n *Node) closeLater(s *stack) {
	n.g.Go(func() error { s.close(); return nil })
}

// sweep closes the stacks of endpoints that are gone, with their
// connections: deleting an endpoint cuts what went through it.
func (n *Node) sweep() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, s := range n.stacks {
		if ep, ok := n.cfg.Endpoint(id); !ok || ep != s.ep {
			n.cfg.Log.Info("service node: endpoint gone, stack closed", "endpoint", model.FormatID(model.KindEndpoint, id))
			n.closeLater(s)
			delete(n.stacks, id)
		}
	}
}

// Endpoints returns how many endpoint stacks are up.
func (n *Node) Endpoints() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.stacks)
}
