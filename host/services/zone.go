package services

import (
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/openvpc/openvpc/host/tables"
)

// answerZone answers q from the private hosted zones associated with the
// VPC, nil when name is in none of them (the caller carries on). A name
// in a zone is never forwarded: without a record it is NXDOMAIN, with
// records of other types an empty answer. A CNAME is answered with its
// target's records when the target is in the same zone.
func (s *Stack) answerZone(snap *tables.Snapshot, req *dns.Msg, name string) *dns.Msg {
	vpc, ok := snap.VPC(s.cfg.VNI)
	if !ok || len(vpc.Zones) == 0 {
		return nil
	}
	z := vpc.ZoneOf(name)
	if z == nil {
		return nil
	}
	q := req.Question[0]
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Authoritative = true
	recs := z.Lookup(name)
	if len(recs) == 0 {
		m.Rcode = dns.RcodeNameError
		return m
	}
	owner := q.Name
	for hops := 0; hops < 8; hops++ {
		var cname *tables.ZoneRecord
		for i, r := range recs {
			if r.Type == "CNAME" {
				cname = &recs[i]
				break
			}
		}
		if cname != nil && q.Qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, zoneRR(owner, *cname))
			target := cname.Value + "."
			if !z.Contains(target) {
				return m // the client follows it
			}
			owner, recs = target, z.Lookup(target)
			continue
		}
		for _, r := range recs {
			if rr := zoneRR(owner, r); rr != nil && (q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype) {
				m.Answer = append(m.Answer, rr)
			}
		}
		return m
	}
	return m
}

// zoneRR is a zone record as an RR owned by owner, nil if its value does
// not parse (the API checked it; a bad one is not answered).
func zoneRR(owner string, r tables.ZoneRecord) dns.RR {
	h := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: r.TTL}
	}
	switch r.Type {
	case "A":
		if ip := net.ParseIP(r.Value).To4(); ip != nil {
			return &dns.A{Hdr: h(dns.TypeA), A: ip}
		}
	case "AAAA":
		if ip := net.ParseIP(r.Value); ip != nil {
			return &dns.AAAA{Hdr: h(dns.TypeAAAA), AAAA: ip}
		}
	case "CNAME":
		return &dns.CNAME{Hdr: h(dns.TypeCNAME), Target: dns.Fqdn(r.Value)}
	case "TXT":
		var parts []string
		for v := r.Value; ; v = v[255:] {
			if len(v) <= 255 {
				parts = append(parts, v)
				break
			}
			parts = append(parts, v[:255])
		}
		return &dns.TXT{Hdr: h(dns.TypeTXT), Txt: parts}
	case "SRV":
		f := strings.Fields(r.Value)
		if len(f) != 4 {
			return nil
		}
		var n [3]uint16
		for i := range n {
			v, err := strconv.ParseUint(f[i], 10, 16)
			if err != nil {
				return nil
			}
			n[i] = uint16(v)
		}
		return &dns.SRV{Hdr: h(dns.TypeSRV), Priority: n[0], Weight: n[1], Port: n[2], Target: dns.Fqdn(f[3])}
	}
	return nil
}
