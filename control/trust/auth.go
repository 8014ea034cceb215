package trust

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/control/apierr"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/pki"
)

// Security event reasons raised by authorization.
const (
	// ReasonManagementRefused: a host, edge or service certificate called
	// an API its role may not (the management API above all).
	ReasonManagementRefused = "management-refused"
	// ReasonCatalogRefused: a service certificate asked for the catalog of
	// a service that does not list its underlay address among its nodes.
	ReasonCatalogRefused = "catalog-refused"
)

// Caller is who made a request, as proven by its certificate or token.
type Caller struct {
	// Identity is set for hosts, edges and service nodes (from their
	// certificate).
	pki.Identity
	// Admin: the request carried a valid administrator token.
	Admin bool
	// Insecure: the server runs with --insecure-loopback; request fields
	// are taken at their word.
	Insecure bool
	// Addr is the remote address, for security events.
	Addr string
	// recheck reports whether the certificate has been revoked since the
	// request began (long streams).
	recheck func() error
}

// Recheck reports whether the caller of a long-running request (a stream)
// still may: its certificate not revoked since the stream began. (Expiry
// is not rechecked: a stream opened with a valid certificate may outlive
// it, so that renewal never interrupts the host's subscription.)
func Recheck(ctx context.Context) error {
	c, ok := CallerFrom(ctx)
	if !ok || c.recheck == nil {
		return nil
	}
	return c.recheck()
}

// Agent reports whether the caller is a host or edge.
func (c Caller) Agent() bool { return c.Role == pki.RoleHost || c.Role == pki.RoleEdge }

// Joined reports whether the caller holds a certificate it joined for: a
// host's, an edge's or a service node's (not a server's).
func (c Caller) Joined() bool { return c.Agent() || c.Role == pki.RoleService }

type callerKey struct{}

// CallerFrom returns the caller of the request ctx belongs to.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller attaches a caller to ctx (the middleware does it for every
// request; tests of handlers may too).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// need is what a path requires of its caller.
type need int

const (
	needNothing need = iota
	needJoined       // a host, edge or service certificate
	needAgent        // a host or edge certificate
	needService      // a service certificate or an administrator token
	needAdmin        // an administrator token
)

// needOf maps each path to what it requires. Anything not listed is
// management, for administrators only: a new endpoint is closed until
// someone opens it here.
func needOf(path string) need {
	switch {
	// Metrics are not here: they have their own listener (server.Config.Metrics).
	case path == "/healthz" || path == openvpcv1connect.TrustServiceJoinProcedure:
		return needNothing
	case path == openvpcv1connect.TrustServiceRenewProcedure:
		return needJoined
	// A service node's one call (the handler checks which service).
	case path == openvpcv1connect.EndpointServiceDescribeServiceCatalogProcedure:
		return needService
	case strings.HasPrefix(path, "/"+openvpcv1connect.MappingServiceName+"/"),
		// An edge reports the BGP status of the Direct Connect VIFs it serves.
		path == openvpcv1connect.DirectConnectServiceReportVirtualInterfaceStatusProcedure,
		path == openvpcv1connect.DirectConnectServiceListEdgeVirtualInterfacesProcedure:
		return needAgent
	case path == openvpcv1connect.VpnServiceReportTunnelStateProcedure || path == openvpcv1connect.VpnServiceListEdgeTunnelsProcedure:
		return needAgent // an edge's own tunnels (the handlers check which edge)
	}
	return needAdmin
}

// Anonymous reports whether path is served to callers who proved nothing
// (no certificate, no token): the server bounds such calls tightly.
func Anonymous(path string) bool { return needOf(path) == needNothing }

