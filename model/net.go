package model

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// VPC and subnet sizes, as in AWS.
const (
	MinPrefixLen = 16
	MaxPrefixLen = 28
)

// MaxVNI is the largest 24-bit Geneve VNI. VNI 0 is never allocated.
const MaxVNI = 1<<24 - 1

// ParseCIDR parses an IPv4 CIDR whose prefix length is within [min, max] and
// which has no host bits set. what names the argument in errors.
func ParseCIDR(what, s string, minLen, maxLen int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, Invalidf("%s %q is not a CIDR; write it like 10.0.0.0/16", what, s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, Invalidf("%s %s is not IPv4; openvpc VPCs are IPv4", what, s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, Invalidf("%s %s has host bits set; did you mean %s?", what, s, p.Masked())
	}
	if p.Bits() < minLen || p.Bits() > maxLen {
		return netip.Prefix{}, Invalidf("%s %s is a /%d; it must be between /%d and /%d", what, s, p.Bits(), minLen, maxLen)
	}
	return p, nil
}

// ParseIPv4 parses a dotted-quad IPv4 address.
func ParseIPv4(what, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return netip.Addr{}, Invalidf("%s %q is not an IPv4 address", what, s)
	}
	return a, nil
}

// Overlaps reports whether two prefixes share any address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// Addr4 converts an IPv4 address to a number.
func Addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// AddrFrom4 converts a number to an IPv4 address.
func AddrFrom4(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// SubnetSize is the number of addresses in p.
func SubnetSize(p netip.Prefix) uint32 { return 1 << (32 - p.Bits()) }

// Reserved addresses of a subnet, as in AWS: the network address, the VPC
// router (+1), DNS (+2), one for future use (+3), and the last address.
const (
	reservedLow  = 4
	reservedHigh = 1
)

// Gateway is the VPC router's address in subnet p.
func Gateway(p netip.Prefix) netip.Addr { return AddrFrom4(Addr4(p.Addr()) + 1) }

// Resolver is the VPC resolver's address in a VPC with CIDR p: its base+2,
// as on AWS.
func Resolver(p netip.Prefix) netip.Addr { return AddrFrom4(Addr4(p.Masked().Addr()) + 2) }

// UsableRange is the first and last address instances may have in p.
func UsableRange(p netip.Prefix) (first, last netip.Addr) {
	base := Addr4(p.Addr())
	return AddrFrom4(base + reservedLow), AddrFrom4(base + SubnetSize(p) - 1 - reservedHigh)
}

// CheckUsable says why ip cannot be an instance address in subnet p, or nil.
func CheckUsable(p netip.Prefix, ip netip.Addr) error {
	if !p.Contains(ip) {
		return Invalidf("address %s is outside the subnet %s", ip, p)
	}
	first, last := UsableRange(p)
	if ip.Less(first) || last.Less(ip) {
		return Invalidf("address %s is reserved in subnet %s; instances use %s to %s", ip, p, first, last)
	}
	return nil
}

// MAC derives an instance's MAC address from its VPC's VNI and its private
// address: 02 (locally administered, unicast), the 24-bit VNI, then the low
// 16 bits of the address. VPCs are /16 or smaller, so the low 16 bits name
// the address within its VPC and the MAC is unique network-wide.
func MAC(vni uint32, ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(vni>>16), byte(vni>>8), byte(vni), a[2], a[3])
}
