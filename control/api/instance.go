package api

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
)

// Mapping is what the management API asks of the Mapping Service.
type Mapping interface {
	// WaitInstance waits until an instance's mapping has reached (or left)
	// every host in scope.
	WaitInstance(ctx context.Context, id string, state pb.InstanceState) (*pb.Instance, error)
	// HostStatus fills hosts' acknowledged revisions and lag.
	HostStatus(hosts []*pb.Host)
	ListEvents(ctx context.Context, limit int) ([]*pb.SecurityEvent, error)
	WatchEvents(ctx context.Context, send func(*pb.SecurityEvent) error) error
}

// Instances serves InstanceService: instances, hosts and events.
type Instances struct {
	Store   *store.Store
	Mapping Mapping
	// Agents gives the HTTP client to reach a host's agent at its URL:
	// over TLS, with the server's certificate, checking the agent's.
	Agents Agents
}

// Agents reaches host agents as only a server may.
type Agents interface {
	AgentClient(host, url string) (*http.Client, error)
	// AgentTLS is for raw HTTP/1.1 connections (port forwards); nil means
	// cleartext.
	AgentTLS(host string) *tls.Config
}

var _ openvpcv1connect.InstanceServiceHandler = (*Instances)(nil)

func (h *Instances) RunInstance(ctx context.Context, req *connect.Request[pb.RunInstanceRequest]) (*connect.Response[pb.RunInstanceResponse], error) {
	m := req.Msg
	if err := ref(model.KindSubnet, "subnet", m.Subnet); err != nil {
		return nil, err
	}
	if err := optionalName(model.KindInstance, m.Name); err != nil {
		return nil, err
	}
	if err := securityGroupRefs(m.SecurityGroups); err != nil {
		return nil, err
	}
	token, err := imdsV1(m.ImdsV1)
	if err != nil {
		return nil, err
	}
	if len(m.UserData) > model.MaxUserData {
		return nil, model.Invalidf("user data is %d bytes; at most %d (16 KiB, as AWS)", len(m.UserData), model.MaxUserData)
	}
	spec := store.RunSpec{Subnet: m.Subnet, Name: m.Name, Host: m.Host, SecurityGroups: m.SecurityGroups, Conntrack: m.Conntrack, IMDSTokenRequired: token != nil && *token, UserData: m.UserData}
	if m.Host != "" {
		if err := model.ValidateHostID(m.Host); err != nil {
			return nil, err
		}
	}
	if m.Ip != "" {
		ip, err := model.ParseIPv4("instance address", m.Ip)
		if err != nil {
			return nil, err
		}
		spec.IP = ip
	}
	inst, err := h.Store.RunInstance(ctx, spec)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RunInstanceResponse{Instance: inst}), nil
}

func (h *Instances) GetInstance(ctx context.Context, req *connect.Request[pb.GetInstanceRequest]) (*connect.Response[pb.GetInstanceResponse], error) {
	return byRef(ctx, model.KindInstance, req.Msg.Ref, h.Store.GetInstance, func(m *pb.Instance) *pb.GetInstanceResponse { return &pb.GetInstanceResponse{Instance: m} })
}

func (h *Instances) ListInstances(ctx context.Context, req *connect.Request[pb.ListInstancesRequest]) (*connect.Response[pb.ListInstancesResponse], error) {
	m := req.Msg
	var f store.InstanceFilter
	if m.Vpc != "" {
		vpc, err := h.Store.GetVPC(ctx, m.Vpc)
		if err != nil {
			return nil, err
		}
		f.VPC = vpc.Id
	}
	if m.Subnet != "" {
		sn, err := h.Store.GetSubnet(ctx, m.Subnet)
		if err != nil {
			return nil, err
		}
		f.Subnet = sn.Id
	}
	f.Host = m.Host
	insts, err := h.Store.ListInstances(ctx, f)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListInstancesResponse{Instances: insts}), nil
}

func (h *Instances) TerminateInstance(ctx context.Context, req *connect.Request[pb.TerminateInstanceRequest]) (*connect.Response[pb.TerminateInstanceResponse], error) {
	return byRef(ctx, model.KindInstance, req.Msg.Ref, h.Store.TerminateInstance, func(m *pb.Instance) *pb.TerminateInstanceResponse { return &pb.TerminateInstanceResponse{Instance: m} })
}

// defaultWait bounds WaitInstance when the caller gives no timeout;
// maxWait bounds any.
const (
	defaultWait = 30 * time.Second
	maxWait     = time.Hour
)

func (h *Instances) WaitInstance(ctx context.Context, req *connect.Request[pb.WaitInstanceRequest]) (*connect.Response[pb.WaitInstanceResponse], error) {
	m := req.Msg
	if err := ref(model.KindInstance, "instance", m.Ref); err != nil {
		return nil, err
	}
	state := m.State
	if state == pb.InstanceState_INSTANCE_STATE_UNSPECIFIED {
		state = pb.InstanceState_INSTANCE_STATE_RUNNING
	}
	if state != pb.InstanceState_INSTANCE_STATE_RUNNING && state != pb.InstanceState_INSTANCE_STATE_TERMINATED {
		return nil, model.Invalidf("wait for running or terminated, not %s", state)
	}
	timeout, err := millis("wait timeout", m.TimeoutMs, defaultWait, maxWait)
	if err != nil {
		return nil, err
	}
	inst, err := h.Store.GetInstance(ctx, m.Ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	inst, err = h.Mapping.WaitInstance(ctx, inst.Id, state)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.WaitInstanceResponse{Instance: inst}), nil
}

func (h *Instances) ListHosts(ctx context.Context, _ *connect.Request[pb.ListHostsRequest]) (*connect.Response[pb.ListHostsResponse], error) {
	hs, err := h.Store.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	h.Mapping.HostStatus(hs)
	return connect.NewResponse(&pb.ListHostsResponse{Hosts: hs}), nil
}

// maxEvents bounds one listing of security events.
const maxEvents = 10000

func (h *Instances) ListEvents(ctx context.Context, req *connect.Request[pb.ListEventsRequest]) (*connect.Response[pb.ListEventsResponse], error) {
	if err := count("events limit", int64(req.Msg.Limit), maxEvents); err != nil {
		return nil, err
	}
	limit := int(req.Msg.Limit)
	if limit == 0 {
		limit = 100
	}
	evs, err := h.Mapping.ListEvents(ctx, limit)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ListEventsResponse{Events: evs}), nil
}

func (h *Instances) WatchEvents(ctx context.Context, _ *connect.Request[pb.WatchEventsRequest], stream *connect.ServerStream[pb.WatchEventsResponse]) error {
	return h.Mapping.WatchEvents(ctx, func(ev *pb.SecurityEvent) error {
		return stream.Send(&pb.WatchEventsResponse{Event: ev})
	})
}
