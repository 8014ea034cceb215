package mapping

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/trust"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
)

var _ openvpcv1connect.MappingServiceHandler = (*Service)(nil)

// Security event reasons raised by the Mapping Service itself.
const (
	ReasonScopeRefused     = "scope-refused"
	ReasonSubscribeRefused = "subscribe-refused"
	// ReasonClaimRefused: a host or edge asked to register, acknowledge or
	// report as another one.
	ReasonClaimRefused = "claim-refused"
)

// claim lets a request naming host through only if it comes from host, as
// its certificate says; a refusal is a security event of reason.
func (s *Service) claim(ctx context.Context, host, reason, what string, check func() error) error {
	err := check()
	if err == nil {
		return nil
	}
	c, _ := trust.CallerFrom(ctx)
	s.Record(ctx, &pb.SecurityEvent{
		HostId: c.ID, Reason: reason, OuterSrc: c.Addr,
		Detail: fmt.Sprintf("%s %s tried to %s as host %s: %v", c.Role, c.ID, what, host, err),
	})
	return err
}

// claimAs checks that a request naming host comes from host.
func (s *Service) claimAs(ctx context.Context, host, reason, what string) error {
	return s.claim(ctx, host, reason, what, func() error { return trust.Claim(ctx, host) })
}

func (s *Service) Register(ctx context.Context, req *connect.Request[pb.RegisterRequest]) (*connect.Response[pb.RegisterResponse], error) {
	m := req.Msg
	if err := model.ValidateHostID(m.HostId); err != nil {
		return nil, err
	}
	addr, err := model.ParseIPv4("underlay address", m.UnderlayAddress)
	if err != nil {
		return nil, err
	}
	if addr.IsUnspecified() || addr.IsMulticast() {
		return nil, model.Invalidf("underlay address %s cannot be used; give the host's own unicast address", addr)
	}
	role := m.Role
	switch role {
	case pb.HostRole_HOST_ROLE_UNSPECIFIED:
		role = pb.HostRole_HOST_ROLE_HOST
	case pb.HostRole_HOST_ROLE_HOST, pb.HostRole_HOST_ROLE_EDGE:
	default:
		return nil, model.Invalidf("role %v cannot register: only hosts and edges do (a service node is named among its service's nodes: openvpc service register)", role)
	}
	if err := validateFunctions(role, m.Functions); err != nil {
		return nil, err
	}
	if err := s.claim(ctx, m.HostId, ReasonClaimRefused, "register", func() error {
		return trust.ClaimRegistration(ctx, m.HostId, role, addr)
	}); err != nil {
		return nil, err
	}
	h, err := s.store.RegisterHost(ctx, m.HostId, addr, role, m.AgentUrl, m.Functions...)
	if err != nil {
		return nil, err
	}
	s.acks.add(h.Id, s.ackedRevision(h.Id))
	return connect.NewResponse(&pb.RegisterResponse{Host: h, DnsUpstream: s.dnsUpstream}), nil
}

func (s *Service) ackedRevision(host string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.acks[host].Revision
}

