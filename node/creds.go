package node

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/pki"
)

// JoinConfig says how a host, edge or service node gets its credentials.
type JoinConfig struct {
	// Server is the URL of any openvpc server.
	Server   string
	HostID   string
	Role     pb.HostRole
	Underlay netip.Addr
	// Dir keeps the key, certificate and CA, so a restart needs no token.
	Dir string
	// Token is a one-time join token (openvpc token create); needed only
	// while Dir holds no credentials.
	Token string
	// CAFile, when set, is the CA certificate to trust the server by,
	// instead of the fingerprint the token carries.
	CAFile string
	Logger *slog.Logger
}

// LoadOrJoin returns the credentials kept in jc.Dir or, when there are
// none, joins the cloud with jc.Token and keeps what it gets. It retries
// while no server answers.
func LoadOrJoin(ctx context.Context, jc JoinConfig) (*pki.Credentials, error) {
	creds, _, err := pki.LoadDir(jc.Dir)
	switch {
	case err == nil:
		return creds, checkKept(creds, jc)
	case !errors.Is(err, pki.ErrNoCredentials):
		return nil, fmt.Errorf("node: %w (delete %s and join again with a new token)", err, jc.Dir)
	case jc.Token == "":
		return nil, fmt.Errorf("node: no credentials in %s: pass --join-token (an administrator makes one with openvpc token create --role %s)", jc.Dir, roleName(jc.Role))
	}
	return join(ctx, jc)
}

func roleName(r pb.HostRole) string {
	switch r {
	case pb.HostRole_HOST_ROLE_EDGE:
		return "edge"
	case pb.HostRole_HOST_ROLE_SERVICE:
		return "service"
	}
	return "host"
}

// checkKept refuses credentials kept for another identity or expired.
func checkKept(c *pki.Credentials, jc JoinConfig) error {
	id := c.Identity()
	switch {
	case id.ID != jc.HostID || id.Role != pki.Role(roleName(jc.Role)):
		return fmt.Errorf("node: the credentials in %s are for %s %s, not %s %s; use another --cert-dir", jc.Dir, id.Role, id.ID, roleName(jc.Role), jc.HostID)
	case id.Underlay != jc.Underlay:
		return fmt.Errorf("node: %s joined with underlay address %s, not %s; to move it, openvpc host remove %s and join again", id.ID, id.Underlay, jc.Underlay, id.ID)
	case time.Now().After(id.NotAfter):
		return fmt.Errorf("node: the certificate in %s expired at %s (the agent was away longer than its lifetime); openvpc host remove %s, then join again with a new token", jc.Dir, id.NotAfter.Format(time.RFC3339), id.ID)
	}
	return nil
}

