package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sync/errgroup"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/fastpath"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/host/services"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/underlay"
)

// Config is what a host agent needs: how to join the network, and the
// host's data plane.
type Config struct {
	// Node says how to join: server, host id, underlay address,
	// credentials, the API's address. Its role is host.
	Node node.Config
	// Wire, when set, is this host's underlay: the agent then runs the data
	// plane, giving each local instance a NIC. Without it the agent only
	// keeps the cache. The agent closes it when Run ends.
	Wire underlay.Conn
	// NIC makes the instances' NICs (default nic.NetstackBackend: a
	// userspace stack each). The caller closes it after Run returns.
	NIC nic.Backend
	// MTU is the instance MTU (default dataplane.DefaultMTU).
	MTU int
	// WirePort is the UDP port hosts receive Geneve on (default
	// underlay.Port).
	WirePort uint16
	// Region is the region in the private DNS names the VPC resolver
	// answers (ip-10-0-1-4.<region>.compute.internal) and in the
	// metadata's placement/region (default services.DefaultRegion).
	Region string
	// ServiceLimit is how many packets a second each instance may send to
	// the host services (DNS, metadata); default AWS's 1024.
	ServiceLimit uint32
	// FastPath, when set (with a Wire and veth NICs), is the kernel flow
	// cache replaying the data plane's decisions. The caller closes it
	// after Run returns.
	FastPath *fastpath.FastPath
}

// Agent is a host agent: a node (registered, its cache current) with the
// host's data plane and its instances' NICs.
type Agent struct {
	*node.Node
	Plane *dataplane.Plane // nil without a Wire
	Wire  underlay.Conn
	MTU   int
	nics  *nics
	logs  *flowLogs
	fast  *fastpath.FastPath
}

// New applies cfg's defaults, validates it and builds an agent; Run
// starts it.
func New(cfg Config) (*Agent, error) {
	switch cfg.Node.Role {
	case pb.HostRole_HOST_ROLE_UNSPECIFIED:
		cfg.Node.Role = pb.HostRole_HOST_ROLE_HOST
	case pb.HostRole_HOST_ROLE_HOST:
	default:
		return nil, errors.New("agent: a host agent registers as a host; an edge runs as edge.NewNode")
	}
	if cfg.MTU == 0 {
		cfg.MTU = dataplane.DefaultMTU
	}
	if cfg.WirePort == 0 {
		cfg.WirePort = underlay.Port
	}
	if cfg.NIC == nil {
		cfg.NIC = nic.NetstackBackend{}
	}
	if cfg.Region == "" {
		cfg.Region = services.DefaultRegion
	}
	n, err := node.New(cfg.Node)
	if err != nil {
		return nil, err
	}
	a := &Agent{Node: n, Wire: cfg.Wire, MTU: cfg.MTU}
	if cfg.Wire != nil {
		a.Plane = dataplane.New(n.Cache.Tables, dataplane.Config{Underlay: n.Underlay, MTU: cfg.MTU, Events: n.Reporter.Report, WirePort: cfg.WirePort, Wire: cfg.Wire, ServiceLimit: cfg.ServiceLimit})
		a.nics = &nics{plane: a.Plane, cache: n.Cache, log: n.Logger, backend: cfg.NIC, mtu: cfg.MTU, region: cfg.Region, upstream: n.DNSUpstream, attached: map[uint64]*instance{}, services: map[uint32]*services.Stack{}}
		if cfg.FastPath != nil {
			// Each snapshot's generation reaches the kernel before the
			// snapshot is published: no entry outlives its snapshot.
			a.fast, a.nics.fast = cfg.FastPath, cfg.FastPath
			a.Plane.SetFlowCache(cfg.FastPath)
			n.Cache.Tables.OnPublish(cfg.FastPath.Publisher(a.Plane))
		}
		a.logs = newFlowLogs(a.Plane.Flows.List, n.Cache, n.Logger)
	}
	return a, nil
}

// Netstack returns the network stack of the local instance with private
// address ip in the VPC with VNI vni, to dial or listen as that instance;
// only netstack instances have one.
func (a *Agent) Netstack(vni uint32, ip netip.Addr) (*nic.Netstack, bool) {
	n, ok := a.NIC(vni, ip)
	ns, isNetstack := n.(*nic.Netstack)
	return ns, ok && isNetstack
}

// NIC returns the NIC of the local instance with private address ip in
// the VPC with VNI vni.
func (a *Agent) NIC(vni uint32, ip netip.Addr) (nic.NIC, bool) {
	if a.nics == nil {
		return nil, false
	}
	inst, ok := a.nics.find(vni, ip)
	if !ok {
		return nil, false
	}
	return inst.nic, true
}

// Run registers (retrying while the server is away), keeps the cache
// current and, with a Wire, serves the data plane and runs the flow logs
// of its ENIs (flowlogs.go), until ctx ends or a part fails. It returns
// once every goroutine it started has stopped, the NICs closed and the
// wire too, with the first error (ctx's when it ended).
func (a *Agent) Run(ctx context.Context) error {
	if a.Plane == nil {
		return a.Node.Run(ctx, node.Role{})
	}
	if a.fast != nil {
		defer a.Cache.Tables.OnPublish(nil) // the caller closes the fast path next
	}
	return a.Node.Run(ctx, node.Role{
		Observed:  hostPlane{a.Plane},
		Instances: a.nics,
		Applied: func() {
			a.nics.reconcile()
			a.logs.reconcile()
		},
		Serve: func(ctx context.Context) error {
			g, ctx := errgroup.WithContext(ctx)
			g.Go(func() error { return a.serve(ctx) })
			g.Go(func() error { return a.logs.run(ctx) })
			if a.fast != nil {
				g.Go(func() error { return a.fast.Run(ctx, a.Plane) })
			}
			return g.Wait()
		},
	})
}

// serve runs the wire's read loop until ctx ends, then closes the NICs
// (ending their loops) and the wire (ending its own), and waits for all.
// The wire failing, or closing under the agent, stops the agent: a host
// that no longer receives must not look alive.
func (a *Agent) serve(ctx context.Context) error {
	wireDone := make(chan error, 1)
	go func() { wireDone <- a.Plane.ServeWire() }()
	var err error
	select {
	case <-ctx.Done():
	case werr := <-wireDone:
		wireDone <- werr
		if werr == nil {
			werr = errors.New("it was closed")
		}
		err = fmt.Errorf("agent: the underlay stopped receiving: %w", werr)
	}
	a.nics.closeAll()
	a.Wire.Close()
	<-wireDone
	return err
}

// hostPlane is a host's data plane as the node API observes it.
type hostPlane struct{ *dataplane.Plane }

func (p hostPlane) FlowList() []datapath.Flow { return p.Flows.List() }

func (p hostPlane) TraceReports(id uint32) []datapath.TraceReport { return p.Traces.Get(id) }

func (p hostPlane) TraceArrival(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict, string) {
	steps, v := p.TraceIngress(outerSrc, payload)
	return steps, v, "ingress"
}
