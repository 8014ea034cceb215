package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func newTestCA(t testing.TB) *CA {
	t.Helper()
	c, k, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestIdentityFromCSR: the certificate says what the CA decided, not what
// the request asked for.
func TestIdentityFromCSR(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewKey()
	csrPEM, err := NewCSR(key, "host-evil")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	under := netip.MustParseAddr("10.0.0.11")
	_, cert, err := ca.Sign(pub, Template{ID: "host-a", Role: RoleHost, Underlay: under, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id, err := IdentityOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != "host-a" || id.Role != RoleHost || id.Underlay != under || id.Serial == "" {
		t.Fatalf("identity %+v", id)
	}
	if _, err := cert.Verify(x509Opts(ca)); err != nil {
		t.Fatalf("certificate does not verify against its CA: %v", err)
	}
	if _, _, err := ca.Sign(pub, Template{ID: "host-a", Role: RoleHost, TTL: time.Hour}); err == nil {
		t.Fatal("a host certificate without an underlay address was issued")
	}
	// A CA certificate is no identity.
	if _, err := IdentityOf(ca.Cert); err == nil {
		t.Fatal("the CA certificate passed as an identity")
	}
}

// TestServiceIdentity: a service node's certificate binds its underlay
// address as a host's does, and cannot be issued without one.
func TestServiceIdentity(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewKey()
	under := netip.MustParseAddr("10.0.0.31")
	_, cert, err := ca.Sign(&key.PublicKey, Template{ID: "s3-a", Role: RoleService, Underlay: under, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id, err := IdentityOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != "s3-a" || id.Role != RoleService || id.Underlay != under {
		t.Fatalf("identity %+v, want service s3-a at %v", id, under)
	}
	if _, _, err := ca.Sign(&key.PublicKey, Template{ID: "s3-a", Role: RoleService, TTL: time.Hour}); err == nil {
		t.Fatal("a service certificate without an underlay address was issued")
	}
}

// TestPinnedTLS: a joiner trusts a server only under the CA its token pins.
func TestPinnedTLS(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	srvCert, err := ca.Issue(Template{ID: "server-x", Role: RoleServer, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	dial := func(pin string) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), PinnedTLS(pin))
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(ca.Fingerprint()); err != nil {
		t.Fatalf("pinned to the right CA: %v", err)
	}
	if err := dial(other.Fingerprint()); err == nil || !strings.Contains(err.Error(), "join token") {
		t.Fatalf("pinned to another CA: %v, want a refusal naming the token", err)
	}
}

func TestTokens(t *testing.T) {
	tok := NewToken()
	back, err := ParseToken(tok.String())
	if err != nil || back != tok || !back.Matches(tok.Hash()) {
		t.Fatalf("round trip %q: %+v, %v", tok, back, err)
	}
	if (Token{ID: tok.ID, Secret: NewToken().Secret}).Matches(tok.Hash()) {
		t.Fatal("another secret matches")
	}
	tok.CAFingerprint = strings.Repeat("ab", 32)
	if back, err := ParseToken(tok.String()); err != nil || back.CAFingerprint != tok.CAFingerprint {
		t.Fatalf("join token round trip: %+v, %v", back, err)
	}
	for _, bad := range []string{"", "x", "a.b", tok.ID, tok.ID + ".", tok.ID + "." + tok.Secret + ".zz", strings.ToUpper("zz" + tok.ID[2:] + "." + tok.Secret)} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(NewToken().String())
	f.Add("0123456789ab.0123456789abcdef0123456789abcdef." + strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("%q parsed to %+v, which does not round-trip (%v)", s, tok, err)
		}
	})
}

func x509Opts(ca *CA) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
