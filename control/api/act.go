package api

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/apierr"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
)

// actor is an instance to act as: where its agent is and who it is there.
type actor struct {
	inst  *pb.Instance
	vni   uint32
	agent openvpcv1connect.AgentServiceClient
}

// actAs finds a running instance's host agent.
func (h *Instances) actAs(ctx context.Context, r string) (*actor, error) {
	if err := ref(model.KindInstance, "instance", r); err != nil {
		return nil, err
	}
	inst, err := h.Store.GetInstance(ctx, r)
	if err != nil {
		return nil, err
	}
	if inst.State != pb.InstanceState_INSTANCE_STATE_RUNNING {
		return nil, model.Preconditionf("instance %s is %s, not running", inst.Id, strings.ToLower(strings.TrimPrefix(inst.State.String(), "INSTANCE_STATE_")))
	}
	host, err := h.Store.GetHost(ctx, inst.HostId)
	if err != nil {
		return nil, err
	}
	if host.AgentUrl == "" {
		return nil, model.Preconditionf("the agent of host %s serves no API; start it with one (openvpc up does)", host.Id)
	}
	vpc, err := h.Store.GetVPC(ctx, inst.VpcId)
	if err != nil {
		return nil, err
	}
	hc, err := h.Agents.AgentClient(host.Id, host.AgentUrl)
	if err != nil {
		return nil, model.Preconditionf("%v", err)
	}
	return &actor{inst: inst, vni: vpc.Vni, agent: openvpcv1connect.NewAgentServiceClient(hc, host.AgentUrl)}, nil
}

// target resolves an address, or an instance's name or id, to an address.
func (h *Instances) target(ctx context.Context, to string) (string, error) {
	if a, err := netip.ParseAddr(to); err == nil && a.Is4() {
		return a.String(), nil
	}
	if err := ref(model.KindInstance, "target instance", to); err != nil {
		return "", model.Invalidf("target %q is neither an IPv4 address nor an instance name or id", to)
	}
	inst, err := h.Store.GetInstance(ctx, to)
	if err != nil {
		return "", err
	}
	if inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED {
		// Its address is free again, and may be another instance's now.
		return "", model.Preconditionf("target instance %s (%s) is terminated", to, inst.Id)
	}
	return inst.PrivateIp, nil
}

func (h *Instances) PingInstance(ctx context.Context, req *connect.Request[pb.PingInstanceRequest]) (*connect.Response[pb.PingInstanceResponse], error) {
	m := req.Msg
	from, err := h.actAs(ctx, m.From)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	to, err := h.target(ctx, m.To)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	if m.Source != "" {
		if _, err := model.ParseIPv4("source address", m.Source); err != nil {
			return nil, apierr.Wire(err)
		}
	}
	r, err := from.agent.Ping(ctx, connect.NewRequest(&pb.PingRequest{InstanceIp: from.inst.PrivateIp, Vni: from.vni, To: to, Count: m.Count, TimeoutMs: m.TimeoutMs, Source: m.Source}))
	if err != nil {
		return nil, err
	}
	fromIP := from.inst.PrivateIp
	if m.Source != "" {
		fromIP = m.Source
	}
	return connect.NewResponse(&pb.PingInstanceResponse{FromIp: fromIP, ToIp: to, Sent: r.Msg.Sent, Received: r.Msg.Received, RttUs: r.Msg.RttUs, Verdict: r.Msg.Verdict}), nil
}

func (h *Instances) ConnectInstance(ctx context.Context, req *connect.Request[pb.ConnectInstanceRequest]) (*connect.Response[pb.ConnectInstanceResponse], error) {
	m := req.Msg
	from, err := h.actAs(ctx, m.From)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	host, port, err := net.SplitHostPort(m.To)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 1 || p > 65535 {
		return nil, apierr.Wire(model.Invalidf("connect target %q: write it as ADDRESS:PORT or INSTANCE:PORT", m.To))
	}
	ip, err := h.target(ctx, host)
	if err != nil {
		return nil, apierr.Wire(err)
	}
	to := net.JoinHostPort(ip, port)
	r, err := from.agent.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{InstanceIp: from.inst.PrivateIp, Vni: from.vni, To: to, TimeoutMs: m.TimeoutMs}))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ConnectInstanceResponse{FromIp: from.inst.PrivateIp, To: to, LatencyUs: r.Msg.LatencyUs}), nil
}
