package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The TLS settings of each kind of connection. All are TLS 1.3; HTTP/2 is
// negotiated by ALPN, so a host's many streams share one connection.

// ServerTLS is the API server's side: any client may connect (join tokens
// and admin tokens come without a certificate); a client certificate, if
// sent, must chain to the cloud's CA.
func ServerTLS(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), cas *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13, GetCertificate: getCert,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: cas, NextProtos: []string{"h2", "http/1.1"},
	}
}

// ClientTLS is a client of the API server: it trusts roots and expects the
// server name every server certificate carries. cert, when set, gives the
// client certificate of each new connection (so a renewed one is used as
// soon as it exists).
func ClientTLS(roots *x509.CertPool, cert func() *tls.Certificate) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: ServerName}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert(), nil }
	}
	return c
}

// PinnedTLS is a joining agent's side before it has the CA: the server must
// present a chain whose CA certificate has the SHA-256 fingerprint pin (from
// the join token), and a server certificate that CA issued.
func PinnedTLS(pin string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Verification is done below, against the pinned CA instead of
		// the system's roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				if c.IsCA && Fingerprint(c.Raw) == pin {
					roots := x509.NewCertPool()
					roots.AddCert(c)
					_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: ServerName})
					return err
				}
			}
			return errors.New("the server's CA is not the one the join token names (check the token, or that --server is the right cloud)")
		},
	}
}

// AgentServerTLS is a host agent's API: only an openvpc server, with a
// certificate from the cloud's CA, may call it.
func AgentServerTLS(cert func() *tls.Certificate, cas *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cas, NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert(), nil },
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := IdentityOf(cs.PeerCertificates[0])
			if err != nil || id.Role != RoleServer {
				return fmt.Errorf("only openvpc servers may call a host agent, not %s %q", id.Role, id.ID)
			}
			return nil
		},
	}
}

// AgentClientTLS is a server calling host hostID's agent: the agent must
// present a certificate from the cloud's CA naming hostID, whatever address
// its URL has.
func AgentClientTLS(roots *x509.CertPool, cert func() *tls.Certificate, hostID string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The agent is verified by the id in its certificate, not by a
		// DNS name: done below.
		InsecureSkipVerify:   true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert(), nil },
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			id, err := IdentityOf(leaf)
			if err != nil || id.ID != hostID || id.Role == RoleServer {
				return fmt.Errorf("the agent answering for host %s presented a certificate for %q", hostID, id.ID)
			}
			return nil
		},
	}
}

// HTTPClient speaks HTTP/2 over TLS with cfg, or cleartext HTTP/2 when cfg
// is nil (--insecure-loopback).
func HTTPClient(cfg *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	if cfg == nil {
		t.Protocols.SetUnencryptedHTTP2(true)
	} else {
		t.TLSClientConfig = cfg
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetHTTP1(true)
		t.ForceAttemptHTTP2 = true
	}
	// A host whose server went away must notice on its own: HTTP/2 pings
	// find a dead connection that TCP would keep for minutes.
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second}
	return &http.Client{Transport: t}
}
