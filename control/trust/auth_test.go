package trust

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/pki"
)

// TestAuthorizeRoles: who may call what, by role, and which refusals are
// security events (a certificate calling outside its role).
func TestAuthorizeRoles(t *testing.T) {
	var (
		admin   = Caller{Admin: true}
		host    = Caller{Identity: pki.Identity{ID: "host-a", Role: pki.RoleHost}}
		edge    = Caller{Identity: pki.Identity{ID: "edge-a", Role: pki.RoleEdge}}
		service = Caller{Identity: pki.Identity{ID: "s3-a", Role: pki.RoleService}}
		server  = Caller{Identity: pki.Identity{ID: "server-x", Role: pki.RoleServer}}
		nobody  = Caller{}
	)
	const (
		catalog  = openvpcv1connect.EndpointServiceDescribeServiceCatalogProcedure
		renew    = openvpcv1connect.TrustServiceRenewProcedure
		register = openvpcv1connect.MappingServiceRegisterProcedure
		listVpcs = openvpcv1connect.VpcServiceListVpcsProcedure
		regSvc   = openvpcv1connect.EndpointServiceRegisterServiceProcedure
	)
	ok, denied, anon := error(nil), model.ErrDenied, model.ErrUnauthenticated
	for _, tc := range []struct {
		caller Caller
		path   string
		want   error
		event  bool
	}{
		{service, catalog, ok, false},
		{service, renew, ok, false},
		{service, listVpcs, denied, true},
		{service, regSvc, denied, true},
		{service, register, denied, true},
		{admin, catalog, ok, false},
		{host, catalog, denied, true},
		{edge, catalog, denied, true},
		{server, catalog, denied, false},
		{nobody, catalog, anon, false},
		{host, renew, ok, false},
		{edge, register, ok, false},
		{host, listVpcs, denied, true},
		{admin, renew, denied, false},
		{admin, listVpcs, ok, false},
		{nobody, listVpcs, anon, false},
	} {
		var events []*pb.SecurityEvent
		a := &Authority{Record: func(_ context.Context, e *pb.SecurityEvent) { events = append(events, e) }}
		err := a.authorize(context.Background(), needOf(tc.path), tc.caller, tc.path)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s %q calling %s: %v, want %v", tc.caller.Role, tc.caller.ID, tc.path, err, tc.want)
		}
		if got := len(events) == 1 && events[0].Reason == ReasonManagementRefused && events[0].HostId == tc.caller.ID; got != tc.event || len(events) > 1 {
			t.Errorf("%s %q calling %s: events %v, want a %s event: %v", tc.caller.Role, tc.caller.ID, tc.path, events, ReasonManagementRefused, tc.event)
		}
	}
}

// TestClaimService: a service certificate reads only the catalog of a
// service that lists its underlay address; administrators read any.
func TestClaimService(t *testing.T) {
	node := netip.MustParseAddr("10.0.0.31")
	svc := &pb.Service{Name: "com.openvpc.local.s3", NodeAddresses: []string{"10.0.0.30", "10.0.0.31"}}
	as := func(c Caller) context.Context { return WithCaller(context.Background(), c) }
	if err := ClaimService(as(Caller{Identity: pki.Identity{ID: "s3-a", Role: pki.RoleService, Underlay: node}}), svc); err != nil {
		t.Errorf("a node of the service: %v", err)
	}
	if err := ClaimService(as(Caller{Identity: pki.Identity{ID: "s3-b", Role: pki.RoleService, Underlay: netip.MustParseAddr("10.0.0.32")}}), svc); !errors.Is(err, model.ErrDenied) {
		t.Errorf("a service node the service does not list: %v, want denied", err)
	}
	// The right address under another role is no node.
	if err := ClaimService(as(Caller{Identity: pki.Identity{ID: "edge-a", Role: pki.RoleEdge, Underlay: node}}), svc); !errors.Is(err, model.ErrDenied) {
		t.Errorf("an edge at a node's address: %v, want denied", err)
	}
	if err := ClaimService(as(Caller{Admin: true}), svc); err != nil {
		t.Errorf("an administrator: %v", err)
	}
	if err := ClaimService(context.Background(), svc); !errors.Is(err, model.ErrUnauthenticated) {
		t.Errorf("no caller: %v, want unauthenticated", err)
	}
}
