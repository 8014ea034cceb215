package api

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
)

// agentTimeout bounds how long a call fanned out to every agent waits for one.
const agentTimeout = 3 * time.Second

// eachAgent calls fn, in parallel, with a client of the agent of every host
// and edge in hosts that serves an API, each call bounded by agentTimeout;
// unreachable is called for an agent the server cannot even dial.
func (h *Instances) eachAgent(ctx context.Context, hosts []*pb.Host, fn func(context.Context, *pb.Host, openvpcv1connect.AgentServiceClient) error, unreachable func(*pb.Host)) {
	var wg sync.WaitGroup
	for _, host := range hosts {
		if host.AgentUrl == "" {
			continue
		}
		wg.Go(func() {
			ac, err := h.agentClient(host)
			if err != nil {
				if unreachable != nil {
					unreachable(host)
				}
				return
			}
			cctx, cancel := context.WithTimeout(ctx, agentTimeout)
			defer cancel()
			_ = fn(cctx, host, ac)
		})
	}
	wg.Wait()
}

// ListFlows gathers the flow records of every host and edge that serves
// an API, in parallel, and filters them.
func (h *Instances) ListFlows(ctx context.Context, req *connect.Request[pb.ListFlowsRequest]) (*connect.Response[pb.ListFlowsResponse], error) {
	m := req.Msg
	match, err := verdictFilter(m.Verdict)
	if err != nil {
		return nil, err
	}
	var inst *pb.Instance
	var vni uint32
	if m.Instance != "" {
		if err := ref(model.KindInstance, "instance", m.Instance); err != nil {
			return nil, err
		}
		if inst, err = h.Store.GetInstance(ctx, m.Instance); err != nil {
			return nil, err
		}
		vpc, err := h.Store.GetVPC(ctx, inst.VpcId)
		if err != nil {
			return nil, err
		}
		vni = vpc.Vni
	}
	hosts, err := h.Store.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	if m.Host != "" {
		hosts = slices.DeleteFunc(hosts, func(x *pb.Host) bool { return x.Id != m.Host })
		if len(hosts) == 0 {
			return nil, model.NotFoundf("host %q is not registered", m.Host)
		}
	}
	out := &pb.ListFlowsResponse{}
	var mu sync.Mutex
	h.eachAgent(ctx, hosts, func(ctx context.Context, host *pb.Host, ac openvpcv1connect.AgentServiceClient) error {
		r, err := ac.Flows(ctx, connect.NewRequest(&pb.FlowsRequest{}))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.Unreachable = append(out.Unreachable, host.Id)
			return err
		}
		for _, f := range r.Msg.Flows {
			if match(f.Verdict) && (inst == nil || involves(f, vni, inst.PrivateIp)) {
				out.Flows = append(out.Flows, f)
			}
		}
		return nil
	}, func(host *pb.Host) {
		mu.Lock()
		out.Unreachable = append(out.Unreachable, host.Id)
		mu.Unlock()
	})
	slices.SortFunc(out.Flows, func(a, b *pb.FlowRecord) int { return b.LastSeen.AsTime().Compare(a.LastSeen.AsTime()) })
	slices.Sort(out.Unreachable)
	return connect.NewResponse(out), nil
}

// involves reports whether f is a flow of the instance with address ip in
// VPC vni. An edge records a VPC's traffic under the private address (as
// the instance sent or receives it), so this finds it at edges too.
func involves(f *pb.FlowRecord, vni uint32, ip string) bool {
	return f.Vni == vni && (f.Src == ip || f.Dst == ip)
}

// verdictFilter parses the verdict filter: a verdict's name, "dropped",
// "passed", or empty for all.
func verdictFilter(v string) (func(string) bool, error) {
	passed := func(s string) bool { return s == datapath.Forwarded.String() || s == datapath.Delivered.String() }
	switch v {
	case "":
		return func(string) bool { return true }, nil
	case "dropped":
		return func(s string) bool { return !passed(s) }, nil
	case "passed":
		return passed, nil
	}
	var names []string
	for _, x := range datapath.Verdicts() {
		if x.String() == v {
			return func(s string) bool { return s == v }, nil
		}
		names = append(names, x.String())
	}
	return nil, model.Invalidf("verdict %q is not known; use dropped, passed, or one of %s", v, strings.Join(names, ", "))
}
