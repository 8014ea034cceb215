package edge

import (
	"context"
	"errors"
	"fmt"

	"github.com/openvpc/openvpc/edge/igw"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/node"
)

// Node is a running edge: a node registered with role edge and the
// functions it serves (it keeps the cache of the VPCs they concern and
// reports security events), and the edge's data plane serving the wire
// and the outside.
type Node struct {
	*node.Node
	Edge *Edge
}

// NewNode builds an edge node. nc says how to join the Mapping Service
// (its role is edge, its underlay cfg's, its functions those cfg serves);
// cfg must name the wire and the outside port, which the node closes, with
// every function's outside, when Run ends.
func NewNode(nc node.Config, cfg Config) (*Node, error) {
	if cfg.Wire == nil || cfg.Outside == nil && len(cfg.Functions) == 0 {
		return nil, errors.New("edge: an edge needs an underlay (wire) and a function: an outside port to the internet, or VPN")
	}
	nc.Role = pb.HostRole_HOST_ROLE_EDGE
	nc.Functions = Registration(cfg)
	nc.Underlay = cfg.Underlay
	n, err := node.New(nc)
	if err != nil {
		return nil, err
	}
	cfg.Events = n.Reporter.Report
	x, err := New(n.Cache.Tables, cfg)
	if err != nil {
		return nil, err
	}
	return &Node{Node: n, Edge: x}, nil
}

// Run serves until ctx ends or a part fails, and returns once every
// goroutine it started has stopped, with the first error (ctx's when it
// ended).
func (n *Node) Run(ctx context.Context) error {
	return n.Node.Run(ctx, node.Role{Observed: n.Edge, Serve: n.serve})
}

// serve runs the edge's two read loops until ctx ends, then closes the
// wire and the outside port (ending them) and waits for both. Either loop
// ending first stops the edge: an edge that no longer receives on one
// side must not look alive, or hosts keep sending it traffic.
func (n *Node) serve(ctx context.Context) error {
	wire, outside := make(chan error, 1), make(chan error, 1)
	go func() { wire <- n.Edge.ServeWire() }()
	go func() { outside <- n.Edge.ServeOutside() }()
	// Functions with work of their own (VPN tunnels) run beside and stop
	// with ctx.
	rctx, cancel := context.WithCancel(ctx)
	runners := make(chan error, len(n.Edge.cfg.Functions))
	nr := 0
	for _, f := range n.Edge.cfg.Functions {
		if r, ok := f.(Runner); ok {
			nr++
			go func() { runners <- r.Run(rctx) }()
		}
	}
	defer func() {
		cancel()
		for range nr {
			<-runners
		}
	}()
	stopped := func(side string, err error) error {
		if err == nil {
			err = errors.New("it was closed")
		}
		return fmt.Errorf("edge: the %s stopped receiving: %w", side, err)
	}
	var err error
	select {
	case <-ctx.Done():
	case werr := <-wire:
		wire <- werr
		err = stopped("underlay", werr)
	case oerr := <-outside:
		outside <- oerr
		err = stopped("outside port", oerr)
	}
	n.Edge.cfg.Wire.Close()
	for _, f := range n.Edge.cfg.Functions {
		if o := f.Outside(); o != nil {
			o.Close()
		}
	}
	<-wire
	<-outside
	return err
}

// Registration is what an edge with cfg tells the Mapping Service it
// serves, so that hosts send it only packets for those functions.
func Registration(cfg Config) []*pb.EdgeFunction {
	fns := cfg.Functions
	if cfg.Outside != nil {
		fns = append(fns[:len(fns):len(fns)], igw.New(cfg.Outside))
	}
	fns = withEndpoints(fns)
	var out []tables.Function
	for _, f := range fns {
		out = append(out, tables.Function{Kind: f.Kind(), Targets: f.Targets()})
	}
	return node.ProtoFunctions(out) // a kind that is no edge function's is left out: New refuses it
}
