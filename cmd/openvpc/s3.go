package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/openvpc/openvpc/cli"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/objectstore"
	"github.com/openvpc/openvpc/servicenode"
	"github.com/openvpc/openvpc/underlay"
)

// s3Cmd is `openvpc service s3`: the object store, and with --node its
// service node, apart from `openvpc up`. The store's --endpoints listener
// believes PROXY v2 headers: let only service nodes reach it; --listen
// takes plain clients (no endpoint). With --node the in-process node
// reaches the store over a unix socket in a private directory.
func s3Cmd(o *cli.Options) *cobra.Command {
	var dir, listen, endpoints, level, nodeAddr, svcAddr, name string
	var wirePort uint16
	var poll time.Duration
	c := &cobra.Command{
		Use:   "s3 [--data-dir DIR] [--listen ADDR] [--endpoints ADDR] [--node UNDERLAY --addr IP --name NAME]",
		Short: "Run the S3-compatible object store (path-style; bucket policies with aws:SourceVpce/SourceVpc/SourceIp/VpcSourceIp), and with --node its service node",
		Long: `Run the S3-compatible object store. With --node it also runs the service node
that gateway endpoints lead to: it receives the edges' Geneve on UNDERLAY, answers
the service address --addr on one TCP/IP stack per endpoint, and hands each
connection to the store with a PROXY v2 header (source + vpce id). It registers the
service (--name, its prefix list the /32 of --addr, the node UNDERLAY) and follows
the endpoints and edges through the management API (the client config's admin
credentials), every --poll.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(level)
			if err != nil {
				return err
			}
			cfg := objectstore.Config{Dir: dir, Log: log}
			if listen != "" {
				if cfg.Direct, err = net.Listen("tcp", listen); err != nil {
					return fmt.Errorf("--listen %s: %w", listen, err)
				}
			}
			if endpoints != "" && nodeAddr != "" {
				return fmt.Errorf("give --node or --endpoints, not both: with --node the service node in this process reaches the store over a private unix socket; --endpoints is for service nodes elsewhere")
			}
			var cat servicenode.Catalog
			backend := ""
			switch {
			case nodeAddr != "":
				// The store believes the PROXY header on this listener:
				// a unix socket in a directory only this user can enter,
				// not TCP where any local process could claim any endpoint.
				sockDir, err := os.MkdirTemp("", "openvpc-s3-")
				if err != nil {
					return fmt.Errorf("a private directory for the store's socket: %w", err)
				}
				defer os.RemoveAll(sockDir)
				if cfg.Endpoints, err = net.Listen("unix", filepath.Join(sockDir, "endpoints.sock")); err != nil {
					return err
				}
				backend = "unix:" + cfg.Endpoints.Addr().String()
			case endpoints != "":
				if cfg.Endpoints, err = net.Listen("tcp", endpoints); err != nil {
					return fmt.Errorf("--endpoints %s: %w", endpoints, err)
				}
				// Only the registered nodes of service --name may speak
				// for an endpoint; anything else is closed unread.
				cfg.TrustPeer = func(peer net.Addr) bool {
					ap, err := netip.ParseAddrPort(peer.String())
					return err == nil && cat.ServiceNode(ap.Addr())
				}
			}
			if cfg.Direct == nil && cfg.Endpoints == nil {
				return fmt.Errorf("give --listen, --endpoints, --node, or more than one")
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			if cfg.Endpoints != nil {
				// Endpoint policies are enforced whenever endpoint traffic
				// can arrive; until the first read every endpoint is
				// unknown, so denied.
				cfg.EndpointPolicy = cat.Policy
				g.Go(func() error { return pollCatalog(ctx, o, &cat, name, poll, log) })
			}
			if nodeAddr != "" {
				node, err := s3Node(ctx, o, &cat, nodeAddr, svcAddr, name, wirePort, backend, log)
				if err != nil {
					return err
				}
				g.Go(func() error { return node.Run(ctx) })
			}
			s, err := objectstore.New(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "object store up: clients on %s, service nodes on %s, service node %s, objects in %s\n",
				or(listen, "-"), or(endpoints, "-"), or(nodeAddr, "-"), or(dir, "memory"))
			g.Go(func() error { return s.Run(ctx) })
			return g.Wait()
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "data-dir", "", "where objects and bucket policies are kept ('' keeps them in memory)")
	f.StringVar(&listen, "listen", "127.0.0.1:9000", "address for clients without an endpoint: their source is the connection's peer ('' for none)")
	f.StringVar(&endpoints, "endpoints", "", "TCP address for service nodes elsewhere: only the registered nodes of --name may connect, and every connection must start with a PROXY v2 header with the VPC-endpoint TLV")
	f.StringVar(&nodeAddr, "node", "", "run the service node on this underlay IPv4 address (edges send it endpoint traffic on --wire-port)")
	f.StringVar(&svcAddr, "addr", "203.0.113.130", "the service's address, which instances reach through their endpoints (with --node)")
	f.StringVar(&name, "name", "com.openvpc.local.s3", "the service name: registered with --node; with --endpoints, whose nodes may connect")
	f.Uint16Var(&wirePort, "wire-port", underlay.Port, "UDP port edges exchange Geneve on")
	f.DurationVar(&poll, "poll", time.Second, "how often the service node reads the endpoints and edges")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error (info logs every request with source and endpoint)")
	return c
}

// s3Node registers the service and returns its node, not yet running.
func s3Node(ctx context.Context, o *cli.Options, cat *servicenode.Catalog, nodeAddr, svcAddr, name string, port uint16, backend string, log *slog.Logger) (*servicenode.Node, error) {
	na, err := netip.ParseAddr(nodeAddr)
	if err != nil || !na.Is4() {
		return nil, fmt.Errorf("--node %q is not an IPv4 address: give the service node's address on the underlay", nodeAddr)
	}
	sa, err := netip.ParseAddr(svcAddr)
	if err != nil || !sa.Is4() {
		return nil, fmt.Errorf("--addr %q is not an IPv4 address", svcAddr)
	}
	conn, err := o.Conn()
	if err != nil {
		return nil, err
	}
	ep := openvpcv1connect.NewEndpointServiceClient(conn.HTTP, conn.URL)
	if _, err := ep.RegisterService(ctx, connect.NewRequest(&pb.RegisterServiceRequest{Name: name, Cidrs: []string{netip.PrefixFrom(sa, 32).String()}, NodeAddresses: []string{na.String()}})); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	wire, err := underlay.ListenPort(na, port)
	if err != nil {
		return nil, fmt.Errorf("service node on %v:%d: %w", na, port, err)
	}
	return servicenode.New(servicenode.Config{Wire: wire, WirePort: port, Addrs: []netip.Addr{sa}, Backends: map[uint16]string{80: backend},
		Endpoint: cat.Endpoint, Edge: cat.Edge, Log: log})
}

// pollCatalog keeps cat current: the endpoints (with their VPCs' VNIs and
// policies), the edges serving endpoints and service's nodes, read every d until ctx ends.
// A failed read keeps what cat knew.
func pollCatalog(ctx context.Context, o *cli.Options, cat *servicenode.Catalog, service string, d time.Duration, log *slog.Logger) error {
	conn, err := o.Conn()
	if err != nil {
		return err
	}
	ep := openvpcv1connect.NewEndpointServiceClient(conn.HTTP, conn.URL)
	vpcs := openvpcv1connect.NewVpcServiceClient(conn.HTTP, conn.URL)
	insts := openvpcv1connect.NewInstanceServiceClient(conn.HTTP, conn.URL)
	read := func() error {
		es, err := ep.ListVpcEndpoints(ctx, connect.NewRequest(&pb.ListVpcEndpointsRequest{}))
		if err != nil {
			return err
		}
		vs, err := vpcs.ListVpcs(ctx, connect.NewRequest(&pb.ListVpcsRequest{}))
		if err != nil {
			return err
		}
		hs, err := insts.ListHosts(ctx, connect.NewRequest(&pb.ListHostsRequest{}))
		if err != nil {
			return err
		}
		ss, err := ep.ListServices(ctx, connect.NewRequest(&pb.ListServicesRequest{}))
		if err != nil {
			return err
		}
		var nodes []netip.Addr
		for _, sv := range ss.Msg.Services {
			if sv.Name != service {
				continue
			}
			for _, a := range sv.NodeAddresses {
				if na, err := netip.ParseAddr(a); err == nil {
					nodes = append(nodes, na)
				}
			}
		}
		vni := map[string]uint32{}
		for _, v := range vs.Msg.Vpcs {
			vni[v.Id] = v.Vni
		}
		var out []servicenode.CatalogEndpoint
		for _, e := range es.Msg.Endpoints {
			id, ok1 := model.ParseID(model.KindEndpoint, e.Id)
			vpc, ok2 := model.ParseID(model.KindVPC, e.VpcId)
			if v, ok := vni[e.VpcId]; ok && ok1 && ok2 {
				out = append(out, servicenode.CatalogEndpoint{Endpoint: servicenode.Endpoint{ID: id, VNI: v, VPC: vpc}, Policy: e.PolicyDocument})
			}
		}
		var edges []netip.Addr
		for _, h := range hs.Msg.Hosts {
			for _, f := range h.Functions {
				if a, err := netip.ParseAddr(h.UnderlayAddress); err == nil && h.Role == pb.HostRole_HOST_ROLE_EDGE && f.Kind == pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT {
					edges = append(edges, a)
				}
			}
		}
		cat.Set(out, edges, nodes)
		return nil
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if err := read(); err != nil && ctx.Err() == nil {
			log.Warn("service node: reading endpoints and edges failed; keeping what it knew", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// addServiceCommands puts the service runners under the client's
// `openvpc service`.
func addServiceCommands(root *cobra.Command, o *cli.Options) {
	for _, c := range root.Commands() {
		if c.Name() == "service" {
			c.AddCommand(s3Cmd(o))
		}
	}
}
