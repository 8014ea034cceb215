package model

import (
	"crypto/rand"
	"net/netip"
	"strings"
)

// Direct Connect's rules, as AWS's: a private virtual interface is one
// 802.1Q VLAN on a connection (a port), an eBGP session with the
// customer's router over a /30 of link-local addresses, always with an
// MD5 key.

// The kinds of Direct Connect resources (KindDirectConnect, dxvif, names
// the route target).
const (
	KindDXConnection Kind = "dxcon"
	KindDXGateway    Kind = "dxgw"
)

// VLAN ids a VIF may use: 0 is "no VLAN" and 4095 is reserved (802.1Q).
const (
	MinVLAN = 1
	MaxVLAN = 4094
)

// ValidateVLAN checks a VIF's VLAN id.
func ValidateVLAN(vid uint32) error {
	if vid < MinVLAN || vid > MaxVLAN {
		return Invalidf("VLAN %d: a virtual interface's VLAN id is 1–4094", vid)
	}
	return nil
}

// ValidateCustomerASN checks the ASN of the customer's router: public or
// private, 2 or 4 bytes, except those no router may use.
func ValidateCustomerASN(asn uint32) error {
	switch {
	case asn == 0 || asn == 4294967295:
		return Invalidf("customer ASN %d is reserved (RFC 7607, RFC 7300); give your router's ASN, for example a private one in 64512–65534", asn)
	case asn == 23456:
		return Invalidf("customer ASN 23456 is AS_TRANS (RFC 6793), not a real ASN; give your router's 4-byte ASN")
	case asn == 65535:
		return Invalidf("customer ASN 65535 is reserved (RFC 7300)")
	}
	return nil
}

// ValidateAmazonASN checks the Amazon-side ASN of a gateway: AWS takes a
// private ASN, 64512–65534 or 4200000000–4294967294.
func ValidateAmazonASN(asn uint32) error {
	if (asn >= 64512 && asn <= 65534) || (asn >= 4200000000 && asn <= 4294967294) {
		return nil
	}
	return Invalidf("Amazon-side ASN %d: use a private ASN, 64512–65534 or 4200000000–4294967294 (default 64512)", asn)
}

// DefaultAmazonASN is a gateway's ASN when none is given.
const DefaultAmazonASN = 64512

// LinkLocal is where BGP peer addresses of virtual interfaces come from.
var LinkLocal = netip.MustParsePrefix("169.254.0.0/16")

// metadataPeers is the /30 of the instance metadata address, which no VIF
// may use.
var metadataPeers = netip.MustParsePrefix("169.254.169.252/30")

// ValidatePeerAddresses checks a VIF's two BGP peer addresses, each given
// with its prefix length ("169.254.10.1/30"): both in one /30 of
// 169.254.0.0/16, distinct, neither the /30's network nor broadcast
// address.
func ValidatePeerAddresses(amazon, customer netip.Prefix) error {
	for _, x := range []struct {
		side string
		p    netip.Prefix
	}{{"Amazon", amazon}, {"customer", customer}} {
		p := x.p
		if !p.IsValid() || !p.Addr().Is4() {
			return Invalidf("%s peer address %v: give an IPv4 address with its /30, such as 169.254.10.1/30", x.side, p)
		}
		if p.Bits() != 30 {
			return Invalidf("%s peer address %v: the peer network is a /30", x.side, p)
		}
		if !LinkLocal.Contains(p.Addr()) {
			return Invalidf("%s peer address %v is outside 169.254.0.0/16, where a private VIF's peer addresses come from", x.side, p)
		}
		if metadataPeers.Overlaps(p) {
			return Invalidf("%s peer address %v is in 169.254.169.252/30, the instance metadata network; choose another /30", x.side, p)
		}
		host := p.Addr().As4()[3] & 3
		if host == 0 || host == 3 {
			return Invalidf("%s peer address %v is the network or broadcast address of %v; use .1 or .2 of it", x.side, p.Addr(), p.Masked())
		}
	}
	if amazon.Masked() != customer.Masked() {
		return Invalidf("the peer addresses %v and %v are not in one /30", amazon, customer)
	}
	if amazon.Addr() == customer.Addr() {
		return Invalidf("the Amazon and customer peer addresses are both %v", amazon.Addr())
	}
	return nil
}

// AllocatePeerAddresses picks a random /30 of 169.254.0.0/16 (not the
// metadata one) for a VIF whose addresses were not given: .1 Amazon's,
// .2 the customer's. Each VIF has a stack of its own on the edge, so
// /30s of different VIFs may even repeat; taken lists the ones to avoid
// anyway (the connection's), to keep configurations readable.
func AllocatePeerAddresses(taken []netip.Prefix) (amazon, customer netip.Prefix) {
	for {
		var b [2]byte
		_, _ = rand.Read(b[:])
		base := netip.AddrFrom4([4]byte{169, 254, b[0], b[1] &^ 3})
		net30 := netip.PrefixFrom(base, 30)
		if metadataPeers.Overlaps(net30) || b[0] == 0 {
			continue // 169.254.0.x is where hosts' own link-local addresses cluster
		}
		clash := false
		for _, t := range taken {
			clash = clash || t.Overlaps(net30)
		}
		if clash {
			continue
		}
		return netip.PrefixFrom(base.Next(), 30), netip.PrefixFrom(base.Next().Next(), 30)
	}
}

// Rules for BGP MD5 keys: Linux takes at most 80 bytes (TCP_MD5SIG); the
// key goes into router configurations verbatim, so it holds no blanks and
// none of the characters router CLIs take as comments or quotes.
const (
	MinAuthKey = 6
	MaxAuthKey = 80
)

// ValidateAuthKey checks a VIF's BGP MD5 key.
func ValidateAuthKey(key string) error {
	if len(key) < MinAuthKey || len(key) > MaxAuthKey {
		return Invalidf("BGP key: %d characters; give %d–%d, or leave it out to have one generated", len(key), MinAuthKey, MaxAuthKey)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c <= ' ' || c >= 0x7f {
			return Invalidf("BGP key: character %d is a blank, a control character or not ASCII; use printable ASCII", i+1)
		}
		if strings.IndexByte(`!#"'?\`, c) >= 0 {
			return Invalidf("BGP key: %q at character %d breaks router configurations (a comment, quote or help key); leave it out", c, i+1)
		}
	}
	return nil
}

// NewAuthKey generates a key as AWS does when none is given: 24 letters
// and digits.
func NewAuthKey() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ValidatePortName checks a connection's port: a Linux interface name on
// the edge.
func ValidatePortName(port string) error {
	if port == "" || len(port) > 15 {
		return Invalidf("port %q: give the edge's interface name (1–15 characters, as Linux allows)", port)
	}
	for _, c := range port {
		if c == '/' || c == ':' || c <= ' ' || c > '~' {
			return Invalidf("port %q: %q cannot be in a Linux interface name", port, c)
		}
	}
	return nil
}

// ValidateHoldTime checks a VIF's BGP hold time in seconds: 0 means AWS's
// 90; otherwise at least 3 (keepalive is a third of it).
func ValidateHoldTime(s uint32) error {
	if s != 0 && (s < 3 || s > 65535) {
		return Invalidf("BGP hold time %d s: use 3–65535 seconds (AWS's default, and ours, is 90)", s)
	}
	return nil
}
