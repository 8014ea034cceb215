// Package vpceproxy writes and reads the PROXY protocol v2 header that a
// service node puts in front of every connection it hands to a TCP
// service behind a gateway endpoint: the instance's original address and
// the endpoint it came through, in the AWS VPC-endpoint TLV (type 0xEA,
// subtype 0x01, the vpce-… id in ASCII), so any TCP service that
// understands AWS's header can be put behind an endpoint.
//
// openvpc adds one TLV of its own in the custom range, TypeVPC (0xE1),
// carrying the endpoint's vpc-… id, for policies on aws:SourceVpc.
package vpceproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/pires/go-proxyproto"
)

// ErrHeader is wrapped by every error about a header that is missing or
// not one a service node writes.
var ErrHeader = errors.New("vpceproxy: bad PROXY header")

// TLV types and the AWS subtype.
const (
	TypeAWS       proxyproto.PP2Type = 0xEA // PP2_TYPE_AWS
	SubtypeVPCEID byte               = 0x01 // PP2_SUBTYPE_AWS_VPCE_ID
	TypeVPC       proxyproto.PP2Type = 0xE1 // openvpc: the endpoint's VPC id
	maxIDLen                         = 64   // vpce-/vpc- plus 17 hex digits fit easily
)

// Origin is where a connection really came from.
type Origin struct {
	Source   netip.AddrPort // the instance's private address and port
	Dest     netip.AddrPort // the service address it connected to
	Endpoint string         // vpce-…
	VPC      string         // vpc-…, "" if the header did not say
}

// Header returns the PROXY v2 header for o.
func Header(o Origin) (*proxyproto.Header, error) {
	if err := checkID(o.Endpoint, "vpce-"); err != nil {
		return nil, err
	}
	if o.VPC != "" {
		if err := checkID(o.VPC, "vpc-"); err != nil {
			return nil, err
		}
	}
	if !o.Source.Addr().Is4() || !o.Dest.Addr().Is4() {
		return nil, fmt.Errorf("%w: source %v and destination %v must be IPv4", ErrHeader, o.Source, o.Dest)
	}
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(o.Source), net.TCPAddrFromAddrPort(o.Dest))
	tlvs := []proxyproto.TLV{{Type: TypeAWS, Value: append([]byte{SubtypeVPCEID}, o.Endpoint...)}}
	if o.VPC != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: TypeVPC, Value: []byte(o.VPC)})
	}
	if err := h.SetTLVs(tlvs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	return h, nil
}

// Write writes the header for o to w: the first bytes of the connection.
func Write(w io.Writer, o Origin) error {
	h, err := Header(o)
	if err != nil {
		return err
	}
	_, err = h.WriteTo(w)
	return err
}

// Read reads a header from the start of r (the bytes after it stay in r).
func Read(r *bufio.Reader) (Origin, error) {
	h, err := proxyproto.Read(r)
	if err != nil {
		return Origin{}, fmt.Errorf("%w: %v (a connection from a service node starts with a PROXY v2 header)", ErrHeader, err)
	}
	return FromHeader(h)
}

// FromHeader checks a parsed header and returns what it says: a v2 PROXY
// command for TCP over IPv4 with the endpoint TLV.
func FromHeader(h *proxyproto.Header) (Origin, error) {
	if h == nil {
		return Origin{}, fmt.Errorf("%w: none", ErrHeader)
	}
	if h.Version != 2 || !h.Command.IsProxy() || h.TransportProtocol != proxyproto.TCPv4 {
		return Origin{}, fmt.Errorf("%w: want a v2 PROXY header for TCP over IPv4, got version %d, %v", ErrHeader, h.Version, h.TransportProtocol)
	}
	src, dst, ok := h.TCPAddrs()
	if !ok {
		return Origin{}, fmt.Errorf("%w: no TCP addresses", ErrHeader)
	}
	o := Origin{Source: src.AddrPort(), Dest: dst.AddrPort()}
	o.Source = netip.AddrPortFrom(o.Source.Addr().Unmap(), o.Source.Port())
	o.Dest = netip.AddrPortFrom(o.Dest.Addr().Unmap(), o.Dest.Port())
	tlvs, err := h.TLVs()
	if err != nil {
		return Origin{}, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	for _, t := range tlvs {
		switch {
		case t.Type == TypeAWS && len(t.Value) > 0 && t.Value[0] == SubtypeVPCEID:
			if o.Endpoint != "" {
				return Origin{}, fmt.Errorf("%w: two endpoint ids", ErrHeader)
			}
			o.Endpoint = string(t.Value[1:])
			if err := checkID(o.Endpoint, "vpce-"); err != nil {
				return Origin{}, err
			}
		case t.Type == TypeVPC:
			if o.VPC != "" {
				return Origin{}, fmt.Errorf("%w: two VPC ids", ErrHeader)
			}
			o.VPC = string(t.Value)
			if err := checkID(o.VPC, "vpc-"); err != nil {
				return Origin{}, err
			}
		}
	}
	if o.Endpoint == "" {
		return Origin{}, fmt.Errorf("%w: no AWS VPC-endpoint TLV (0xEA/0x01)", ErrHeader)
	}
	return o, nil
}

// checkID accepts prefix followed by 1–maxIDLen lower-case letters and
// digits: ids end up in logs and policy decisions, so nothing else passes.
func checkID(id, prefix string) error {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: %q is not a %s… id", ErrHeader, id, prefix)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return fmt.Errorf("%w: %q is not a %s… id", ErrHeader, id, prefix)
		}
	}
	return nil
}
