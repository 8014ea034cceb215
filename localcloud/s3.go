package localcloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/openvpc/openvpc/edge/internet"
	"github.com/openvpc/openvpc/objectstore"
	"github.com/openvpc/openvpc/servicenode"
	"github.com/openvpc/openvpc/underlay"
)

// The cloud's object store: a documentation address of the internet, so
// that the same store is reached privately through a gateway endpoint
// and publicly through an internet gateway, as S3 is.
var (
	// S3Addr is the store's address (port 80); S3Prefix its prefix list.
	S3Addr   = netip.MustParseAddr("203.0.113.130")
	S3Prefix = netip.PrefixFrom(S3Addr, 32)
)

// S3ServiceName is the store's service name in a local cloud.
const S3ServiceName = "com.openvpc.local.s3"

// S3Config says how to run the cloud's object store.
type S3Config struct {
	// Name is the service name (default S3ServiceName).
	Name string
	// Addr is the store's address (default S3Addr); on the internet too.
	Addr netip.Addr
	// Dir keeps the objects; "" keeps them in memory.
	Dir string
	// Node is the service node's underlay address (default .250 of the
	// cloud's underlay).
	Node netip.Addr
	// Edge is the edge whose cache tells the service node the endpoints
	// and edges (default the cloud's first edge).
	Edge *Edge
	// Internet is where the store is reached without an endpoint
	// (default the cloud's internet).
	Internet *internet.Internet
}

// S3 is the cloud's object store and its service node.
type S3 struct {
	Name  string
	Addr  netip.Addr
	Store *objectstore.Store
	Node  *servicenode.Node
	// NodeAddr is the service node's underlay address.
	NodeAddr netip.Addr
}

// AddS3 starts the object store, its service node (which learns the
// endpoints and edges from the first edge's cache) and its internet
// address, and registers the service. It needs an edge and the internet.
func (c *Cloud) AddS3(ctx context.Context, cfg S3Config) (_ *S3, err error) {
	if cfg.Edge == nil && len(c.Edges) > 0 {
		cfg.Edge = c.Edges[0]
	}
	if cfg.Internet == nil && c.Internet != nil {
		cfg.Internet = c.Internet.Internet
	}
	if cfg.Edge == nil || cfg.Internet == nil {
		return nil, errors.New("localcloud: the object store needs an edge and the internet (Edges > 0)")
	}
	if cfg.Name == "" {
		cfg.Name = S3ServiceName
	}
	if !cfg.Addr.IsValid() {
		cfg.Addr = S3Addr
	}
	if !cfg.Node.IsValid() {
		a := c.cfg.Underlay.Addr().As4()
		a[3] = 250
		cfg.Node = netip.AddrFrom4(a)
	}
	var release []func()
	defer func() {
		if err != nil {
			for _, r := range release {
				r()
			}
		}
	}()
	// The store believes the PROXY header on its endpoints listener, so
	// only the service node may reach it: a unix socket in a directory
	// only this user can enter (MkdirTemp makes it 0700), never TCP on
	// loopback where any local process could claim any endpoint.
	sockDir, err := os.MkdirTemp("", "openvpc-s3-")
	if err != nil {
		return nil, fmt.Errorf("localcloud: a private directory for the store's socket: %w", err)
	}
	release = append(release, func() { os.RemoveAll(sockDir) })
	endpoints, err := net.Listen("unix", filepath.Join(sockDir, "endpoints.sock"))
	if err != nil {
		return nil, err
	}
	release = append(release, func() { endpoints.Close() })
	public, err := cfg.Internet.AddHost(cfg.Addr)
	if err != nil {
		return nil, err
	}
	direct, err := public.ListenTCP(&net.TCPAddr{Port: 80})
	if err != nil {
		return nil, err
	}
	release = append(release, func() { direct.Close() })
	dir := cfg.Edge.Cache.Tables
	d := servicenode.NewDirectory(dir)
	store, err := objectstore.New(objectstore.Config{Dir: cfg.Dir, Endpoints: endpoints, Direct: direct, EndpointPolicy: d.Policy, Log: c.cfg.Log.With("part", "s3")})
	if err != nil {
		return nil, err
	}
	wire, err := underlay.ListenPort(cfg.Node, c.cfg.WirePort)
	if err != nil {
		return nil, fmt.Errorf("service node on %v:%d: %w", cfg.Node, c.cfg.WirePort, err)
	}
	release = append(release, func() { wire.Close() })
	node, err := servicenode.New(servicenode.Config{
		Wire: wire, WirePort: c.cfg.WirePort, Addrs: []netip.Addr{cfg.Addr},
		Backends: map[uint16]string{80: "unix:" + endpoints.Addr().String()},
		Endpoint: d.Endpoint, Edge: d.Edge, Log: c.cfg.Log.With("part", "service-node"),
	})
	if err != nil {
		return nil, err
	}
	s := c.Server(0)
	if _, err := s.Store.RegisterService(ctx, cfg.Name, []netip.Prefix{netip.PrefixFrom(cfg.Addr, 32)}, []netip.Addr{cfg.Node}); err != nil {
		return nil, err
	}
	c.run(store.Run, func() { os.RemoveAll(sockDir) })
	c.run(node.Run, func() { wire.Close() })
	return &S3{Name: cfg.Name, Addr: cfg.Addr, Store: store, Node: node, NodeAddr: cfg.Node}, nil
}

// s3Dir is where `up` keeps the store's objects.
func s3Dir(dataDir string) string { return filepath.Join(dataDir, "s3") }
