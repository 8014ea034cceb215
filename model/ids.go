package model

import (
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"strings"
)

// Kind is a resource kind; its value is the AWS-style id prefix.
type Kind string

const (
	KindVPC        Kind = "vpc"
	KindSubnet     Kind = "subnet"
	KindRouteTable Kind = "rtb"
	KindInstance   Kind = "i"
	KindENI        Kind = "eni"
	KindPeering    Kind = "pcx"
	KindEvent      Kind = "evt"
	KindIGW        Kind = "igw"
	KindEIP        Kind = "eipalloc"
	// Security groups, their rules, and network ACLs.
	KindSecurityGroup     Kind = "sg"
	KindSecurityGroupRule Kind = "sgr"
	KindNetworkACL        Kind = "acl"
	KindPrefixList        Kind = "pl"
	KindFlowLog           Kind = "fl"
	// KindZone is a private hosted zone: zone-0123456789abcdef.
	KindZone Kind = "zone"
	// Site-to-site VPN: the customer's router, the VPC's gateway, and the
	// connection between them (the target of propagated VPN routes).
	KindCustomerGateway Kind = "cgw"
	KindVPNGateway      Kind = "vgw"
	KindVPNConnection   Kind = "vpn"
	// Targets of edge functions the control plane does not manage yet;
	// edges may already name them as what they serve.
	KindDirectConnect Kind = "dxvif"
	KindEndpoint      Kind = "vpce"
)

// ANoun is Noun with its article: a VPC, an Elastic IP, an instance.
func (k Kind) ANoun() string {
	n := k.Noun()
	if n != "" && strings.ContainsRune("AEIOUaeiou", rune(n[0])) {
		return "an " + n
	}
	return "a " + n
}

// Noun is the word used for the kind in messages.
func (k Kind) Noun() string {
	switch k {
	case KindVPC:
		return "VPC"
	case KindSubnet:
		return "subnet"
	case KindRouteTable:
		return "route table"
	case KindInstance:
		return "instance"
	case KindENI:
		return "network interface"
	case KindPeering:
		return "peering"
	case KindEvent:
		return "event"
	case KindIGW:
		return "internet gateway"
	case KindEIP:
		return "Elastic IP"
	case KindSecurityGroup:
		return "security group"
	case KindSecurityGroupRule:
		return "security group rule"
	case KindNetworkACL:
		return "network ACL"
	case KindPrefixList:
		return "prefix list"
	case KindFlowLog:
		return "flow log"
	case KindZone:
		return "zone"
	case KindCustomerGateway:
		return "customer gateway"
	case KindVPNGateway:
		return "virtual private gateway"
	case KindVPNConnection:
		return "VPN connection"
	case KindDXConnection:
		return "Direct Connect connection"
	case KindDirectConnect:
		return "virtual interface"
	case KindDXGateway:
		return "Direct Connect gateway"
	}
	return string(k)
}

// idDigits is the number of hex digits after the prefix. Sixteen digits are
// 64 bits, so a host cache can hold an id as one uint64.
const idDigits = 16

// NewID returns a fresh random id of kind k, e.g. vpc-3f2a09c1d4e5b6a7.
func NewID(k Kind) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux.
	return FormatID(k, binary.BigEndian.Uint64(b[:]))
}

// FormatID spells the id of kind k with number n.
func FormatID(k Kind, n uint64) string {
	s := strconv.FormatUint(n, 16)
	return string(k) + "-" + strings.Repeat("0", idDigits-len(s)) + s
}

// ParseID returns the number of an id of kind k.
func ParseID(k Kind, id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, string(k)+"-")
	if !ok || len(rest) != idDigits {
		return 0, false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(rest, 16, 64)
	return n, err == nil
}

// IsID reports whether s is spelled like an id of kind k.
func IsID(k Kind, s string) bool {
	_, ok := ParseID(k, s)
	return ok
}
