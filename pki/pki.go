// Package pki is the public-key infrastructure servers, agents and clients
// share: the cloud's CA, certificates that bind a host, edge or service
// node to its id, role and underlay address, the formats of join and admin
// tokens, and the TLS settings of every connection. It does no I/O beyond
// crypto/rand.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// Role is what a certificate's holder is to the cloud.
type Role string

// The roles a certificate can name. Administrators use bearer tokens, not
// certificates.
const (
	RoleHost   Role = "host"
	RoleEdge   Role = "edge"
	RoleServer Role = "server"
	// RoleService is a stand-alone service node (openvpc service s3): it
	// reads its own service's catalog and nothing else.
	RoleService Role = "service"
)

// ServerName is the name every openvpc server's certificate carries and
// every client verifies, whatever address it dialed: trust comes from the
// cloud's own CA, which gives that name to servers only.
const ServerName = "openvpc-server"

// Lifetimes of what the CA issues.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	DefaultCertTTL = 24 * time.Hour
	ServerCertTTL  = 365 * 24 * time.Hour
)

// backdate covers clocks a little behind the CA's.
const backdate = 5 * time.Minute

// ErrBadCertificate means a certificate does not name an openvpc identity.
var ErrBadCertificate = errors.New("pki: not an openvpc certificate")

// Identity is who a certificate speaks for.
type Identity struct {
	ID   string
	Role Role
	// Underlay is the underlay address the host, edge or service node
	// joined with; hosts may register only that one, and a service node
	// reads only the catalog of a service that lists it.
	Underlay netip.Addr
	// Serial is the certificate's serial number in hex, for revocation.
	Serial   string
	NotAfter time.Time
}

// IdentityOf reads the identity a certificate issued by the CA names: its
// subject's common name is the id, its organizational unit the role.
func IdentityOf(c *x509.Certificate) (Identity, error) {
	if c.Subject.CommonName == "" || len(c.Subject.OrganizationalUnit) != 1 {
		return Identity{}, ErrBadCertificate
	}
	id := Identity{ID: c.Subject.CommonName, Role: Role(c.Subject.OrganizationalUnit[0]), Serial: Serial(c), NotAfter: c.NotAfter}
	switch id.Role {
	case RoleHost, RoleEdge, RoleService:
		if len(c.IPAddresses) != 1 {
			return Identity{}, ErrBadCertificate
		}
		a, ok := netip.AddrFromSlice(c.IPAddresses[0])
		if !ok {
			return Identity{}, ErrBadCertificate
		}
		id.Underlay = a.Unmap()
	case RoleServer:
	default:
		return Identity{}, ErrBadCertificate
	}
	return id, nil
}

// Serial is a certificate's serial number as revocation records name it.
func Serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// Fingerprint is the SHA-256 of a certificate, in hex: what a join token
// carries to pin the CA.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// NewKey makes an ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// NewCA makes a self-signed CA certificate and its key, both PEM.
func NewCA(name string) (certPEM, keyPEM []byte, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: name, Organization: []string{"openvpc"}},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(CALifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = EncodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// EncodeKey writes a private key as PEM.
func EncodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// ParseCert reads the first certificate in PEM.
func ParseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no PEM certificate found")
	}
	return x509.ParseCertificate(b.Bytes)
}

// CA is the cloud's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// LoadCA reads a CA from its PEM certificate and key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("pki: the CA certificate is not a CA (basic constraints)")
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("pki: CA key: no PEM block found")
	}
	key, err := parseECKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w (openvpc CAs use ECDSA P-256 keys, PEM SEC 1 or PKCS #8)", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("pki: the CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// parseECKey reads an ECDSA key in SEC 1 (openssl ecparam) or PKCS #8
// (openssl genpkey) form.
func parseECKey(der []byte) (*ecdsa.PrivateKey, error) {
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, not ECDSA", k)
	}
	return ec, nil
}

// Pool is a certificate pool holding just this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Fingerprint is the CA certificate's SHA-256.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert.Raw) }

// Template says what a certificate is for.
type Template struct {
	ID       string
	Role     Role
	Underlay netip.Addr // hosts, edges and service nodes
	TTL      time.Duration
	// Names and IPs are extra subject alternative names (servers: the
	// addresses clients may dial, so that curl --cacert works too).
	Names []string
	IPs   []netip.Addr
}

// Sign issues a certificate for pub as t says; the CSR's subject, if any,
// is never trusted.
func (ca *CA) Sign(pub *ecdsa.PublicKey, t Template) (certPEM []byte, cert *x509.Certificate, err error) {
	if pub.Curve != elliptic.P256() {
		return nil, nil, errors.New("pki: keys must be ECDSA P-256")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: t.ID, OrganizationalUnit: []string{string(t.Role)}, Organization: []string{"openvpc"}},
		NotBefore:    now.Add(-backdate), NotAfter: now.Add(t.TTL),
		KeyUsage: x509.KeyUsageDigitalSignature,
		// Hosts and edges also serve their agent API to servers, and
		// servers call agents: every role is both.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	switch t.Role {
	case RoleHost, RoleEdge, RoleService:
		if !t.Underlay.IsValid() {
			return nil, nil, fmt.Errorf("pki: a %s certificate needs its underlay address", t.Role)
		}
		tmpl.IPAddresses = []net.IP{t.Underlay.AsSlice()}
	case RoleServer:
		tmpl.DNSNames = append([]string{ServerName}, t.Names...)
		for _, ip := range t.IPs {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		}
	default:
		return nil, nil, fmt.Errorf("pki: unknown role %q", t.Role)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// Issue makes a key and a certificate for it: for servers, and for agents
// that run in the server's own process (`openvpc up`).
func (ca *CA) Issue(t Template) (tls.Certificate, error) {
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, _, err := ca.Sign(&key.PublicKey, t)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return KeyPair(certPEM, keyPEM, ca.CertPEM)
}

// KeyPair builds a TLS certificate from PEM, sending the CA certificate
// along: a joining agent pins the CA by its fingerprint, so it must see it.
func KeyPair(certPEM, keyPEM, caPEM []byte) (tls.Certificate, error) {
	c, err := tls.X509KeyPair(append(append([]byte{}, certPEM...), caPEM...), keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	return c, nil
}

// NewCSR makes a certificate signing request for key. The CA sets the
// subject itself; the request only proves possession of the key.
func NewCSR(key *ecdsa.PrivateKey, id string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR reads and checks a PEM certificate signing request and returns
// its public key.
func ParseCSR(csrPEM []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM certificate request found")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %v", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("certificate request key must be ECDSA P-256")
	}
	return pub, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}
