package trust

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/pki"
)

var _ openvpcv1connect.TrustServiceHandler = (*Authority)(nil)

// Join token lifetimes.
const (
	DefaultJoinTTL = time.Hour
	MaxJoinTTL     = 7 * 24 * time.Hour
)

func roleOf(r pb.HostRole) (pki.Role, error) {
	switch r {
	case pb.HostRole_HOST_ROLE_HOST:
		return pki.RoleHost, nil
	case pb.HostRole_HOST_ROLE_EDGE:
		return pki.RoleEdge, nil
	case pb.HostRole_HOST_ROLE_SERVICE:
		return pki.RoleService, nil
	}
	return "", model.Invalidf("role must be host, edge or service")
}

// HostRole is the wire role of a certificate role.
func HostRole(r pki.Role) pb.HostRole {
	switch r {
	case pki.RoleEdge:
		return pb.HostRole_HOST_ROLE_EDGE
	case pki.RoleService:
		return pb.HostRole_HOST_ROLE_SERVICE
	}
	return pb.HostRole_HOST_ROLE_HOST
}

func (a *Authority) secure() error {
	if a.cfg.Insecure {
		return model.Preconditionf("this server runs with --insecure-loopback: it has no CA, tokens or certificates")
	}
	return nil
}

func (a *Authority) CreateJoinToken(ctx context.Context, req *connect.Request[pb.CreateJoinTokenRequest]) (*connect.Response[pb.CreateJoinTokenResponse], error) {
	if err := a.secure(); err != nil {
		return nil, err
	}
	m := req.Msg
	role, err := roleOf(m.Role)
	if err != nil {
		return nil, model.Invalidf("give the token's role: --role host, --role edge or --role service")
	}
	// Bounded in seconds, before it becomes a Duration: 2^55+3600 s must
	// not wrap into an hour.
	ttl := DefaultJoinTTL
	if m.TtlSeconds != 0 {
		if m.TtlSeconds < 1 || m.TtlSeconds > int64(MaxJoinTTL/time.Second) {
			return nil, model.Invalidf("token lifetime of %d seconds must be between 1s and %v", m.TtlSeconds, MaxJoinTTL)
		}
		ttl = time.Duration(m.TtlSeconds) * time.Second
	}
	if m.HostId != "" {
		if err := model.ValidateHostID(m.HostId); err != nil {
			return nil, err
		}
	}
	tok := pki.NewToken()
	expire := time.Now().Add(ttl)
	if err := a.store.PutJoinToken(ctx, tok.ID, store.JoinToken{Hash: tok.Hash(), Role: string(role), HostID: m.HostId, Expire: expire}); err != nil {
		return nil, err
	}
	tok.CAFingerprint = a.CA.Fingerprint()
	return connect.NewResponse(&pb.CreateJoinTokenResponse{Token: tok.String(), ExpireTime: timestamppb.New(expire)}), nil
}

func (a *Authority) Join(ctx context.Context, req *connect.Request[pb.JoinRequest]) (*connect.Response[pb.JoinResponse], error) {
	if err := a.secure(); err != nil {
		return nil, err
	}
	m := req.Msg
	bad := model.Unauthenticatedf("the join token is not valid: unknown, expired or already used; make another with openvpc token create")
	tok, err := pki.ParseToken(m.Token)
	if err != nil || tok.CAFingerprint == "" {
		return nil, bad
	}
	if err := model.ValidateHostID(m.HostId); err != nil {
		return nil, err
	}
	underlay, err := model.ParseIPv4("underlay address", m.UnderlayAddress)
	if err != nil {
		return nil, err
	}
	rec, rev, err := a.store.GetJoinToken(ctx, tok.ID)
	if errors.Is(err, model.ErrNotFound) || (err == nil && (!tok.Matches(rec.Hash) || time.Now().After(rec.Expire))) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if rec.HostID != "" && rec.HostID != m.HostId {
		return nil, model.Deniedf("this join token is for host %s, not %s", rec.HostID, m.HostId)
	}
	pub, err := pki.ParseCSR(m.Csr)
	if err != nil {
		return nil, model.Invalidf("certificate request: %v", err)
	}
	role := pki.Role(rec.Role)
	certPEM, cert, err := a.CA.Sign(pub, pki.Template{ID: m.HostId, Role: role, Underlay: underlay, TTL: a.cfg.CertTTL})
	if err != nil {
		return nil, err
	}
	if err := a.store.CommitJoin(ctx, tok.ID, rev, m.HostId, underlay, pki.Serial(cert), cert.NotAfter); err != nil {
		return nil, err
	}
	a.log.Info("joined", "id", m.HostId, "role", role, "underlay", underlay, "expires", cert.NotAfter)
	return connect.NewResponse(&pb.JoinResponse{Certificate: certPEM, CaCertificate: a.CA.CertPEM, Role: HostRole(role)}), nil
}

func (a *Authority) Renew(ctx context.Context, req *connect.Request[pb.RenewRequest]) (*connect.Response[pb.RenewResponse], error) {
	if err := a.secure(); err != nil {
		return nil, err
	}
	c, _ := CallerFrom(ctx)
	if !c.Joined() {
		return nil, model.Unauthenticatedf("renew with the certificate to replace")
	}
	pub, err := pki.ParseCSR(req.Msg.Csr)
	if err != nil {
		return nil, model.Invalidf("certificate request: %v", err)
	}
	// Everything the new certificate says comes from the old one.
	certPEM, cert, err := a.CA.Sign(pub, pki.Template{ID: c.ID, Role: c.Role, Underlay: c.Underlay, TTL: a.cfg.CertTTL})
	if err != nil {
		return nil, err
	}
	if err := a.store.RecordRenewal(ctx, c.ID, c.Serial, pki.Serial(cert), cert.NotAfter); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RenewResponse{Certificate: certPEM, CaCertificate: a.CA.CertPEM}), nil
}

