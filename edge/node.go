package edge

import (
	"context"
	"errors"

	"github.com/openvpc/openvpc/edge/igw"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
)

// Node is a running edge: an agent registered with role edge (it keeps the
// cache of every VPC with an internet gateway and reports security
// events) and the data plane serving the wire and the outside.
type Node struct {
	Agent *agent.Agent
	Edge  *Edge
}

// NewNode builds an edge node. ac says how to join the Mapping Service
// (its Wire is ignored: the edge's data plane serves cfg.Wire); cfg must
// name the wire and the outside port.
func NewNode(ac agent.Config, cfg Config) (*Node, error) {
	if cfg.Wire == nil || cfg.Outside == nil {
		return nil, errors.New("edge: an edge needs an underlay (wire) and an outside port")
	}
	ac.Role = pb.HostRole_HOST_ROLE_EDGE
	ac.Functions = Registration(cfg)
	ac.Wire = nil // the agent only keeps the cache; the edge serves the wire
	ac.Underlay = cfg.Underlay
	if ac.WirePort == 0 {
		ac.WirePort = cfg.WirePort
	}
	a, err := agent.New(ac)
	if err != nil {
		return nil, err
	}
	cfg.Events = a.Reporter.Report
	x, err := New(a.Cache.Tables, cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{Agent: a, Edge: x}
	a.Observe = n.Edge // the agent's API (if ac.API is set) shows the edge's flows and traces
	return n, nil
}

// Run serves until ctx ends; the caller closes the wire and the outside
// port afterwards (which ends the data plane's loops).
func (n *Node) Run(ctx context.Context) error {
	go func() { _ = n.Edge.ServeWire() }()
	go func() { _ = n.Edge.ServeOutside() }()
	return n.Agent.Run(ctx)
}

// functionKinds name the functions as the Mapping Service does: its kind
// and the id prefix of its targets.
var functionKinds = map[tables.TargetKind]struct {
	kind   pb.EdgeFunctionKind
	prefix model.Kind
}{
	tables.TargetInternetGateway: {pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET, model.KindIGW},
	tables.TargetVPNGateway:      {pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN, model.KindVPNGateway},
	tables.TargetDirectConnect:   {pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT, model.KindDirectConnect},
	tables.TargetEndpoint:        {pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT, model.KindEndpoint},
}

// Registration is what an edge with cfg tells the Mapping Service it
// serves, so that hosts send it only packets for those functions.
func Registration(cfg Config) []*pb.EdgeFunction {
	fns := cfg.Functions
	if cfg.Outside != nil {
		fns = append(fns[:len(fns):len(fns)], igw.New(cfg.Outside))
	}
	var out []*pb.EdgeFunction
	for _, f := range fns {
		k, ok := functionKinds[f.Kind()]
		if !ok {
			continue // New refuses it
		}
		pf := &pb.EdgeFunction{Kind: k.kind}
		for _, id := range f.Targets() {
			pf.Targets = append(pf.Targets, model.FormatID(k.prefix, id))
		}
		out = append(out, pf)
	}
	return out
}
