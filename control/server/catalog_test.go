package server_test

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/pki"
)

// joinService joins as service node id at underlay with a one-time token
// of role service, as `openvpc service s3 --join-token` does, and returns
// its client.
func (s *testServer) joinService(t *testing.T, id string, underlay netip.Addr) *http.Client {
	t.Helper()
	tok, err := s.trust(s.adminHTTP(t)).CreateJoinToken(ctx(t), connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_SERVICE, HostId: id}))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.trust(s.anonymous(t)).Join(ctx(t), connect.NewRequest(&pb.JoinRequest{Token: tok.Msg.Token, HostId: id, UnderlayAddress: underlay.String(), Csr: csr}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Msg.Role != pb.HostRole_HOST_ROLE_SERVICE {
		t.Fatalf("joined with a service token as %v", r.Msg.Role)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.KeyPair(r.Msg.Certificate, keyPEM, r.Msg.CaCertificate)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.NewCredentials(cert, r.Msg.CaCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if id := creds.Identity(); id.Role != pki.RoleService || id.Underlay != underlay {
		t.Fatalf("the service certificate names %+v", id)
	}
	return closing(t, pki.HTTPClient(creds.ClientTLS()))
}

func (s *testServer) endpoints(hc *http.Client) openvpcv1connect.EndpointServiceClient {
	return openvpcv1connect.NewEndpointServiceClient(hc, s.URL())
}

// TestServiceCatalog: a service node's certificate reads its own
// service's catalog — that service's endpoints with their VNIs and
// policies, the edges serving endpoints, its nodes — and nothing else:
// not another service's, not an unknown one's, not the management or the
// mapping API; each refusal is a security event. Hosts and edges may not
// read a catalog; administrators may read any.
func TestServiceCatalog(t *testing.T) {
	s := startServer(t)
	admin := s.adminHTTP(t)
	ep := s.endpoints(admin)
	const mine, theirs = "com.openvpc.test.mine", "com.openvpc.test.theirs"
	node, other := netip.MustParseAddr("127.0.3.1"), netip.MustParseAddr("127.0.3.2")
	for name, n := range map[string]netip.Addr{mine: node, theirs: other} {
		if _, err := ep.RegisterService(ctx(t), connect.NewRequest(&pb.RegisterServiceRequest{Name: name, Cidrs: []string{"203.0.113.0/28"}, NodeAddresses: []string{n.String()}})); err != nil {
			t.Fatal(err)
		}
	}
	vpc, err := s.vpcs(admin).CreateVpc(ctx(t), connect.NewRequest(&pb.CreateVpcRequest{Name: "red", Cidr: "10.1.0.0/16"}))
	if err != nil {
		t.Fatal(err)
	}
	const policy = `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}`
	toMine, err := ep.CreateVpcEndpoint(ctx(t), connect.NewRequest(&pb.CreateVpcEndpointRequest{Vpc: "red", ServiceName: mine, PolicyDocument: policy}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ep.CreateVpcEndpoint(ctx(t), connect.NewRequest(&pb.CreateVpcEndpointRequest{Vpc: "red", ServiceName: theirs})); err != nil {
		t.Fatal(err)
	}
	edgeAddr := netip.MustParseAddr("127.0.2.1")
	edge := s.agentHTTP(t, "edge-a", pki.RoleEdge, edgeAddr)
	if _, err := s.mapping(edge).Register(ctx(t), connect.NewRequest(&pb.RegisterRequest{HostId: "edge-a", UnderlayAddress: edgeAddr.String(), Role: pb.HostRole_HOST_ROLE_EDGE,
		Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT}}})); err != nil {
		t.Fatal(err)
	}
	// An edge of other functions relays no endpoint traffic.
	natAddr := netip.MustParseAddr("127.0.2.2")
	if _, err := s.mapping(s.agentHTTP(t, "edge-nat", pki.RoleEdge, natAddr)).Register(ctx(t), connect.NewRequest(&pb.RegisterRequest{HostId: "edge-nat", UnderlayAddress: natAddr.String(),
		Role: pb.HostRole_HOST_ROLE_EDGE, Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET}}})); err != nil {
		t.Fatal(err)
	}

	svc := s.joinService(t, "s3-a", node)
	asSvc := s.endpoints(svc)
	describe := func(c openvpcv1connect.EndpointServiceClient, name string) (*pb.DescribeServiceCatalogResponse, error) {
		r, err := c.DescribeServiceCatalog(ctx(t), connect.NewRequest(&pb.DescribeServiceCatalogRequest{ServiceName: name}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}
	cat, err := describe(asSvc, mine)
	if err != nil {
		t.Fatalf("service node s3-a reading its own service's catalog: %v", err)
	}
	want := &pb.CatalogEndpoint{Id: toMine.Msg.Endpoint.Id, VpcId: vpc.Msg.Vpc.Id, Vni: vpc.Msg.Vpc.Vni, PolicyDocument: policy}
	if len(cat.Endpoints) != 1 || cat.Endpoints[0].String() != want.String() {
		t.Errorf("catalog endpoints %v, want only %v (not the other service's)", cat.Endpoints, want)
	}
	if !slices.Equal(cat.EdgeAddresses, []string{edgeAddr.String()}) || !slices.Equal(cat.NodeAddresses, []string{node.String()}) {
		t.Errorf("catalog edges %v, nodes %v; want [%v] (the endpoint edge only), [%v]", cat.EdgeAddresses, cat.NodeAddresses, edgeAddr, node)
	}

	denied := func(what string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("%s: %v, want permission_denied", what, err)
		}
	}
	_, err = describe(asSvc, theirs)
	denied("service node s3-a reading another service's catalog", err)
	if err != nil && !strings.Contains(err.Error(), "openvpc service register "+theirs) {
		t.Errorf("the refusal does not say how to make s3-a a node of %s: %v", theirs, err)
	}
	_, err = describe(asSvc, "com.openvpc.test.unknown")
	denied("service node s3-a reading an unknown service's catalog", err)
	_, err = s.vpcs(svc).ListVpcs(ctx(t), connect.NewRequest(&pb.ListVpcsRequest{}))
	denied("service node s3-a calling ListVpcs", err)
	_, err = s.vpcs(svc).CreateVpc(ctx(t), connect.NewRequest(&pb.CreateVpcRequest{Name: "stolen", Cidr: "10.9.0.0/16"}))
	denied("service node s3-a calling CreateVpc", err)
	_, err = asSvc.RegisterService(ctx(t), connect.NewRequest(&pb.RegisterServiceRequest{Name: theirs, Cidrs: []string{"203.0.113.0/28"}, NodeAddresses: []string{node.String()}}))
	denied("service node s3-a registering itself as a node of another service", err)
	_, err = s.mapping(svc).Register(ctx(t), connect.NewRequest(&pb.RegisterRequest{HostId: "s3-a", UnderlayAddress: node.String()}))
	denied("service node s3-a registering as a host", err)
	_, err = s.trust(svc).CreateJoinToken(ctx(t), connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_SERVICE}))
	denied("service node s3-a making a join token", err)

	// Hosts and edges read no catalog.
	host := s.agentHTTP(t, "host-a", pki.RoleHost, netip.MustParseAddr("127.0.1.1"))
	_, err = describe(s.endpoints(host), mine)
	denied("host host-a reading a service catalog", err)
	if _, err := s.mapping(host).Register(ctx(t), connect.NewRequest(&pb.RegisterRequest{HostId: "host-a", UnderlayAddress: "127.0.1.1", Role: pb.HostRole_HOST_ROLE_SERVICE})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("registering with role service: %v, want invalid_argument (service nodes are not hosts)", err)
	}
	_, err = describe(s.endpoints(edge), mine)
	denied("edge edge-a reading a service catalog", err)
	// Nor do callers who prove nothing.
	if _, err := describe(s.endpoints(s.anonymous(t)), mine); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("an anonymous caller reading a service catalog: %v, want unauthenticated", err)
	}

	// Administrators read any registered service's.
	if cat, err := describe(ep, theirs); err != nil || len(cat.Endpoints) != 1 || cat.Endpoints[0].Id == toMine.Msg.Endpoint.Id {
		t.Errorf("an administrator reading %s's catalog: %v, %v", theirs, cat, err)
	}
	if _, err := describe(ep, "com.openvpc.test.unknown"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("an administrator reading an unknown service's catalog: %v, want not_found", err)
	}

	// The service node renews as itself, a service node still.
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "s3-a")
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := s.trust(svc).Renew(ctx(t), connect.NewRequest(&pb.RenewRequest{Csr: csr}))
	if err != nil {
		t.Fatalf("service node s3-a renewing: %v", err)
	}
	rc, err := pki.ParseCert(renewed.Msg.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := pki.IdentityOf(rc); err != nil || id.ID != "s3-a" || id.Role != pki.RoleService || id.Underlay != node {
		t.Errorf("renewed certificate names %+v, %v; want service s3-a at %v", id, err, node)
	}

	// Removed, the service node reads nothing more.
	if _, err := s.trust(admin).RemoveHost(ctx(t), connect.NewRequest(&pb.RemoveHostRequest{HostId: "s3-a"})); err != nil {
		t.Fatalf("removing service node s3-a: %v", err)
	}
	// Servers learn revocations through an etcd watch: a moment later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := describe(asSvc, mine)
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed service node s3-a reading its catalog: %v, want unauthenticated (its certificate revoked)", err)
		}
	}

	waitEvents(t, s, map[string][]string{
		"s3-a":   {"catalog-refused", "management-refused"},
		"host-a": {"management-refused"},
		"edge-a": {"management-refused"},
	})
}

// waitEvents waits until each host has exactly the event reasons want
// names (records are written a moment after the refusal).
func waitEvents(t *testing.T, s *testServer, want map[string][]string) {
	t.Helper()
	inst := s.instances(s.adminHTTP(t))
	var got map[string][]string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r, err := inst.ListEvents(ctx(t), connect.NewRequest(&pb.ListEventsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		got = map[string][]string{}
		for _, e := range r.Msg.Events {
			if !slices.Contains(got[e.HostId], e.Reason) {
				got[e.HostId] = append(got[e.HostId], e.Reason)
			}
		}
		same := len(got) == len(want)
		for h, rs := range want {
			slices.Sort(got[h])
			same = same && slices.Equal(got[h], rs)
		}
		if same {
			return
		}
	}
	t.Errorf("security events by host: %v, want %v", got, want)
}
