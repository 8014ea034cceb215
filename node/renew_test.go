package node_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
)

// renewServer renews the certificate a request comes with, as the
// server's trust does, and remembers the serial of each.
type renewServer struct {
	openvpcv1connect.UnimplementedTrustServiceHandler
	ca      *pki.CA
	ttl     time.Duration
	mu      sync.Mutex
	callers []string // serials of the certificates Renew was called with
}

type peerKey struct{}

func (s *renewServer) Renew(ctx context.Context, req *connect.Request[pb.RenewRequest]) (*connect.Response[pb.RenewResponse], error) {
	peer, _ := ctx.Value(peerKey{}).(pki.Identity)
	if peer.ID == "" {
		return nil, model.Unauthenticatedf("renew with the certificate to replace")
	}
	pub, err := pki.ParseCSR(req.Msg.Csr)
	if err != nil {
		return nil, err
	}
	certPEM, _, err := s.ca.Sign(pub, pki.Template{ID: peer.ID, Role: peer.Role, Underlay: peer.Underlay, TTL: s.ttl})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.callers = append(s.callers, peer.Serial)
	s.mu.Unlock()
	return connect.NewResponse(&pb.RenewResponse{Certificate: certPEM, CaCertificate: s.ca.CertPEM}), nil
}

func (s *renewServer) renewedFrom() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.callers)
}

// newCA is a CA of the test's own.
func newCA(t *testing.T) *pki.CA {
	t.Helper()
	caPEM, caKey, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestRenewerRotates: a client NewClient made, kept by a Renewer, renews
// its certificate before it expires, keeps the new one in the directory,
// and calls with it from then on — what a service node does, which runs
// no Node.
func TestRenewerRotates(t *testing.T) {
	ca := newCA(t)
	srvCert, err := ca.Issue(pki.Template{ID: "server-test", Role: pki.RoleServer, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Renewal is due two thirds into a certificate's life. Certificates
	// count in whole seconds: a shorter life could end before its renewal
	// is answered.
	rs := &renewServer{ca: ca, ttl: 3 * time.Second}
	mux := http.NewServeMux()
	mux.Handle(openvpcv1connect.NewTrustServiceHandler(rs))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			if id, err := pki.IdentityOf(r.TLS.PeerCertificates[0]); err == nil {
				r = r.WithContext(context.WithValue(r.Context(), peerKey{}, id))
			}
		}
		mux.ServeHTTP(w, r)
	}))
	srv.TLS = pki.ServerTLS(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &srvCert, nil }, ca.Pool())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	first, err := ca.Issue(pki.Template{ID: "s3-1", Role: pki.RoleService, Underlay: netip.MustParseAddr("10.0.0.20"), TTL: rs.ttl})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.NewCredentials(first, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hc, closeConns := node.NewClient(creds)
	defer closeConns()
	r := &node.Renewer{Server: srv.URL, ID: "s3-1", Creds: creds, Dir: dir, HTTP: hc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Two renewals: the second must come with the certificate of the first.
	var from []string
	for deadline := time.Now().Add(20 * time.Second); len(from) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("renewals in 20s: %d, want 2", len(from))
		}
		from = rs.renewedFrom()
	}
	if from[0] != pki.Serial(first.Leaf) {
		t.Errorf("the first renewal came with certificate %s, want the first one, %s", from[0], pki.Serial(first.Leaf))
	}
	if from[1] == from[0] {
		t.Errorf("the second renewal came with the old certificate %s: new connections do not use the renewed one", from[1])
	}
	if id := creds.Identity(); id.ID != "s3-1" || id.Role != pki.RoleService || id.Underlay != netip.MustParseAddr("10.0.0.20") {
		t.Errorf("renewed identity %+v, want service s3-1 at 10.0.0.20", id)
	}
	kept, _, err := pki.LoadDir(dir)
	if err != nil {
		t.Fatalf("the renewed certificate was not kept in %s: %v", dir, err)
	}
	if kept.Identity().ID != "s3-1" || kept.Identity().Serial == pki.Serial(first.Leaf) {
		t.Errorf("kept %+v, want a renewed certificate of s3-1", kept.Identity())
	}
}

// TestRenewerExpired: a certificate that expires before any renewal
// succeeds is reported once, with what to do, and not retried every
// 100 ms from then on.
func TestRenewerExpired(t *testing.T) {
	ca := newCA(t)
	cert, err := ca.Issue(pki.Template{ID: "s3-1", Role: pki.RoleService, Underlay: netip.MustParseAddr("10.0.0.20"), TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.NewCredentials(cert, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	// A server that answers nothing: no one listens on port 1.
	hc, closeConns := node.NewClient(creds)
	defer closeConns()
	logs := &recordLog{}
	r := &node.Renewer{Server: "https://127.0.0.1:1", ID: "s3-1", Creds: creds, HTTP: hc, Logger: slog.New(logs)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	// Certificates count in whole seconds: this one ends within 1 s.
	time.Sleep(time.Until(cert.Leaf.NotAfter) + 1500*time.Millisecond)
	cancel()
	<-done

	var after, expired int
	for _, rec := range logs.all() {
		if rec.Time.After(cert.Leaf.NotAfter) {
			after++
		}
		if rec.Level == slog.LevelError && strings.Contains(rec.Message, "expired") && strings.Contains(rec.Message, "--join-token") {
			expired++
		}
	}
	if expired != 1 {
		t.Errorf("%d errors saying the certificate expired and what to do, want 1; logs: %v", expired, logs.all())
	}
	if after > 1 {
		t.Errorf("%d log records in the 1.5 s after the certificate expired, want 1: it retries a renewal that cannot succeed", after)
	}
}

// recordLog keeps the records logged to it.
type recordLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordLog) WithGroup(string) slog.Handler            { return l }
func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

func (l *recordLog) all() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}
