package localcloud

// How the cloud builds its server, host agents and edges: the one place
// that knows their constructors.

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/endpoint"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

func startServer(ctx context.Context, cfg server.Config) (*server.Server, error) {
	return server.Start(ctx, cfg)
}

// Host is a host agent of the cloud.
type Host struct {
	*agent.Agent
	// WireAddr is the address it receives Geneve on.
	WireAddr netip.AddrPort
	stop     func()
}

// Stop ends the host agent, as a crash would: it stops reporting in and
// its underlay closes.
func (h *Host) Stop() { h.stop() }

// Edge is an edge (Blackfoot) of the cloud.
type Edge struct {
	*edge.Node
	// WireAddr is the address it receives Geneve on.
	WireAddr netip.AddrPort
	stop     func()
}

// Stop ends the edge, as a crash would: it stops reporting in and its
// underlay and outside port close.
func (e *Edge) Stop() { e.stop() }

// AddHost starts a host agent id with its underlay on addr (a loopback
// address) at the cloud's wire port; it runs until Stop or Close.
func (c *Cloud) AddHost(ctx context.Context, id string, addr netip.Addr) (*Host, error) {
	wire, err := underlay.ListenPort(addr, c.cfg.WirePort)
	if err != nil {
		return nil, fmt.Errorf("underlay of %s on %s:%d: %w", id, addr, c.cfg.WirePort, err)
	}
	return c.startHost(ctx, id, wire, false)
}

// AddEdge starts an edge id with its underlay on addr and its outside on
// outside (typically a port of a simulated internet, which the edge closes
// when it stops); it runs until Stop or Close.
func (c *Cloud) AddEdge(ctx context.Context, id string, addr netip.Addr, outside datapath.Port) (*Edge, error) {
	wire, err := underlay.ListenPort(addr, c.cfg.WirePort)
	if err != nil {
		outside.Close()
		return nil, fmt.Errorf("underlay of %s on %s:%d: %w", id, addr, c.cfg.WirePort, err)
	}
	return c.startEdge(ctx, id, wire, outside, false)
}

// startHost starts host agent id on wire, which it then owns (closed on
// failure too); metrics puts its counters on server 0's /metrics.
func (c *Cloud) startHost(ctx context.Context, id string, wire *underlay.UDPConn, metrics bool) (_ *Host, err error) {
	release := []func(){func() { wire.Close() }}
	defer func() {
		if err != nil {
			for _, r := range release {
				r()
			}
		}
	}()
	var backend nic.Backend = nic.NetstackBackend{}
	// Kept with the cloud's state: a restart on the same data dir adopts
	// or removes what a crash left.
	switch stateDir := filepath.Join(c.cfg.Server.Store.DataDir, "nics", id); c.cfg.NIC {
	case "tun":
		b, err := nic.NewTUNBackend(stateDir)
		if err != nil {
			return nil, err
		}
		release = append(release, func() { b.Close() })
		backend = b
	case "veth":
		b, err := nic.NewVethBackend(stateDir)
		if err != nil {
			return nil, err
		}
		release = append(release, func() { b.Close() })
		backend = b
	}
	s := c.Server(0)
	addr := wire.LocalAddr()
	creds, err := c.Credentials(ctx, id, pki.RoleHost, addr)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Config{
		Node: node.Config{Server: s.URL(), HostID: id, Creds: creds, Heartbeat: c.cfg.Heartbeat, Logger: c.cfg.Log, Underlay: addr, API: "127.0.0.1:0"},
		Wire: wire, WirePort: c.cfg.WirePort, NIC: backend,
	})
	if err != nil {
		return nil, err
	}
	if metrics {
		if err := s.Register(a.Collector()); err != nil {
			return nil, err
		}
	}
	return &Host{Agent: a, WireAddr: wire.LocalAddrPort(), stop: c.run(a.Run, release...)}, nil
}

// startEdge starts edge id on wire and outside, which it then owns.
func (c *Cloud) startEdge(ctx context.Context, id string, wire *underlay.UDPConn, outside datapath.Port, metrics bool) (_ *Edge, err error) {
	release := func() {
		wire.Close()
		outside.Close()
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	s := c.Server(0)
	addr := wire.LocalAddr()
	creds, err := c.Credentials(ctx, id, pki.RoleEdge, addr)
	if err != nil {
		return nil, err
	}
	// Every edge serves gateway endpoints too: relaying costs nothing
	// until a VPC has one.
	fns := []edge.Function{endpoint.New()}
	var bind func(*edge.Node)
	if c.cfg.EdgeFunctions != nil {
		more, b, err := c.cfg.EdgeFunctions(id)
		if err != nil {
			return nil, err
		}
		fns, bind = append(fns, more...), b
	}
	n, err := edge.NewNode(
		node.Config{Server: s.URL(), HostID: id, Creds: creds, Heartbeat: c.cfg.EdgeHeartbeat, Logger: c.cfg.Log, API: "127.0.0.1:0"},
		edge.Config{Underlay: addr, Wire: wire, WirePort: c.cfg.WirePort, Outside: outside, Functions: fns})
	if err != nil {
		return nil, err
	}
	if bind != nil {
		bind(n)
	}
	if metrics {
		if err := s.Register(n.Collector()); err != nil {
			return nil, err
		}
	}
	return &Edge{Node: n, WireAddr: wire.LocalAddrPort(), stop: c.run(n.Run, release)}, nil
}

// Credentials issues host or edge id (with its underlay address) a
// certificate from server 0, as joining would; in the server's own
// process no join token is needed. An insecure cloud needs none (nil).
func (c *Cloud) Credentials(ctx context.Context, id string, role pki.Role, underlay netip.Addr) (*pki.Credentials, error) {
	if c.cfg.Server.Trust.Insecure {
		return nil, nil
	}
	return c.Server(0).Trust.IssueAgent(ctx, id, role, underlay)
}
