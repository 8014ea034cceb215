package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Credentials are a host's or edge's certificate and key and the CA it
// trusts. The certificate can be replaced while connections use the old
// one: each new connection takes the current.
type Credentials struct {
	CAPEM []byte
	Pool  *x509.CertPool
	cert  atomic.Pointer[tls.Certificate]
}

// NewCredentials holds cert, trusting the CA in caPEM.
func NewCredentials(cert tls.Certificate, caPEM []byte) (*Credentials, error) {
	ca, err := ParseCert(caPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	c := &Credentials{CAPEM: caPEM, Pool: x509.NewCertPool()}
	c.Pool.AddCert(ca)
	if err := c.Set(cert); err != nil {
		return nil, err
	}
	return c, nil
}

// Set replaces the certificate.
func (c *Credentials) Set(cert tls.Certificate) error {
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return err
		}
		cert.Leaf = leaf
	}
	if _, err := IdentityOf(cert.Leaf); err != nil {
		return err
	}
	c.cert.Store(&cert)
	return nil
}

// Current is the certificate to use now.
func (c *Credentials) Current() *tls.Certificate { return c.cert.Load() }

// Identity is who the current certificate names.
func (c *Credentials) Identity() Identity {
	id, _ := IdentityOf(c.Current().Leaf) // checked by Set
	return id
}

// RenewAt is when the certificate should be replaced: two thirds into its
// life, so a renewal that fails has a third of the lifetime to retry. (Its
// life starts when it was issued, after the backdated NotBefore.)
func (c *Credentials) RenewAt() time.Time {
	l := c.Current().Leaf
	issued := l.NotBefore.Add(backdate)
	return issued.Add(2 * l.NotAfter.Sub(issued) / 3)
}

// ClientTLS is the TLS configuration to call the API server with.
func (c *Credentials) ClientTLS() *tls.Config { return ClientTLS(c.Pool, c.Current) }

// The files of a credentials directory.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
	CAFile   = "ca.pem"
)

// ErrNoCredentials means a directory holds no credentials yet.
var ErrNoCredentials = errors.New("pki: no credentials")

// LoadDir reads credentials saved by SaveDir.
func LoadDir(dir string) (*Credentials, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, ErrNoCredentials
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, err
	}
	cert, err := KeyPair(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: credentials in %s: %w", dir, err)
	}
	c, err := NewCredentials(cert, caPEM)
	return c, keyPEM, err
}

// SaveDir writes a certificate, its key and the CA into dir, the key
// readable by its owner only. Each file is replaced whole (written aside,
// then renamed) and the certificate last, so a directory with a certificate
// is complete. Renewal keeps the key, so it rewrites only the certificate.
func SaveDir(dir string, certPEM, keyPEM, caPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {CAFile, caPEM, 0o644}, {CertFile, certPEM, 0o644}} {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.b, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic replaces path with b.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// NewCredentialsPool reads PEM CA certificates into a pool.
func NewCredentialsPool(caPEM []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no PEM certificate found")
	}
	return p, nil
}