// Handler authenticates every request, refuses those whose caller may not
// call the path, and hands the rest to next with the Caller in their
// context.
func (a *Authority) Handler(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := a.authenticate(r)
		if err == nil {
			err = a.authorize(r.Context(), needOf(r.URL.Path), c, r.URL.Path)
		}
		if err != nil {
			_ = ew.Write(w, r, apierr.Wire(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}

// authenticate finds out who sent r: a certificate (hosts, edges, service
// nodes) or a bearer token (administrators); neither is an anonymous
// caller.
func (a *Authority) authenticate(r *http.Request) (Caller, error) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := Caller{Addr: host, Insecure: a.cfg.Insecure}
	if a.cfg.Insecure {
		return c, nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		id, err := pki.IdentityOf(r.TLS.PeerCertificates[0])
		if err != nil {
			return c, model.Unauthenticatedf("the client certificate names no openvpc host, edge or service node")
		}
		c.Identity = id
		c.recheck = func() error {
			if a.isRevoked(id.Serial) {
				return a.valid(id)
			}
			return nil
		}
		return c, a.valid(id)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		raw, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return c, model.Unauthenticatedf("the Authorization header must be \"Bearer TOKEN\"")
		}
		if err := a.checkAdmin(r.Context(), raw); err != nil {
			return c, err
		}
		c.Admin = true
	}
	return c, nil
}

// valid checks what the TLS handshake could not: revocation, and expiry
// for a connection that outlived its certificate.
func (a *Authority) valid(id pki.Identity) error {
	if a.isRevoked(id.Serial) {
		return model.Unauthenticatedf("the certificate of %s %s was revoked (it was removed); join it again with a new token (openvpc token create)", id.Role, id.ID)
	}
	if time.Now().After(id.NotAfter) {
		return model.Unauthenticatedf("the certificate of %s %s expired at %s; open a new connection with the renewed one", id.Role, id.ID, id.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// checkAdmin verifies an administrator token against its stored hash.
func (a *Authority) checkAdmin(ctx context.Context, raw string) error {
	bad := model.Unauthenticatedf("the admin token is not valid for this cloud; use the config openvpc server/up wrote (--config, $%s)", pki.ConfigEnv)
	tok, err := pki.ParseToken(raw)
	if err != nil || tok.CAFingerprint != "" {
		return bad
	}
	a.adminMu.Lock()
	e, ok := a.admins[tok.ID]
	a.adminMu.Unlock()
	if !ok || time.Since(e.at) > adminCacheFor {
		hash, found, err := a.store.AdminToken(ctx, tok.ID)
		if err != nil {
			return err
		}
		if !found {
			return bad
		}
		e = adminEntry{hash: hash, at: time.Now()}
		a.adminMu.Lock()
		a.admins[tok.ID] = e
		a.adminMu.Unlock()
	}
	if !tok.Matches(e.hash) {
		return bad
	}
	return nil
}

func (a *Authority) authorize(ctx context.Context, n need, c Caller, path string) error {
	if c.Insecure || n == needNothing {
		return nil
	}
	switch n {
	case needJoined:
		if c.Joined() {
			return nil
		}
		if c.Admin || c.Role == pki.RoleServer {
			return model.Deniedf("%s is for hosts, edges and service nodes, with their certificate", path)
		}
		return model.Unauthenticatedf("%s renews the certificate it is called with; call it with that certificate", path)
	case needAgent:
		if c.Agent() {
			return nil
		}
		if c.Role == pki.RoleService {
			return a.refuseRole(ctx, c, path)
		}
		if c.Admin || c.Role == pki.RoleServer {
			return model.Deniedf("%s is for hosts and edges, with their certificate", path)
		}
		return model.Unauthenticatedf("hosts and edges call %s with their certificate: start the agent with --join-token (openvpc token create makes one)", path)
	case needService:
		if c.Admin || c.Role == pki.RoleService {
			return nil
		}
		if c.Joined() {
			return a.refuseRole(ctx, c, path)
		}
		if c.Role == pki.RoleServer {
			return model.Deniedf("%s is for service nodes and administrators", path)
		}
		return model.Unauthenticatedf("no credentials: a service node calls %s with its certificate (start it with --join-token; openvpc token create --role service makes one), an administrator with --config or %s", path, pki.ConfigEnv)
	default:
		if c.Admin {
			return nil
		}
		if c.Joined() {
			return a.refuseRole(ctx, c, path)
		}
		return model.Unauthenticatedf("no admin token: run openvpc with --config or set %s to the config openvpc server/up wrote (default %s)", pki.ConfigEnv, pki.DefaultConfigPath())
	}
}

// refuseRole refuses a certificate a path its role may not call, and
// records it: a joined machine calling outside its role is either broken
// or someone using its key.
func (a *Authority) refuseRole(ctx context.Context, c Caller, path string) error {
	what := "the management API"
	switch {
	case c.Role == pki.RoleService:
		what = "an API other than its service's catalog"
	case needOf(path) == needService:
		what = "a service node's catalog"
	}
	a.refuse(ctx, c, ReasonManagementRefused, fmt.Sprintf("%s %s called %s (%s)", c.Role, c.ID, what, path))
	if c.Role == pki.RoleService {
		return model.Deniedf("service node %s may call only %s (its service's catalog); anything else needs an administrator", c.ID, openvpcv1connect.EndpointServiceDescribeServiceCatalogProcedure)
	}
	return model.Deniedf("%s %s may not call %s", c.Role, c.ID, what)
}

// refuse records an authenticated caller's refused request.
func (a *Authority) refuse(ctx context.Context, c Caller, reason, detail string) {
	if a.Record != nil {
		a.Record(context.WithoutCancel(ctx), &pb.SecurityEvent{HostId: c.ID, Reason: reason, OuterSrc: c.Addr, Detail: detail})
	}
}
