package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/apierr"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
)

// liveSettle is how long a live trace waits for the hops to report.
const liveSettle = 300 * time.Millisecond

// TraceInstance follows a probe hop by hop: logically, asking each host or
// edge on the way what its story does with it on its live cache; or live,
// sending a real packet with the TraceID option and collecting what every
// host and edge saw of it.
func (h *Instances) TraceInstance(ctx context.Context, req *connect.Request[pb.TraceInstanceRequest]) (*connect.Response[pb.TraceInstanceResponse], error) {
	m := req.Msg
	switch m.Protocol {
	case "":
		m.Protocol = "tcp"
	case "tcp", "udp", "icmp":
	default:
		return nil, apierr.Wire(model.Invalidf("protocol %q: use tcp, udp or icmp", m.Protocol))
	}
	if m.Port == 0 && m.Protocol != "icmp" {
		m.Port = 80
	}
	if m.Port > 65535 {
		return nil, apierr.Wire(model.Invalidf("port %d: at most 65535", m.Port))
	}
	from, err := h.actAs(ctx, m.From)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	to, err := h.target(ctx, m.To)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	hosts, err := h.Store.ListHosts(ctx)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	out := &pb.TraceInstanceResponse{FromIp: from.inst.PrivateIp, ToIp: to}
	if m.Source != "" {
		if _, err := model.ParseIPv4("source address", m.Source); err != nil {
			return nil, apierr.Wire(err)
		}
		if m.Live {
			return nil, apierr.Wire(model.Invalidf("--source forges a packet: trace it logically (without --live), or use openvpc ping --source"))
		}
		out.FromIp = m.Source
	}
	egress := &pb.TraceRequest{Vni: from.vni, InstanceIp: from.inst.PrivateIp, Dst: to, Protocol: m.Protocol, Port: m.Port, Source: m.Source}
	if m.Live {
		out.TraceId = traceID()
		egress.Live, egress.TraceId = true, out.TraceId
		if _, err := from.agent.Trace(ctx, connect.NewRequest(egress)); err != nil {
			return nil, err
		}
		time.Sleep(liveSettle)
		out.Hops = h.traceReports(ctx, hosts, out.TraceId)
	} else if out.Hops, err = h.traceLogical(ctx, from, hosts, egress); err != nil {
		return nil, err
	}
	if n := len(out.Hops); n > 0 {
		out.Verdict = out.Hops[n-1].Verdict
	}
	return connect.NewResponse(out), nil
}

// traceLogical asks the sender's host to explain its egress story, then
// each next hop (a host or an edge) to explain what it does with the
// packet as it would arrive.
func (h *Instances) traceLogical(ctx context.Context, from *actor, hosts []*pb.Host, egress *pb.TraceRequest) ([]*pb.TraceHop, error) {
	r, err := from.agent.Trace(ctx, connect.NewRequest(egress))
	if err != nil {
		return nil, err
	}
	hops := []*pb.TraceHop{{HostId: from.inst.HostId, Story: r.Msg.Story, Steps: r.Msg.Steps, Verdict: r.Msg.Verdict, Wire: r.Msg.Payload, NextHop: r.Msg.NextHop}}
	if r.Msg.NextHop == "" {
		return hops, nil
	}
	var self, next *pb.Host
	for _, x := range hosts {
		switch {
		case x.Id == from.inst.HostId:
			self = x
		case x.UnderlayAddress == r.Msg.NextHop:
			next = x
		}
	}
	if next == nil || self == nil || next.AgentUrl == "" {
		hops = append(hops, &pb.TraceHop{HostId: r.Msg.NextHop, Story: "unknown", Verdict: "unknown",
			Steps: []*pb.TraceStep{{Name: "next hop", Detail: "no registered host or edge with an API has underlay address " + r.Msg.NextHop}}})
		return hops, nil
	}
	arrive := &pb.TraceRequest{Payload: r.Msg.Payload, OuterSrc: self.UnderlayAddress}
	ac, err := h.agentClient(next)
	if err != nil {
		return nil, err
	}
	a, err := ac.Trace(ctx, connect.NewRequest(arrive))
	if err != nil {
		return nil, err
	}
	return append(hops, &pb.TraceHop{HostId: next.Id, Story: a.Msg.Story, Steps: a.Msg.Steps, Verdict: a.Msg.Verdict}), nil
}

// traceReports gathers every host's and edge's sightings of trace id, in
// the order they happened.
func (h *Instances) traceReports(ctx context.Context, hosts []*pb.Host, id uint32) []*pb.TraceHop {
	var mu sync.Mutex
	var hops []*pb.TraceHop
	h.eachAgent(ctx, hosts, func(ctx context.Context, x *pb.Host, ac openvpcv1connect.AgentServiceClient) error {
		r, err := ac.TraceReports(ctx, connect.NewRequest(&pb.TraceReportsRequest{TraceId: id}))
		if err != nil {
			return err // a host that cannot say saw nothing we can show
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rep := range r.Msg.Reports {
			hops = append(hops, &pb.TraceHop{HostId: x.Id, Story: rep.Story, Verdict: rep.Verdict, Time: rep.Time, Steps: rep.Steps})
		}
		return nil
	}, nil)
	slices.SortStableFunc(hops, func(a, b *pb.TraceHop) int { return a.Time.AsTime().Compare(b.Time.AsTime()) })
	return hops
}

// agentClient reaches host's (or edge's) agent as the server may.
func (h *Instances) agentClient(host *pb.Host) (openvpcv1connect.AgentServiceClient, error) {
	hc, err := h.Agents.AgentClient(host.Id, host.AgentUrl)
	if err != nil {
		return nil, err
	}
	return openvpcv1connect.NewAgentServiceClient(hc, host.AgentUrl), nil
}

// traceID is a random, non-zero TraceID.
func traceID() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint32(b[:]); id != 0 {
			return id
		}
	}
}
