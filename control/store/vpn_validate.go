package store

import (
	"net/netip"

	"github.com/openvpc/openvpc/model"
)

// Validators of VPN input, with AWS's rules. Each error says what to give
// instead.

// linkLocal is where tunnel inside addresses come from.
var linkLocal = netip.MustParsePrefix("169.254.0.0/16")

// reservedInside are the /30s AWS refuses as tunnel inside CIDRs.
var reservedInside = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/30"), netip.MustParsePrefix("169.254.1.0/30"),
	netip.MustParsePrefix("169.254.2.0/30"), netip.MustParsePrefix("169.254.3.0/30"),
	netip.MustParsePrefix("169.254.4.0/30"), netip.MustParsePrefix("169.254.5.0/30"),
	netip.MustParsePrefix("169.254.169.252/30"),
}

// ValidateInsideCIDR checks a tunnel's inside CIDR: a /30 network inside
// 169.254.0.0/16 that is not one AWS reserves.
func ValidateInsideCIDR(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return model.Invalidf("tunnel inside CIDR %v is not an IPv4 prefix; give a /30 in 169.254.0.0/16, e.g. 169.254.10.0/30", p)
	}
	if p.Bits() != 30 {
		return model.Invalidf("tunnel inside CIDR %s is a /%d; it must be a /30 in 169.254.0.0/16, e.g. 169.254.10.0/30", p, p.Bits())
	}
	if p.Masked() != p {
		return model.Invalidf("tunnel inside CIDR %s has host bits set; its network is %s", p, p.Masked())
	}
	if !linkLocal.Contains(p.Addr()) {
		return model.Invalidf("tunnel inside CIDR %s is outside 169.254.0.0/16; pick a /30 there, e.g. 169.254.10.0/30", p)
	}
	for _, r := range reservedInside {
		if r == p {
			return model.Invalidf("tunnel inside CIDR %s is reserved (169.254.0.0/30 to 169.254.5.0/30 and 169.254.169.252/30 are); pick another /30 in 169.254.0.0/16", p)
		}
	}
	return nil
}

// ValidateASN checks a BGP ASN a user gives for a customer gateway or the
// Amazon side: 1–4294967294, not 7224 (AWS's own) and, for a customer
// gateway, not 64512 (the Amazon side's default, which would make the
// session iBGP).
func ValidateASN(asn uint32, customer bool) error {
	switch {
	case asn == 0 || asn == 4294967295:
		return model.Invalidf("BGP ASN %d is not usable; give 1–4294967294 (private: 64512–65534 or 4200000000–4294967294)", asn)
	case asn == 7224:
		return model.Invalidf("BGP ASN 7224 is reserved (AWS's own); pick another, e.g. a private one 64512–65534")
	case customer && asn == 64512:
		return model.Invalidf("BGP ASN 64512 is the VPC side's default ASN; give the customer gateway another one, e.g. 65000")
	}
	return nil
}

// ValidatePSK checks a pre-shared key with AWS's rules: 8–64 characters of
// letters, digits, '.' and '_', not starting with '0'.
func ValidatePSK(k string) error {
	if len(k) < 8 || len(k) > 64 {
		return model.Invalidf("pre-shared key is %d characters long; it must be 8–64 characters", len(k))
	}
	if k[0] == '0' {
		return model.Invalidf("pre-shared key starts with '0'; it must not (AWS's rule)")
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' {
			continue
		}
		return model.Invalidf("pre-shared key has %q at position %d; use only letters, digits, '.' and '_'", c, i+1)
	}
	return nil
}

// ValidateSiteRoute checks a prefix a site may be routed: an IPv4 network
// (no host bits), not the default route's /0 nor inside 169.254.0.0/16,
// loopback or multicast, which are never routed to a site.
func ValidateSiteRoute(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return model.Invalidf("route %v is not an IPv4 prefix; give one like 192.168.0.0/16", p)
	}
	if p.Masked() != p {
		return model.Invalidf("route %s has host bits set; its network is %s", p, p.Masked())
	}
	if p.Bits() == 0 {
		return model.Invalidf("route 0.0.0.0/0 to a site is not supported; give the site's own prefixes")
	}
	a := p.Addr()
	if linkLocal.Overlaps(p) || a.IsLoopback() || a.IsMulticast() || netip.MustParsePrefix("240.0.0.0/4").Overlaps(p) {
		return model.Invalidf("route %s is link-local, loopback, multicast or reserved; a site is routed only unicast prefixes", p)
	}
	return nil
}
