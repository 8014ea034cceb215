package server_test

import (
	"net/netip"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/pki"
)

// TestJoinRefusesARegisteredUnderlay: joining with the underlay address of
// a registered host gives no certificate (and leaves the token usable).
func TestJoinRefusesARegisteredUnderlay(t *testing.T) {
	s := startServer(t)
	a := s.mapping(s.hostHTTP(t, "host-a", netip.MustParseAddr("127.0.1.1")))
	if _, err := a.Register(ctx(t), connect.NewRequest(&pb.RegisterRequest{HostId: "host-a", UnderlayAddress: "127.0.1.1"})); err != nil {
		t.Fatal(err)
	}
	tok, err := s.trust(s.adminHTTP(t)).CreateJoinToken(ctx(t), connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_HOST}))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "host-b")
	if err != nil {
		t.Fatal(err)
	}
	join := func(underlay string) (*connect.Response[pb.JoinResponse], error) {
		return s.trust(s.anonymous(t)).Join(ctx(t), connect.NewRequest(&pb.JoinRequest{Token: tok.Msg.Token, HostId: "host-b", UnderlayAddress: underlay, Csr: csr}))
	}
	r, err := join("127.0.1.1")
	if connect.CodeOf(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), "already used by host host-a") {
		t.Fatalf("join as host-b with host-a's underlay address: %v, %v; want already_exists naming host-a", r, err)
	}
	if r, err = join("127.0.1.2"); err != nil || len(r.Msg.Certificate) == 0 {
		t.Fatalf("join as host-b with its own address, same token: %v, %v", r, err)
	}
}