func join(ctx context.Context, jc JoinConfig) (*pki.Credentials, error) {
	tok, err := pki.ParseToken(jc.Token)
	if err != nil || tok.CAFingerprint == "" {
		return nil, errors.New("node: --join-token is not a join token (it is ID.SECRET.CA-FINGERPRINT, as openvpc token create prints it)")
	}
	tlsCfg := pki.PinnedTLS(tok.CAFingerprint)
	if jc.CAFile != "" {
		caPEM, err := os.ReadFile(jc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("node: --ca-file: %w", err)
		}
		ca, err := pki.NewCredentialsPool(caPEM)
		if err != nil {
			return nil, fmt.Errorf("node: --ca-file %s: %w", jc.CAFile, err)
		}
		tlsCfg = pki.ClientTLS(ca, nil)
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, jc.HostID)
	if err != nil {
		return nil, err
	}
	client := openvpcv1connect.NewTrustServiceClient(pki.HTTPClient(tlsCfg), jc.Server)
	req := &pb.JoinRequest{Token: jc.Token, HostId: jc.HostID, Csr: csr, UnderlayAddress: jc.Underlay.String()}
	var resp *connect.Response[pb.JoinResponse]
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		resp, err = client.Join(ctx, connect.NewRequest(req))
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeUnavailable {
			return nil, fmt.Errorf("node: joining as %s: %w", jc.HostID, err)
		}
		if jc.Logger != nil {
			jc.Logger.Warn("cannot join yet; retrying", "server", jc.Server, "err", err, "in", wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if resp.Msg.Role != jc.Role {
		return nil, fmt.Errorf("node: the join token is for a %s, not a %s", roleName(resp.Msg.Role), roleName(jc.Role))
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := pki.SaveDir(jc.Dir, resp.Msg.Certificate, keyPEM, resp.Msg.CaCertificate); err != nil {
		return nil, fmt.Errorf("node: keeping credentials in %s: %w", jc.Dir, err)
	}
	cert, err := pki.KeyPair(resp.Msg.Certificate, keyPEM, resp.Msg.CaCertificate)
	if err != nil {
		return nil, err
	}
	return pki.NewCredentials(cert, resp.Msg.CaCertificate)
}

// rotatingTransport sends each request over the newest transport. After a
// renewal, new requests open connections with the new certificate, while
// streams already open on old connections (the subscription) run on.
type rotatingTransport struct {
	creds *pki.Credentials
	conns *conns
	cur   atomic.Pointer[http.Transport]
}

func newRotatingTransport(creds *pki.Credentials, conns *conns) *rotatingTransport {
	t := &rotatingTransport{creds: creds, conns: conns}
	t.rotate()
	return t
}

func (t *rotatingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.cur.Load().RoundTrip(r)
}

func (t *rotatingTransport) rotate() {
	next := t.conns.wrap(pki.HTTPClient(t.creds.ClientTLS()).Transport.(*http.Transport))
	if old := t.cur.Swap(next); old != nil {
		old.CloseIdleConnections()
	}
}

// NewClient returns an HTTP client that calls servers with creds (mutual
// TLS), a Renewer over it starting new connections after each renewal,
// and a func that closes every connection the client opened: for a
// process that calls the server with a joined certificate but runs no
// Node (a service node).
func NewClient(creds *pki.Credentials) (*http.Client, func()) {
	c := new(conns)
	return &http.Client{Transport: newRotatingTransport(creds, c)}, c.closeAll
}

// Renewer keeps a joined certificate renewed: two thirds into its life it
// asks the server for a new one for the same key, retrying a failed
// renewal until the certificate expires.
type Renewer struct {
	// Server is the URL of any openvpc server.
	Server string
	// ID is the certificate's holder, for the request and the logs.
	ID    string
	Creds *pki.Credentials
	// Dir, when set, is where renewed certificates are kept.
	Dir string
	// HTTP carries the renewals; when NewClient (or New) made it, later
	// requests use the renewed certificate.
	HTTP   *http.Client
	Logger *slog.Logger
}

// expiredRetry is how often a Renewer tries again once its certificate
// has expired.
const expiredRetry = 5 * time.Minute

// Run renews the certificate whenever it is due, until ctx ends.
func (r *Renewer) Run(ctx context.Context) error {
	for {
		wait := time.Until(r.Creds.RenewAt())
		select {
		case <-time.After(max(wait, 0)):
		case <-ctx.Done():
			return ctx.Err()
		}
		toldExpired := false
		for ctx.Err() == nil {
			err := r.renew(ctx)
			if err == nil {
				break
			}
			left := time.Until(r.Creds.Current().Leaf.NotAfter)
			retry := min(max(left/10, 100*time.Millisecond), 30*time.Second)
			if left > 0 {
				r.Logger.Warn("certificate renewal failed; retrying", "host", r.ID, "err", err, "expires-in", left.Round(time.Second), "in", retry)
			} else {
				// The server refuses an expired certificate, so a renewal
				// can no longer succeed: say what to do once, and try
				// again only now and then (a clock put right, say) instead
				// of every 100 ms forever.
				if !toldExpired {
					toldExpired = true
					r.Logger.Error("certificate expired before it could be renewed; the server will refuse this node until it joins again: "+
						"delete the certificate from its --cert-dir and restart with a new --join-token (openvpc token create)",
						"host", r.ID, "err", err, "expired", r.Creds.Current().Leaf.NotAfter)
				}
				retry = expiredRetry
			}
			select {
			case <-time.After(retry):
			case <-ctx.Done():
			}
		}
	}
}

// renew gets a new certificate for the same key.
func (r *Renewer) renew(ctx context.Context) error {
	key, ok := r.Creds.Current().PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("node: the certificate's key is not ECDSA")
	}
	csr, err := pki.NewCSR(key, r.ID)
	if err != nil {
		return err
	}
	resp, err := openvpcv1connect.NewTrustServiceClient(r.HTTP, r.Server).Renew(ctx, connect.NewRequest(&pb.RenewRequest{Csr: csr}))
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	cert, err := pki.KeyPair(resp.Msg.Certificate, keyPEM, r.Creds.CAPEM)
	if err != nil {
		return err
	}
	if err := r.Creds.Set(cert); err != nil {
		return err
	}
	if r.Dir != "" {
		if err := pki.SaveDir(r.Dir, resp.Msg.Certificate, keyPEM, r.Creds.CAPEM); err != nil {
			r.Logger.Error("could not keep the renewed certificate; a restart after the old one expires needs a new token", "dir", r.Dir, "err", err)
		}
	}
	if rt, ok := r.HTTP.Transport.(*rotatingTransport); ok {
		rt.rotate()
	}
	r.Logger.Info("certificate renewed", "host", r.ID, "expires", cert.Leaf.NotAfter)
	return nil
}

// insecureServer reports whether url names a cleartext server, which
// agents without credentials may use only on loopback.
func insecureServer(url string) bool { return strings.HasPrefix(url, "http://") }
