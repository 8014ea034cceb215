package main

import (
	"context"
	"errors"
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
	"github.com/openvpc/openvpc/node"
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
	var dir, listen, endpoints, level, nodeAddr, nodeID, svcAddr, name string
	var wirePort uint16
	var poll time.Duration
	var jf joinFlags
	c := &cobra.Command{
		Use:   "s3 [--data-dir DIR] [--listen ADDR] [--endpoints ADDR] [--node UNDERLAY --addr IP --name NAME [--node-id ID --join-token TOKEN]]",
		Short: "Run the S3-compatible object store (path-style; bucket policies with aws:SourceVpce/SourceVpc/SourceIp/VpcSourceIp), and with --node its service node",
		Long: `Run the S3-compatible object store. With --node it also runs the service node
that gateway endpoints lead to: it receives the edges' Geneve on UNDERLAY, answers
the service address --addr on one TCP/IP stack per endpoint, and hands each
connection to the store with a PROXY v2 header (source + vpce id). Every --poll it
reads its service's catalog (the service's endpoints, the edges serving endpoints,
the service's nodes) from the server.

On another machine than the server, run it with a certificate of role service:
an administrator registers the service with the node's address and makes a token,

  openvpc service register com.openvpc.local.s3 --cidr 203.0.113.130/32 --node 10.0.0.20
  openvpc token create --role service --host-id s3-1

and the node joins with it (the certificate binds --node, is kept in --cert-dir
and renewed). It may read that service's catalog and nothing else; it does not
register itself. Without --join-token or --cert-dir it uses the client config's
admin credentials and registers the service (--name, its prefix list the /32 of
--addr, the node UNDERLAY) itself.`,
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
				api, err := s3Server(ctx, g, o, &jf, nodeID, nodeAddr, log)
				if err != nil {
					return err
				}
				if nodeAddr != "" {
					sn, err := s3Node(ctx, api, &cat, nodeAddr, svcAddr, name, wirePort, backend, log)
					if err != nil {
						return err
					}
					g.Go(func() error { return sn.Run(ctx) })
				}
				// Endpoint policies are enforced whenever endpoint traffic
				// can arrive; until the first read every endpoint is
				// unknown, so denied.
				cfg.EndpointPolicy = cat.Policy
				g.Go(func() error { return pollCatalog(ctx, api.endpoints, &cat, name, poll, log) })
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
	f.StringVar(&nodeID, "node-id", "", "the service node's id, with --join-token or --cert-dir (the token's --host-id, e.g. s3-1)")
	f.StringVar(&svcAddr, "addr", "203.0.113.130", "the service's address, which instances reach through their endpoints (with --node)")
	f.StringVar(&name, "name", "com.openvpc.local.s3", "the service name: registered with --node; with --endpoints, whose nodes may connect")
	f.Uint16Var(&wirePort, "wire-port", underlay.Port, "UDP port edges exchange Geneve on")
	f.DurationVar(&poll, "poll", time.Second, "how often the service node reads its service's catalog")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error (info logs every request with source and endpoint)")
	jf.addCert(c, "service")
	return c
}

// s3API is how `service s3` calls the server: as an administrator, who may
// register the service, or as a service node, with its certificate.
type s3API struct {
	endpoints openvpcv1connect.EndpointServiceClient
	// admin: the client config's credentials, so the node registers the
	// service itself.
	admin bool
}

// s3Server connects to the server: with the node's certificate (joining
// for one if --cert-dir holds none, renewed in g while it runs) when given
// --join-token or --cert-dir, else with the client config's admin token.
func s3Server(ctx context.Context, g *errgroup.Group, o *cli.Options, jf *joinFlags, id, nodeAddr string, log *slog.Logger) (s3API, error) {
	if jf.token == "" && jf.certDir == "" {
		conn, err := o.Conn()
		if err != nil {
			return s3API{}, fmt.Errorf("%w (or run the service node with its own certificate: --node-id, --join-token, see openvpc service s3 --help)", err)
		}
		return s3API{endpoints: openvpcv1connect.NewEndpointServiceClient(conn.HTTP, conn.URL), admin: true}, nil
	}
	if nodeAddr == "" {
		return s3API{}, errors.New("a service certificate binds the service node's underlay address: give --node (a store without a node, --endpoints only, reads the catalog with the client config's admin credentials: drop --join-token and --cert-dir)")
	}
	if id == "" {
		return s3API{}, errors.New("give --node-id, the service node's id (the --host-id its token was made for: openvpc token create --role service --host-id s3-1)")
	}
	na, err := parseNodeAddr(nodeAddr)
	if err != nil {
		return s3API{}, err
	}
	creds, server, err := jf.credentials(ctx, o, log, id, pb.HostRole_HOST_ROLE_SERVICE, na)
	if err != nil {
		return s3API{}, err
	}
	hc, closeConns := node.NewClient(creds)
	r := &node.Renewer{Server: server, ID: id, Creds: creds, Dir: jf.certDir, HTTP: hc, Logger: log}
	g.Go(func() error {
		defer closeConns()
		r.Run(ctx) // returns only when ctx ends
		return nil
	})
	log.Info("service node joined", "id", id, "underlay", na, "server", server, "expires", creds.Identity().NotAfter)
	return s3API{endpoints: openvpcv1connect.NewEndpointServiceClient(hc, server)}, nil
}

func parseNodeAddr(s string) (netip.Addr, error) {
	na, err := netip.ParseAddr(s)
	if err != nil || !na.Is4() {
		return netip.Addr{}, fmt.Errorf("--node %q is not an IPv4 address: give the service node's address on the underlay", s)
	}
	return na, nil
}

// s3Node returns the service node, not yet running; with admin
// credentials it registers the service first.
func s3Node(ctx context.Context, api s3API, cat *servicenode.Catalog, nodeAddr, svcAddr, name string, port uint16, backend string, log *slog.Logger) (*servicenode.Node, error) {
	na, err := parseNodeAddr(nodeAddr)
	if err != nil {
		return nil, err
	}
	sa, err := netip.ParseAddr(svcAddr)
	if err != nil || !sa.Is4() {
		return nil, fmt.Errorf("--addr %q is not an IPv4 address", svcAddr)
	}
	if api.admin {
		if _, err := api.endpoints.RegisterService(ctx, connect.NewRequest(&pb.RegisterServiceRequest{Name: name, Cidrs: []string{netip.PrefixFrom(sa, 32).String()}, NodeAddresses: []string{na.String()}})); err != nil {
			return nil, fmt.Errorf("registering %s: %w", name, err)
		}
	}
	wire, err := underlay.ListenPort(na, port)
	if err != nil {
		return nil, fmt.Errorf("service node on %v:%d: %w", na, port, err)
	}
	return servicenode.New(servicenode.Config{Wire: wire, WirePort: port, Addrs: []netip.Addr{sa}, Backends: map[uint16]string{80: backend},
		Endpoint: cat.Endpoint, Edge: cat.Edge, Log: log})
}

// pollCatalog keeps cat current with service's catalog (its endpoints with
// their VPCs' VNIs and policies, the edges serving endpoints, its nodes),
// read every d until ctx ends. A failed read keeps what cat knew; a
// refused one (the node is no longer one of the service's, or its
// certificate was revoked) ends the node, which may believe none of it.
func pollCatalog(ctx context.Context, ep openvpcv1connect.EndpointServiceClient, cat *servicenode.Catalog, service string, d time.Duration, log *slog.Logger) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		r, err := ep.DescribeServiceCatalog(ctx, connect.NewRequest(&pb.DescribeServiceCatalogRequest{ServiceName: service}))
		switch {
		case err == nil:
			cat.Set(catalogOf(r.Msg))
		case ctx.Err() != nil:
		case connect.CodeOf(err) == connect.CodePermissionDenied || connect.CodeOf(err) == connect.CodeUnauthenticated:
			cat.Set(nil, nil, nil)
			return fmt.Errorf("service node: the server refused the catalog of %s: %w", service, err)
		default:
			log.Warn("service node: reading the catalog failed; keeping what it knew", "service", service, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// catalogOf is what servicenode.Catalog.Set takes, from the server's
// answer; entries that do not parse are left out (denied).
func catalogOf(r *pb.DescribeServiceCatalogResponse) (eps []servicenode.CatalogEndpoint, edges, nodes []netip.Addr) {
	for _, e := range r.Endpoints {
		id, ok1 := model.ParseID(model.KindEndpoint, e.Id)
		vpc, ok2 := model.ParseID(model.KindVPC, e.VpcId)
		if ok1 && ok2 {
			eps = append(eps, servicenode.CatalogEndpoint{Endpoint: servicenode.Endpoint{ID: id, VNI: e.Vni, VPC: vpc}, Policy: e.PolicyDocument})
		}
	}
	parse := func(as []string) []netip.Addr {
		var out []netip.Addr
		for _, a := range as {
			if na, err := netip.ParseAddr(a); err == nil {
				out = append(out, na)
			}
		}
		return out
	}
	return eps, parse(r.EdgeAddresses), parse(r.NodeAddresses)
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
