package testcloud

import (
	"errors"
	"net/netip"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/internet"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/localcloud"
)

// WirePort is the UDP port this cloud's hosts receive Geneve on.
func (c *Cloud) WirePort() uint16 { return c.local.Config().WirePort }

// AddAgent starts a real host agent with a data plane: a UDP underlay on
// addr (a loopback address), netstack NICs for its instances.
func (c *Cloud) AddAgent(id string, addr netip.Addr) *agent.Agent {
	c.t.Helper()
	h, err := c.local.AddHost(c.Ctx(), id, addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(h.Stop)
	// Registered before it returns, so instances can be placed on it.
	c.waitRegistered(id)
	return h.Agent
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
	e, err := c.local.AddEdge(c.Ctx(), id, addr, outside)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(e.Stop)
	c.waitRegistered(id)
	return e
}

// Edge is an edge of a test cloud.
type Edge = localcloud.Edge

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

// S3 is a test cloud's object store and service node.
type S3 = localcloud.S3

// AddS3 starts the object store (in memory) and its service node, which
// learns endpoints from edge's cache; the store is reached without an
// endpoint on inet at localcloud.S3Addr.
func (c *Cloud) AddS3(edge *Edge, inet *internet.Internet) *S3 {
	c.t.Helper()
	s, err := c.local.AddS3(c.Ctx(), localcloud.S3Config{Edge: edge, Internet: inet})
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}
