// Package internet is a small simulated internet for `openvpc up`, the demo
// and tests: public hosts, each with its own userspace TCP/IP stack, and
// the outside ports of the edges, joined by a router. Traffic for the
// Elastic IP pools goes to a live edge chosen by flow hash — what the
// edges' route announcements do on a real network — and a closed edge
// port is withdrawn at once, so flows move to the others.
//
// It lives in this process and touches no real interface: nothing sent
// into it can leave the machine.
package internet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/packet"
)

// MTU is the internet's MTU.
const MTU = 1500

// Internet is the router and its attached hosts and edges.
type Internet struct {
	pools []netip.Prefix

	mu    sync.Mutex
	hosts map[netip.Addr]tun.Device
	edges []*Port // live edge ports, in attach order
	// Dropped counts packets nobody could take (no route, no live edge, a
	// full queue).
	dropped uint64
	// readers are the public hosts' read loops; Close waits for them.
	readers sync.WaitGroup
}

// New returns an internet in which the Elastic IP pools are reached
// through the edges.
func New(pools ...netip.Prefix) *Internet {
	return &Internet{pools: pools, hosts: map[netip.Addr]tun.Device{}}
}

// AddHost attaches a public host with address ip and returns its stack, to
// dial and listen on as that host.
func (n *Internet) AddHost(ip netip.Addr) (*netstack.Net, error) {
	if n.inPool(ip) {
		return nil, fmt.Errorf("internet: %v is in an Elastic IP pool; public hosts need addresses outside %v", ip, n.pools)
	}
	dev, stack, err := netstack.CreateNetTUN([]netip.Addr{ip}, nil, MTU)
	if err != nil {
		return nil, fmt.Errorf("internet: host %v: %w", ip, err)
	}
	n.mu.Lock()
	if _, dup := n.hosts[ip]; dup {
		n.mu.Unlock()
		dev.Close()
		return nil, fmt.Errorf("internet: host %v exists", ip)
	}
	n.hosts[ip] = dev
	n.readers.Go(func() { n.readHost(dev) })
	n.mu.Unlock()
	return stack, nil
}

// readHost routes what a public host sends until it is closed.
func (n *Internet) readHost(dev tun.Device) {
	bs := max(1, dev.BatchSize())
	bufs, sizes := make([][]byte, bs), make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, MTU+packet.Headroom)
	}
	for {
		k, err := dev.Read(bufs, sizes, 0)
		if err != nil {
			return
		}
		for i := range k {
			n.route(bufs[i][:sizes[i]])
		}
	}
}

func (n *Internet) inPool(ip netip.Addr) bool {
	for _, p := range n.pools {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// route sends one packet on: to a public host, or to an edge for an
// Elastic IP. pkt is copied where it must outlive the call.
func (n *Internet) route(pkt []byte) {
	ip := packet.IPv4(pkt)
	if !ip.Valid() {
		n.drop()
		return
	}
	dst := ip.Dst()
	n.mu.Lock()
	if dev, ok := n.hosts[dst]; ok {
		n.mu.Unlock()
		if _, err := dev.Write([][]byte{pkt}, 0); err != nil {
			n.drop()
		}
		return
	}
	if !n.inPool(dst) || len(n.edges) == 0 {
		n.dropped++
		n.mu.Unlock()
		return
	}
	e := n.edges[uint64(packet.FlowHash(ip))*uint64(len(n.edges))>>32]
	n.mu.Unlock()
	select {
	case e.in <- append([]byte(nil), pkt...):
	default:
		n.drop() // the edge is not keeping up: a router queue overflows
	}
}

func (n *Internet) drop() {
	n.mu.Lock()
	n.dropped++
	n.mu.Unlock()
}

// Dropped is how many packets the internet could not deliver.
func (n *Internet) Dropped() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dropped
}

// Attach returns a new edge's outside port: from now on it takes its share
// of the traffic to the Elastic IP pools.
func (n *Internet) Attach() *Port {
	p := &Port{net: n, in: make(chan []byte, 1024), closed: make(chan struct{})}
	n.mu.Lock()
	n.edges = append(n.edges, p)
	n.mu.Unlock()
	return p
}

// Close stops every public host and waits for their read loops. Edge
// ports close with their edges.
func (n *Internet) Close() {
	n.mu.Lock()
	for ip, dev := range n.hosts {
		dev.Close()
		delete(n.hosts, ip)
	}
	n.mu.Unlock()
	n.readers.Wait()
}

// Port is an edge's outside port on the internet. It implements the
// data plane's Port: Read returns packets for the Elastic IPs, Write sends
// translated packets into the internet.
type Port struct {
	net    *Internet
	in     chan []byte
	once   sync.Once
	closed chan struct{}
}

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = fmt.Errorf("internet: port closed: %w", net.ErrClosed)

// Read implements the data plane's Port: packets land at
// bufs[i][packet.Headroom:].
func (p *Port) Read(bufs [][]byte, sizes []int) (int, error) {
	var pkt []byte
	select {
	case pkt = <-p.in:
	case <-p.closed:
		return 0, ErrClosed
	}
	k := 0
	for {
		sizes[k] = copy(bufs[k][packet.Headroom:], pkt)
		k++
		if k == len(bufs) {
			return k, nil
		}
		select {
		case pkt = <-p.in:
		default:
			return k, nil
		}
	}
}

// Write implements the data plane's Port.
func (p *Port) Write(pkts [][]byte) error {
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	for _, pkt := range pkts {
		p.net.route(pkt)
	}
	return nil
}

// BatchSize implements the data plane's Port.
func (p *Port) BatchSize() int { return 64 }

// Close withdraws the port: the internet stops sending it traffic at once,
// as when an edge's route announcement is withdrawn.
func (p *Port) Close() error {
	p.once.Do(func() {
		n := p.net
		n.mu.Lock()
		for i, e := range n.edges {
			if e == p {
				n.edges = append(n.edges[:i:i], n.edges[i+1:]...)
				break
			}
		}
		n.mu.Unlock()
		close(p.closed)
	})
	return nil
}

// Proxy is an HTTP proxy whose connections start from the public host
// stack from: point a browser or `curl -x` at it to reach Elastic IPs as
// a client on the internet would. It handles plain requests with absolute
// URLs and CONNECT tunnels.
func Proxy(from *netstack.Net) http.Handler {
	tr := &http.Transport{DialContext: from.DialContext, MaxIdleConns: 16, IdleConnTimeout: 30 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			tunnel(w, r, from)
			return
		}
		if !r.URL.IsAbs() {
			http.Error(w, "this is an HTTP proxy into openvpc's test internet: use it as one, e.g. curl -x http://"+r.Host+" http://198.51.100.1/", http.StatusBadRequest)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, "from the test internet: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

func tunnel(w http.ResponseWriter, r *http.Request, from *netstack.Net) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	up, err := from.DialContext(ctx, "tcp", r.Host)
	if err != nil {
		http.Error(w, "from the test internet: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "this connection cannot be tunneled", http.StatusInternalServerError)
		return
	}
	down, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer down.Close()
	_, _ = io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n")
	upward := make(chan struct{})
	go func() {
		defer close(upward)
		_, _ = rw.Reader.WriteTo(up)
		if c, ok := up.(interface{ CloseWrite() error }); ok {
			_ = c.CloseWrite()
		}
	}()
	_, _ = io.Copy(down, up)
	// Either side done: closing both ends the other copy, which the
	// handler waits for, so nothing it started outlives it.
	down.Close()
	up.Close()
	<-upward
}
