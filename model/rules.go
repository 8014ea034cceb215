package model

import (
	"strconv"
	"strings"
)

// IP protocol numbers that rules name, and ProtoAll for every protocol.
const (
	ProtoAll  int32 = -1
	ProtoICMP int32 = 1
	ProtoTCP  int32 = 6
	ProtoUDP  int32 = 17
)

// AnyPort is the from/to value of a rule that does not look at ports (or
// at the ICMP type or code): every protocol but tcp and udp, and icmp of
// any type.
const AnyPort int32 = -1

// Limits, as AWS's defaults.
const (
	MaxGroupsPerENI      = 5
	MaxRulesPerDirection = 60
	MinACLRuleNumber     = 1
	MaxACLRuleNumber     = 32766
)

// AWS's connection-tracking idle timeouts, in seconds.
const (
	ConntrackTCPEstablished = 432000
	ConntrackUDP            = 30
	ConntrackUDPStream      = 180
	ConntrackOther          = 600
)

// Match is what a security group rule or a network ACL entry matches, in
// the form hosts enforce: a protocol number (or ProtoAll), and a port range
// for tcp and udp, the ICMP type and code for icmp (AnyPort for any), or
// AnyPort twice for other protocols.
type Match struct {
	Protocol int32
	From, To int32
}

// MatchSpec is a Match as a user writes it.
type MatchSpec struct {
	// Protocol: tcp, udp, icmp, all (or -1), or a number 0–255.
	Protocol string
	// Port: tcp and udp only, "80" or "1000-2000".
	Port string
	// ICMPType and ICMPCode: icmp only; nil means any.
	ICMPType, ICMPCode *int32
}

var protoNames = map[string]int32{"all": ProtoAll, "-1": ProtoAll, "icmp": ProtoICMP, "tcp": ProtoTCP, "udp": ProtoUDP}

