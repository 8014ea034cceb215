package testcloud

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/underlay"
)

// WirePort is the UDP port this cloud's hosts receive Geneve on.
func (c *Cloud) WirePort() uint16 { return c.wirePort() }

// wirePort picks the UDP port this cloud's hosts receive Geneve on, so
// clouds of tests running at once do not share one.
func (c *Cloud) wirePort() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.port == 0 {
		l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 250)})
		if err != nil {
			c.t.Fatal(err)
		}
		c.port = uint16(l.LocalAddr().(*net.UDPAddr).Port)
		l.Close()
	}
	return c.port
}

// AddAgent starts a real host agent with a data plane: a UDP underlay on
// addr (a loopback address), netstack NICs for its instances.
func (c *Cloud) AddAgent(id string, addr netip.Addr) *agent.Agent {
	c.t.Helper()
	port := c.wirePort()
	wire, err := underlay.ListenPort(addr, port)
	if err != nil {
		c.t.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		Node: node.Config{Server: c.Server(0).URL(), HostID: id, Underlay: addr, Creds: c.Credentials(id, pki.RoleHost, addr), Heartbeat: c.Heartbeat,
			Logger: c.Log, API: "127.0.0.1:0"},
		Wire: wire, WirePort: port,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	c.t.Cleanup(func() {
		cancel()
		<-done
		wire.Close()
	})
	// Registered before it returns, so instances can be placed on it.
	c.waitRegistered(id)
	return a
}

// Instance returns the netstack of instance inst, which runs on agent a.
func Instance(a *agent.Agent, vni uint32, inst *pb.Instance) (*nic.Netstack, error) {
	ip := netip.MustParseAddr(inst.PrivateIp)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ns, ok := a.Netstack(vni, ip); ok {
			return ns, nil
		}
	}
	return nil, errors.New("testcloud: instance " + inst.Id + " has no NIC on " + a.HostID)
}

// AddEdge starts a real edge (Blackfoot) on underlay addr whose outside is
// port, typically a port of a simulated internet. It heartbeats every
// EdgeHeartbeat, so that the cloud notices its loss within EdgeTimeout.
// Stop ends it early, as a crash would: its underlay and outside close.
func (c *Cloud) AddEdge(id string, addr netip.Addr, outside datapath.Port) *Edge {
	c.t.Helper()
	port := c.wirePort()
	wire, err := underlay.ListenPort(addr, port)
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := edge.NewNode(node.Config{
		Server: c.Server(0).URL(), HostID: id, Creds: c.Credentials(id, pki.RoleEdge, addr), Heartbeat: EdgeHeartbeat, Logger: c.Log, API: "127.0.0.1:0",
	}, edge.Config{Underlay: addr, Wire: wire, WirePort: port, Outside: outside})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.Run(ctx)
	}()
	e := &Edge{Node: n}
	e.stop = func() {
		cancel()
		<-done
		wire.Close()
		outside.Close()
	}
	c.t.Cleanup(e.Stop)
	c.waitRegistered(id)
	return e
}

// Edge is an edge of a test cloud.
type Edge struct {
	*edge.Node
	once sync.Once
	stop func()
}

// Stop kills the edge: it stops reporting in and its ports close.
func (e *Edge) Stop() { e.once.Do(e.stop) }

// waitRegistered waits until host or edge id is registered.
func (c *Cloud) waitRegistered(id string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, err := c.API().Inst.ListHosts(c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{}))
		if err != nil {
			c.t.Fatal(err)
		}
		for _, h := range hs.Msg.Hosts {
			if h.Id == id {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not register", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
