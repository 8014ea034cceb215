package model

import (
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// DefaultZoneTTL is a zone record's TTL when none is given, AWS's console
// default.
const DefaultZoneTTL = 300

// ZoneRecordTypes are the record types a private hosted zone holds.
var ZoneRecordTypes = []string{"A", "AAAA", "CNAME", "TXT", "SRV"}

// CanonicalDomain lower-cases a domain name and drops its final dot.
func CanonicalDomain(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// CheckZoneName checks a private hosted zone's name (corp.example) and
// returns it canonical.
func CheckZoneName(name string) (string, error) {
	n := CanonicalDomain(name)
	if n == "" {
		return "", Invalidf("a zone needs a name: --name corp.example")
	}
	if _, ok := dns.IsDomainName(n); !ok || strings.Contains(n, "..") || strings.ContainsAny(n, " \t*") {
		return "", Invalidf("zone name %q is not a domain name: use labels of letters, digits and hyphens separated by dots, as corp.example", name)
	}
	if !strings.Contains(n, ".") {
		return "", Invalidf("zone name %q is a top-level domain: use at least two labels, as corp.example", name)
	}
	return n, nil
}

// ZoneRecordName resolves a record's name within zone: "@" or "" is the
// apex, a name ending in a dot is fully qualified and must be in the
// zone, anything else is relative to the zone.
func ZoneRecordName(zone, name string) (string, error) {
	name = strings.TrimSpace(name)
	var full string
	switch {
	case name == "" || name == "@":
		full = zone
	case strings.HasSuffix(name, "."):
		full = CanonicalDomain(name)
	default:
		full = CanonicalDomain(name) + "." + zone
		if n := CanonicalDomain(name); n == zone || strings.HasSuffix(n, "."+zone) {
			full = n // already qualified, without the dot
		}
	}
	if _, ok := dns.IsDomainName(full); !ok || strings.Contains(full, "..") || strings.ContainsAny(full, " \t*") {
		return "", Invalidf("record name %q is not a domain name: use a label such as www, or @ for the zone's apex", name)
	}
	if full != zone && !strings.HasSuffix(full, "."+zone) {
		return "", Invalidf("record name %q is outside zone %s: give it relative to the zone (www) or ending in .%s.", name, zone, zone)
	}
	return full, nil
}

// ZoneRecordType checks a record type and returns it upper case.
func ZoneRecordType(t string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(t))
	for _, ok := range ZoneRecordTypes {
		if u == ok {
			return u, nil
		}
	}
	if t == "" {
		return "", Invalidf("a record needs a type: --type A, AAAA, CNAME, TXT or SRV")
	}
	return "", Invalidf("record type %q is not supported: use A, AAAA, CNAME, TXT or SRV", t)
}

// CheckZoneRecordValue checks a record's value for its type and returns it
// canonical.
func CheckZoneRecordValue(typ, value string) (string, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return "", Invalidf("a %s record needs a value: --value …", typ)
	}
	switch typ {
	case "A":
		ip := net.ParseIP(v)
		if ip == nil || ip.To4() == nil {
			return "", Invalidf("A record value %q is not an IPv4 address: use one such as 10.0.1.4", value)
		}
		return ip.To4().String(), nil
	case "AAAA":
		ip := net.ParseIP(v)
		if ip == nil || ip.To4() != nil {
			return "", Invalidf("AAAA record value %q is not an IPv6 address: use one such as fd00::4", value)
		}
		return ip.String(), nil
	case "CNAME":
		n := CanonicalDomain(v)
		if _, ok := dns.IsDomainName(n); !ok || strings.Contains(n, "..") || strings.ContainsAny(n, " \t") {
			return "", Invalidf("CNAME record value %q is not a domain name: use one such as db.corp.example", value)
		}
		return n, nil
	case "TXT":
		if len(v) > 255*16 {
			return "", Invalidf("TXT record value is %d bytes: keep it under %d", len(v), 255*16)
		}
		return v, nil
	case "SRV":
		f := strings.Fields(v)
		if len(f) != 4 {
			return "", Invalidf("SRV record value %q: use \"priority weight port target\", as \"10 5 5432 db.corp.example\"", value)
		}
		for i, what := range []string{"priority", "weight", "port"} {
			if _, err := strconv.ParseUint(f[i], 10, 16); err != nil {
				return "", Invalidf("SRV record value %q: %s %q is not a number 0–65535", value, what, f[i])
			}
		}
		t := CanonicalDomain(f[3])
		if _, ok := dns.IsDomainName(t); !ok || t == "" {
			return "", Invalidf("SRV record value %q: target %q is not a domain name", value, f[3])
		}
		return strings.Join([]string{f[0], f[1], f[2], t}, " "), nil
	}
	return "", Invalidf("record type %q is not supported: use A, AAAA, CNAME, TXT or SRV", typ)
}