// ProtocolName spells a protocol number as users write it.
func ProtocolName(p int32) string {
	switch p {
	case ProtoAll:
		return "all"
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// Parse checks a spec and turns it into a Match.
func (s MatchSpec) Parse() (Match, error) {
	name := strings.ToLower(strings.TrimSpace(s.Protocol))
	if name == "" {
		return Match{}, Invalidf("no protocol given; use tcp, udp, icmp, all or an IP protocol number")
	}
	p, ok := protoNames[name]
	if !ok {
		n, err := strconv.Atoi(name)
		if err != nil || n < 0 || n > 255 {
			return Match{}, Invalidf("protocol %q is not known; use tcp, udp, icmp, all or an IP protocol number 0–255", s.Protocol)
		}
		p = int32(n)
	}
	m := Match{Protocol: p, From: AnyPort, To: AnyPort}
	tcpOrUDP := p == ProtoTCP || p == ProtoUDP
	if s.Port != "" && !tcpOrUDP {
		return Match{}, Invalidf("a port range applies to tcp and udp only, not to protocol %s; drop the port (for icmp, give the type and code instead)", ProtocolName(p))
	}
	if (s.ICMPType != nil || s.ICMPCode != nil) && p != ProtoICMP {
		return Match{}, Invalidf("an ICMP type and code apply to icmp only, not to protocol %s", ProtocolName(p))
	}
	switch {
	case tcpOrUDP:
		if s.Port == "" {
			return Match{}, Invalidf("protocol %s needs a port or a range: 80, 1000-2000, or 0-65535 for all", ProtocolName(p))
		}
		from, to, err := parsePortRange(s.Port)
		if err != nil {
			return Match{}, err
		}
		m.From, m.To = from, to
	case p == ProtoICMP:
		if s.ICMPType != nil {
			m.From = *s.ICMPType
		}
		if s.ICMPCode != nil {
			if s.ICMPType == nil || *s.ICMPType == AnyPort {
				return Match{}, Invalidf("an ICMP code needs an ICMP type; give the type too (e.g. type 3 code 4)")
			}
			m.To = *s.ICMPCode
		}
	}
	return m, m.Check()
}

func parsePortRange(s string) (from, to int32, err error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err1 := parsePort(lo)
	b := a
	var err2 error
	if isRange {
		b, err2 = parsePort(hi)
	}
	if err1 != nil || err2 != nil {
		return 0, 0, Invalidf("port %q is not a port or a range; write 80 or 1000-2000 (ports 0–65535)", s)
	}
	if a > b {
		return 0, 0, Invalidf("port range %s runs backwards; write the lower port first (%d-%d)", s, b, a)
	}
	return a, b, nil
}

func parsePort(s string) (int32, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 65535 {
		return 0, strconv.ErrRange
	}
	return int32(n), nil
}

// Check validates a Match in the stored form.
func (m Match) Check() error {
	switch {
	case m.Protocol < ProtoAll || m.Protocol > 255:
		return Invalidf("protocol %d is not -1 (all) or an IP protocol number 0–255", m.Protocol)
	case m.Protocol == ProtoTCP || m.Protocol == ProtoUDP:
		if m.From < 0 || m.To > 65535 || m.From > m.To {
			return Invalidf("port range %d-%d is not within 0–65535, lower port first", m.From, m.To)
		}
	case m.Protocol == ProtoICMP:
		if m.From < AnyPort || m.From > 255 || m.To < AnyPort || m.To > 255 {
			return Invalidf("ICMP type %d code %d: each must be 0–255, or -1 for any", m.From, m.To)
		}
		if m.From == AnyPort && m.To != AnyPort {
			return Invalidf("ICMP code %d without a type; give the type too", m.To)
		}
	default:
		if m.From != AnyPort || m.To != AnyPort {
			return Invalidf("protocol %s has no ports", ProtocolName(m.Protocol))
		}
	}
	return nil
}

// String spells a Match as a user would write it: tcp:80, tcp:1000-2000,
// icmp:8/0, icmp, all.
func (m Match) String() string {
	name := ProtocolName(m.Protocol)
	switch {
	case m.Protocol == ProtoTCP || m.Protocol == ProtoUDP:
		if m.From == m.To {
			return name + ":" + strconv.Itoa(int(m.From))
		}
		return name + ":" + strconv.Itoa(int(m.From)) + "-" + strconv.Itoa(int(m.To))
	case m.Protocol == ProtoICMP && m.From != AnyPort:
		s := name + ":" + strconv.Itoa(int(m.From))
		if m.To != AnyPort {
			s += "/" + strconv.Itoa(int(m.To))
		}
		return s
	}
	return name
}

// CheckACLRuleNumber validates a network ACL entry's number.
func CheckACLRuleNumber(n int32) error {
	if n < MinACLRuleNumber || n > MaxACLRuleNumber {
		return Invalidf("rule number %d is outside %d–%d; entries are numbered within that range and evaluated lowest first", n, MinACLRuleNumber, MaxACLRuleNumber)
	}
	return nil
}

// Conntrack timeout bounds, in seconds, as AWS allows them per ENI (other
// protocols, fixed on AWS, within the same kind of range).
var conntrackBounds = []struct {
	what     string
	min, max uint32
}{
	{"TCP established timeout", 60, 432000},
	{"UDP timeout", 30, 60},
	{"UDP stream timeout", 60, 180},
	{"timeout of other protocols", 60, 600},
}

// CheckConntrack validates an ENI's timeouts in seconds (TCP established,
// UDP, UDP stream, others); 0 keeps the default.
func CheckConntrack(tcpEstablished, udp, udpStream, other uint32) error {
	for i, v := range []uint32{tcpEstablished, udp, udpStream, other} {
		b := conntrackBounds[i]
		if v != 0 && (v < b.min || v > b.max) {
			return Invalidf("%s %d s is outside %d–%d s; 0 keeps the default", b.what, v, b.min, b.max)
		}
	}
	return nil
}