// RemoveHost cuts a host off in an order that holds at every step: its
// certificates are revoked first (it can no longer call any server), its
// streams end, its instances are terminated (their mappings withdrawn from
// every cache), and last its record goes (every cache forgets it, so its
// packets are unknown-sender everywhere). Interrupted, it can be run again.
func (a *Authority) RemoveHost(ctx context.Context, req *connect.Request[pb.RemoveHostRequest]) (*connect.Response[pb.RemoveHostResponse], error) {
	id := req.Msg.HostId
	if err := model.ValidateHostID(id); err != nil {
		return nil, err
	}
	_, hostErr := a.store.GetHost(ctx, id)
	if hostErr != nil && !errors.Is(hostErr, model.ErrNotFound) {
		return nil, hostErr
	}
	n, err := a.store.RevokeHost(ctx, id)
	if err != nil {
		return nil, err
	}
	if hostErr != nil && n == 0 {
		return nil, model.NotFoundf("host %s is neither registered nor joined", id)
	}
	if a.Removed != nil {
		a.Removed(id)
	}
	resp := &pb.RemoveHostResponse{Revoked: int64(n)}
	insts, err := a.store.InstancesOnHost(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		if err := a.Terminate(ctx, inst); err != nil && !errors.Is(err, model.ErrPrecondition) {
			return nil, fmt.Errorf("host %s: its certificates are revoked, but terminating instance %s failed (run host remove again): %w", id, inst, err)
		}
		resp.Terminated = append(resp.Terminated, inst)
	}
	if hostErr == nil {
		if err := a.store.DeleteHost(ctx, id); err != nil {
			return nil, err
		}
	}
	a.log.Warn("host removed", "host", id, "revoked", n, "terminated", len(resp.Terminated))
	return connect.NewResponse(resp), nil
}

// EnsureAdminConfig makes sure path holds a client config for this cloud:
// server URL, CA and a working admin token. A config for this cloud is
// kept (its URL updated); a missing one, or one for another cloud, gets a
// new admin token. Only someone who can write path (and so could read it)
// gets a token this way.
func (a *Authority) EnsureAdminConfig(ctx context.Context, path, serverURL string) (wrote bool, err error) {
	if err := a.secure(); err != nil {
		return false, err
	}
	old, err := pki.LoadClientConfig(path)
	if err == nil && old.CA == string(a.CA.CertPEM) {
		if a.checkAdmin(ctx, old.Token) == nil {
			if old.Server == serverURL {
				return false, nil
			}
			old.Server = serverURL
			return true, pki.SaveClientConfig(path, old)
		}
	} else if err == nil {
		a.log.Warn("replacing a client config of another cloud", "path", path, "its-server", old.Server)
	}
	tok := pki.NewToken()
	if err := a.store.PutAdminToken(ctx, tok.ID, tok.Hash()); err != nil {
		return false, err
	}
	return true, pki.SaveClientConfig(path, &pki.ClientConfig{Server: serverURL, CA: string(a.CA.CertPEM), Token: tok.String()})
}

// ensureUnderlay checks a registration's underlay address against the
// caller's certificate.
func ensureUnderlay(c Caller, addr netip.Addr) error {
	if c.Insecure || c.Underlay == addr {
		return nil
	}
	return model.Deniedf("%s %s joined with underlay address %s and may register no other (%s); remove it and join again to move it", c.Role, c.ID, c.Underlay, addr)
}

// Claim checks that a mapping request naming host id comes from that host:
// the id in the caller's certificate decides, never the request. In
// insecure mode the request is believed.
func Claim(ctx context.Context, id string) error {
	c, ok := CallerFrom(ctx)
	if !ok {
		return model.Unauthenticatedf("no authenticated caller")
	}
	if c.Insecure || c.ID == id {
		return nil
	}
	return model.Deniedf("%s %s may act only as itself, not as %s", c.Role, c.ID, id)
}

// ClaimService checks that a service node asks only for the catalog of a
// service it is a node of: one whose node addresses include the underlay
// address its certificate binds. Administrators may read any; an insecure
// server believes everyone.
func ClaimService(ctx context.Context, svc *pb.Service) error {
	c, ok := CallerFrom(ctx)
	if !ok {
		return model.Unauthenticatedf("no authenticated caller")
	}
	if c.Insecure || c.Admin {
		return nil
	}
	if c.Role == pki.RoleService && slices.ContainsFunc(svc.GetNodeAddresses(), func(a string) bool {
		n, err := netip.ParseAddr(a)
		return err == nil && n.Unmap() == c.Underlay
	}) {
		return nil
	}
	return model.Deniedf("%s %s (underlay %s) is not a node of service %s; an administrator lists it among the service's nodes: openvpc service register %s --cidr CIDR --node %s (and --node for each of the others)",
		c.Role, c.ID, c.Underlay, svc.GetName(), svc.GetName(), c.Underlay)
}

// ClaimRegistration checks a registration: the caller's own id, role and
// underlay address.
func ClaimRegistration(ctx context.Context, id string, role pb.HostRole, underlay netip.Addr) error {
	if err := Claim(ctx, id); err != nil {
		return err
	}
	c, _ := CallerFrom(ctx)
	if c.Insecure {
		return nil
	}
	if HostRole(c.Role) != role {
		return model.Deniedf("%s %s joined as a %s and may not register as another role", c.Role, c.ID, c.Role)
	}
	return ensureUnderlay(c, underlay)
}