func (s *Service) Subscribe(ctx context.Context, req *connect.Request[pb.SubscribeRequest], stream *connect.ServerStream[pb.SubscribeResponse]) error {
	host := req.Msg.HostId
	if err := model.ValidateHostID(host); err != nil {
		return err
	}
	if req.Msg.FromRevision < 0 {
		return model.Invalidf("from revision %d: revisions are not negative (0 asks for a snapshot)", req.Msg.FromRevision)
	}
	// Another host's stream is another host's scope: "you were never yellow".
	if err := s.claimAs(ctx, host, ReasonScopeRefused, "subscribe"); err != nil {
		return err
	}
	if _, err := s.store.GetHost(ctx, host); err != nil {
		if errors.Is(err, model.ErrNotFound) {
			s.Record(ctx, &pb.SecurityEvent{HostId: host, Reason: ReasonSubscribeRefused, Detail: "subscription for a host that is not registered"})
			return model.Preconditionf("host %q is not registered; register it before subscribing", host)
		}
		return err
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, gen := s.attach(host, req.Msg.FromRevision, cancel)
	defer s.detach(m, gen)
	for {
		b, needSnapshot, stale := m.next(gen)
		switch {
		case stale:
			return nil // a newer stream of the same host took over
		case needSnapshot:
			s.snapshotFor(m)
		case b != nil:
			// A stream outlives its request: a revoked certificate gets
			// nothing more, whichever server it is connected to.
			if err := trust.Recheck(ctx); err != nil {
				return err
			}
			if err := stream.Send(b); err != nil {
				return nil // the host went away; it resumes on reconnect
			}
		default:
			select {
			case <-m.notify:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// attach gives the host's mailbox to a new stream, ending any older one.
func (s *Service) attach(host string, from int64, cancel context.CancelFunc) (*mailbox, int) {
	s.mu.Lock()
	m := s.boxes[host]
	if m == nil {
		m = newMailbox(host)
		s.boxes[host] = m
	}
	s.mu.Unlock()
	m.mu.Lock()
	if m.stream != nil {
		m.stream()
	}
	m.gen++
	m.stream, m.detached = cancel, time.Time{}
	gen := m.gen
	m.mu.Unlock()
	m.resume(from)
	return m, gen
}

func (s *Service) detach(m *mailbox, gen int) {
	m.mu.Lock()
	if m.gen == gen {
		m.stream, m.detached = nil, time.Now()
	}
	m.mu.Unlock()
}

func (s *Service) Ack(ctx context.Context, req *connect.Request[pb.AckRequest]) (*connect.Response[pb.AckResponse], error) {
	if err := s.claimAs(ctx, req.Msg.HostId, ReasonClaimRefused, "acknowledge"); err != nil {
		return nil, err
	}
	if err := s.ack(req.Msg.HostId, req.Msg.Revision); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AckResponse{}), nil
}

// AckStream takes a host's acknowledgements from one stream until the host
// closes it; each message counts as an Ack.
func (s *Service) AckStream(ctx context.Context, stream *connect.ClientStream[pb.AckStreamRequest]) (*connect.Response[pb.AckStreamResponse], error) {
	for stream.Receive() {
		// A stream outlives requests: a host removed meanwhile stops here.
		if err := trust.Recheck(ctx); err != nil {
			return nil, err
		}
		if err := s.claimAs(ctx, stream.Msg().HostId, ReasonClaimRefused, "acknowledge"); err != nil {
			return nil, err
		}
		if err := s.ack(stream.Msg().HostId, stream.Msg().Revision); err != nil {
			return nil, err
		}
	}
	if err := stream.Err(); err != nil && ctx.Err() == nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AckStreamResponse{}), nil
}

// ack records that host applied rev.
func (s *Service) ack(host string, rev int64) error {
	if err := model.ValidateHostID(host); err != nil {
		return err
	}
	if rev < 0 {
		return model.Invalidf("acknowledged revision %d: revisions are not negative", rev)
	}
	s.mu.Lock()
	m := s.boxes[host]
	// Acks this server receives count at once; the store copy, written
	// next, is for the other servers.
	s.acked(host, rev)
	s.mu.Unlock()
	if m != nil {
		m.ack(rev)
	}
	s.acks.add(host, rev)
	return nil
}

func (s *Service) GetVpcMappings(ctx context.Context, req *connect.Request[pb.GetVpcMappingsRequest]) (*connect.Response[pb.GetVpcMappingsResponse], error) {
	host, vni := req.Msg.HostId, req.Msg.Vni
	if err := model.ValidateHostID(host); err != nil {
		return nil, err
	}
	if err := s.claimAs(ctx, host, ReasonScopeRefused, fmt.Sprintf("read VPC VNI %d", vni)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	vpc := s.w.byVNI[vni]
	_, inScope := s.w.scope(host)[vpc]
	var resp *pb.GetVpcMappingsResponse
	if vpc != "" && inScope {
		resp = &pb.GetVpcMappingsResponse{Vpc: s.w.facts(vpc)}
		for id := range s.w.vpcInsts[vpc] {
			resp.Mappings = append(resp.Mappings, s.w.forHost(host, s.w.upserts[id]).GetUpsertMapping())
		}
	}
	s.mu.Unlock()
	if resp == nil {
		s.Record(ctx, &pb.SecurityEvent{
			HostId: host, Reason: ReasonScopeRefused, ClaimedVni: vni,
			Detail: fmt.Sprintf("host %s asked for VPC VNI %d, which none of its instances belong to", host, vni),
		})
		return nil, model.Deniedf("VPC with VNI %d is outside host %s's scope", vni, host)
	}
	return connect.NewResponse(resp), nil
}

func (s *Service) ReportEvents(ctx context.Context, req *connect.Request[pb.ReportEventsRequest]) (*connect.Response[pb.ReportEventsResponse], error) {
	if err := model.ValidateHostID(req.Msg.HostId); err != nil {
		return nil, err
	}
	if err := s.claimAs(ctx, req.Msg.HostId, ReasonClaimRefused, "report events"); err != nil {
		return nil, err
	}
	c, _ := trust.CallerFrom(ctx)
	if err := s.events.report(ctx, req.Msg.HostId, c.Addr, req.Msg.Events); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ReportEventsResponse{}), nil
}

// functionTargets is the id prefix of each edge function's targets; the
// internet function serves every internet gateway and names none.
var functionTargets = map[pb.EdgeFunctionKind]model.Kind{
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET:       "",
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN:            model.KindVPNConnection,
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT: model.KindDirectConnect,
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT:       model.KindEndpoint,
}

// maxFunctionTargets bounds what one edge may claim to serve.
const maxFunctionTargets = 4096

// validateFunctions checks what an edge says it serves: only edges serve
// functions, each kind once, with targets of the kind's own ids.
func validateFunctions(role pb.HostRole, fns []*pb.EdgeFunction) error {
	if len(fns) > 0 && role != pb.HostRole_HOST_ROLE_EDGE {
		return model.Invalidf("a host serves no edge functions; register as an edge (openvpc edge) to serve them")
	}
	seen := map[pb.EdgeFunctionKind]bool{}
	n := 0
	for _, f := range fns {
		prefix, ok := functionTargets[f.GetKind()]
		switch {
		case !ok:
			return model.Invalidf("edge function %v is not one openvpc has; use internet, vpn, direct-connect or endpoint", f.GetKind())
		case seen[f.Kind]:
			return model.Invalidf("edge function %v listed twice; list each once with all its targets", f.Kind)
		case prefix == "" && len(f.Targets) > 0:
			return model.Invalidf("the internet function serves every internet gateway; name no targets")
		}
		seen[f.Kind] = true
		if n += len(f.Targets); n > maxFunctionTargets {
			return model.Invalidf("an edge may serve at most %d targets", maxFunctionTargets)
		}
		for _, t := range f.Targets {
			if _, ok := model.ParseID(prefix, t); !ok {
				return model.Invalidf("edge function %v: target %.40q is not a %s- id", f.Kind, t, prefix)
			}
		}
	}
	return nil
}
