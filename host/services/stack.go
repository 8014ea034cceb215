// Package services is what a host answers for its instances itself, as
// AWS's Nitro does: the VPC resolver and the instance metadata service,
// on one userspace stack per VPC that holds their addresses.
package services

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/packet"
)

// DefaultRegion is the region in private DNS names when the host's config
// names none: ip-10-0-1-4.openvpc.compute.internal.
const DefaultRegion = "openvpc"

// Identity is what the metadata service tells an instance about itself.
type Identity struct {
	InstanceID string // i-…
	Name       string // the instance's name, "" if it has none
	ENI        uint64
	MAC        [6]byte
	IP         netip.Addr
	PublicIP   netip.Addr // its Elastic IP, if it has one
	SubnetID   uint64
	SubnetCIDR netip.Prefix
	VPCID      uint64
	VPCCIDR    netip.Prefix
	Groups     []uint64 // security groups
	// RequireToken refuses IMDSv1 for this instance (instance modify
	// --imds-v1 required-token).
	RequireToken bool
	// UserData is served at /latest/user-data; nil: none (404 there).
	UserData []byte
}

// Config is what one VPC's services stack needs.
type Config struct {
	// VNI and CIDR are the VPC's: the resolver answers at CIDR's base+2.
	VNI  uint32
	CIDR netip.Prefix
	// Region is the region in private names (default DefaultRegion).
	Region string
	// Tables is the host's cache: names are answered from it alone.
	Tables *tables.Tables
	// Identity returns who the local instance with address ip in this VPC
	// is; the metadata service answers only for those it knows.
	Identity func(ip netip.Addr) (Identity, bool)
	// Upstream returns where to forward names the resolver does not own
	// (ip:port), "" for nowhere: they get NXDOMAIN. Nil: nowhere.
	Upstream func() string
	// RequireToken refuses IMDSv1 (GETs without a session token) for
	// every instance; Identity.RequireToken for one.
	RequireToken bool
	// TokenHopLimit is the IP TTL of the IMDSv2 token's response (default
	// DefaultTokenHopLimit, AWS's); other responses leave with the stack's
	// default TTL.
	TokenHopLimit int
	// MTU of the stack (default dataplane.DefaultMTU).
	MTU int
	Log *slog.Logger
}

// Stack is a VPC's host services port (a datapath.Port the data plane
// writes the instances' packets for the services to) and the servers on it.
type Stack struct {
	cfg      Config
	resolver netip.Addr
	dev      tun.Device
	net      *netstack.Net

	dns  []*dns.Server
	http *http.Server
	imds *metadata
	fwd  *forwarder
	wg   sync.WaitGroup
	once sync.Once

	// Counters of the resolver: queries handled, those answered with
	// records, NXDOMAIN, sent to the upstream, and datagrams or messages
	// that were no DNS query at all (dropped).
	Queries, Answered, NXDomain, Forwarded, Malformed atomic.Uint64
}

// DNSCounts is a snapshot of a resolver's counters.
type DNSCounts struct{ Queries, Answered, NXDomain, Forwarded, Malformed uint64 }

// Counts returns the resolver's counters.
func (s *Stack) Counts() DNSCounts {
	return DNSCounts{s.Queries.Load(), s.Answered.Load(), s.NXDomain.Load(), s.Forwarded.Load(), s.Malformed.Load()}
}

// Add adds o to c.
func (c *DNSCounts) Add(o DNSCounts) {
	c.Queries += o.Queries
	c.Answered += o.Answered
	c.NXDomain += o.NXDomain
	c.Forwarded += o.Forwarded
	c.Malformed += o.Malformed
}

// New starts the services of one VPC on a stack of their own.
func New(cfg Config) (*Stack, error) {
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.TokenHopLimit == 0 {
		cfg.TokenHopLimit = DefaultTokenHopLimit
	}
	if cfg.MTU == 0 {
		cfg.MTU = dataplane.DefaultMTU
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Tables == nil || cfg.Identity == nil || !cfg.CIDR.Addr().Is4() {
		return nil, errors.New("services: a stack needs the cache, an identity function and the VPC's IPv4 CIDR")
	}
	s := &Stack{cfg: cfg, resolver: model.Resolver(cfg.CIDR), fwd: newForwarder()}
	var err error
	s.dev, s.net, err = netstack.CreateNetTUN([]netip.Addr{s.resolver, dataplane.ResolverLinkLocal, dataplane.MetadataAddr}, nil, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("services: stack for VNI %d: %w", cfg.VNI, err)
	}
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start listens on the service addresses and serves each in a goroutine
// that Close ends and waits for.
func (s *Stack) start() error {
	for _, a := range []netip.Addr{s.resolver, dataplane.ResolverLinkLocal} {
		at := netip.AddrPortFrom(a, dataplane.DNSPort)
		pc, err := s.net.ListenUDPAddrPort(at)
		if err != nil {
			return fmt.Errorf("services: resolver on UDP %v: %w", at, err)
		}
		l, err := s.net.ListenTCPAddrPort(at)
		if err != nil {
			pc.Close()
			return fmt.Errorf("services: resolver on TCP %v: %w", at, err)
		}
		bad := func([]byte, error) { s.Malformed.Add(1) }
		s.dns = append(s.dns, &dns.Server{PacketConn: pc, Handler: s, MsgInvalidFunc: bad}, &dns.Server{Listener: l, Handler: s, MsgInvalidFunc: bad})
	}
	at := netip.AddrPortFrom(dataplane.MetadataAddr, dataplane.MetadataPort)
	l, err := s.net.ListenTCPAddrPort(at)
	if err != nil {
		return fmt.Errorf("services: metadata on %v: %w", at, err)
	}
	s.imds = newMetadata(s)
	s.http = &http.Server{Handler: s.imds, ReadHeaderTimeout: 5 * time.Second, ConnContext: withConn}
	for _, srv := range s.dns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.ActivateAndServe() // returns when Close closes its socket
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(l)
	}()
	return nil
}

// Resolver is the VPC resolver's address in the VPC (base+2).
func (s *Stack) Resolver() netip.Addr { return s.resolver }

// Read implements datapath.Port: packets land after packet.Headroom.
func (s *Stack) Read(bufs [][]byte, sizes []int) (int, error) {
	return s.dev.Read(bufs, sizes, packet.Headroom)
}

// Write implements datapath.Port.
func (s *Stack) Write(pkts [][]byte) error {
	_, err := s.dev.Write(pkts, 0)
	return err
}

// BatchSize implements datapath.Port.
func (s *Stack) BatchSize() int { return s.dev.BatchSize() }

// Close stops the servers, waits for them, and closes the stack; a
// blocked Read returns an error.
func (s *Stack) Close() error {
	s.once.Do(func() {
		for _, srv := range s.dns {
			closeDNS(srv)
		}
		if s.http != nil {
			_ = s.http.Close()
		}
		s.wg.Wait()
		_ = s.dev.Close()
	})
	return nil
}

// closeDNS closes a DNS server's socket, which ends its serve loop.
func closeDNS(srv *dns.Server) {
	if srv.PacketConn != nil {
		_ = srv.PacketConn.Close()
	}
	if srv.Listener != nil {
		_ = srv.Listener.Close()
	}
}
