package edge

import (
	"context"
	"errors"
	"fmt"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
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
// (its role is edge; its underlay is cfg's); cfg must name the wire and
// the outside port, which the node closes when Run ends.
func NewNode(nc node.Config, cfg Config) (*Node, error) {
	if cfg.Wire == nil || cfg.Outside == nil {
		return nil, errors.New("edge: an edge needs an underlay (wire) and an outside port")
	}
	nc.Role = pb.HostRole_HOST_ROLE_EDGE
	nc.Underlay = cfg.Underlay
	if len(nc.Functions) == 0 {
		// What this data plane serves today; the functions come from the
		// edge's configuration once it serves more than the internet.
		nc.Functions = []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET}}
	}
	n, err := node.New(nc)
	if err != nil {
		return nil, err
	}
	cfg.Events = n.Reporter.Report
	return &Node{Node: n, Edge: New(n.Cache.Tables, cfg)}, nil
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
	n.Edge.cfg.Outside.Close()
	<-wire
	<-outside
	return err
}
