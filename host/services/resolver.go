package services

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/openvpc/openvpc/host/tables"
)

// privateTTL is the TTL of private names, AWS's.
const privateTTL = 60

// ServeDNS implements dns.Handler: the VPC resolver. It answers from the
// host's cache alone — a name is a private name of an address mapped in
// the VPC, or a PTR of one — and nothing leaves the host.
func (s *Stack) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.Queries.Add(1)
	if vpc, ok := s.cfg.Tables.Load().VPC(s.cfg.VNI); ok && vpc.DNSDisabled {
		return // enableDnsSupport off: as on AWS, the resolver does not answer
	}
	m := s.answer(req)
	if m == nil { // not the VPC's: the upstream's, if there is one
		if up := s.upstream(); up != "" {
			s.Forwarded.Add(1)
			m = s.fwd.forward(req, up)
		} else {
			m = new(dns.Msg)
			m.SetRcode(req, dns.RcodeNameError)
			m.RecursionAvailable = true
		}
	}
	if w.LocalAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	switch {
	case m.Rcode == dns.RcodeNameError:
		s.NXDomain.Add(1)
	case len(m.Answer) > 0:
		s.Answered.Add(1)
	}
	_ = w.WriteMsg(m)
}

// upstream is where names not the VPC's go, "" for nowhere.
func (s *Stack) upstream() string {
	if s.cfg.Upstream == nil {
		return ""
	}
	return s.cfg.Upstream()
}

// answer is the resolver's reply to req, nil for a name it does not own
// (not a private name, an instance name, or a PTR of the VPC's CIDR),
// which is the upstream's to answer.
func (s *Stack) answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	snap := s.cfg.Tables.Load()
	vpc, _ := snap.VPC(s.cfg.VNI)
	hostnames := vpc == nil || !vpc.HostnamesDisabled   // enableDnsHostnames
	if zm := s.answerZone(snap, req, name); zm != nil { // private hosted zones (zone.go)
		return zm
	}
	if ip, ok := s.privateName(name); ok {
		if _, found := s.whose(snap, ip); !hostnames || !found {
			m.Rcode = dns.RcodeNameError
			return m
		}
		m.Authoritative = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(q.Name, dns.TypeA), A: ip.AsSlice()})
		}
		return m
	}
	if label, vni, ok := s.instanceName(snap, name); ok {
		ip, ok := snap.ByName(vni, label)
		if !hostnames || !ok {
			m.Rcode = dns.RcodeNameError
			return m
		}
		m.Authoritative = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(q.Name, dns.TypeA), A: ip.AsSlice()})
		}
		return m
	}
	if s.owns(snap, name) { // a name of the VPC's zones that names nothing
		m.Rcode = dns.RcodeNameError
		return m
	}
	if ip, ok := parseReverse(name); ok {
		if !s.answersFor(snap, ip) {
			return nil
		}
		if _, found := s.whose(snap, ip); !hostnames || !found {
			m.Rcode = dns.RcodeNameError
			return m
		}
		m.Authoritative = true
		if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR), Ptr: PrivateName(ip, s.cfg.Region) + "."})
		}
		return m
	}
	return nil
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: privateTTL}
}

// remotePeers are the VPCs whose instance names this VPC's resolver
// answers too: those of active peerings with remote DNS allowed
// (peering modify --allow-remote-dns true), whose own DNS hostnames are on.
func (s *Stack) remotePeers(snap *tables.Snapshot) []*tables.VPC {
	vpc, ok := snap.VPC(s.cfg.VNI)
	if !ok {
		return nil
	}
	var out []*tables.VPC
	for _, p := range vpc.Peerings {
		if !p.RemoteDNS {
			continue
		}
		if pv, ok := snap.VPC(p.PeerVNI); ok && !pv.HostnamesDisabled {
			out = append(out, pv)
		}
	}
	return out
}

// whose is the VNI of the VPC whose instance has ip: this VPC, or a peer
// whose names it answers.
func (s *Stack) whose(snap *tables.Snapshot, ip netip.Addr) (uint32, bool) {
	var m tables.Mapping
	if snap.Lookup(s.cfg.VNI, ip, &m) {
		return s.cfg.VNI, true
	}
	for _, pv := range s.remotePeers(snap) {
		if pv.CIDR.Contains(ip) && snap.Lookup(pv.VNI, ip, &m) {
			return pv.VNI, true
		}
	}
	return 0, false
}

// answersFor reports whether the PTR of ip is this resolver's to answer:
// an address of the VPC, or of a peer whose names it answers.
func (s *Stack) answersFor(snap *tables.Snapshot, ip netip.Addr) bool {
	if s.cfg.CIDR.Contains(ip) {
		return true
	}
	for _, pv := range s.remotePeers(snap) {
		if pv.CIDR.Contains(ip) {
			return true
		}
	}
	return false
}

// owns reports whether name is in a zone the VPC resolver answers for
// itself: <region>.compute.internal and <vpc name>.internal.
func (s *Stack) owns(snap *tables.Snapshot, name string) bool {
	if name == s.cfg.Region+".compute.internal." || strings.HasSuffix(name, "."+s.cfg.Region+".compute.internal.") {
		return true
	}
	vpc, ok := snap.VPC(s.cfg.VNI)
	if !ok {
		return false
	}
	for _, v := range append([]*tables.VPC{vpc}, s.remotePeers(snap)...) {
		if v.Name == "" {
			continue
		}
		zone := strings.ToLower(v.Name) + ".internal."
		if name == zone || strings.HasSuffix(name, "."+zone) {
			return true
		}
	}
	return false
}

// instanceName parses "<instance>.<vpc name>.internal." (lower case)
// into the instance's name and its VPC's VNI: this VPC, when it has a
// name, or a peer whose names it answers.
func (s *Stack) instanceName(snap *tables.Snapshot, name string) (string, uint32, bool) {
	vpc, ok := snap.VPC(s.cfg.VNI)
	if !ok {
		return "", 0, false
	}
	for _, v := range append([]*tables.VPC{vpc}, s.remotePeers(snap)...) {
		if v.Name == "" {
			continue
		}
		label, ok := strings.CutSuffix(name, "."+strings.ToLower(v.Name)+".internal.")
		if ok && label != "" && !strings.Contains(label, ".") {
			return label, v.VNI, true
		}
	}
	return "", 0, false
}

// PrivateName is AWS's private DNS name of an address:
// ip-10-0-1-4.<region>.compute.internal.
func PrivateName(ip netip.Addr, region string) string {
	return "ip-" + strings.ReplaceAll(ip.String(), ".", "-") + "." + region + ".compute.internal"
}

// privateName parses a fully qualified, lower-case private name of the
// stack's region into its address.
func (s *Stack) privateName(name string) (netip.Addr, bool) {
	label, ok := strings.CutSuffix(name, "."+s.cfg.Region+".compute.internal.")
	if !ok {
		return netip.Addr{}, false
	}
	return parsePrivateLabel(label)
}

// parsePrivateLabel parses "ip-10-0-1-4" into 10.0.1.4.
func parsePrivateLabel(label string) (netip.Addr, bool) {
	rest, ok := strings.CutPrefix(label, "ip-")
	if !ok {
		return netip.Addr{}, false
	}
	var b [4]byte
	parts := strings.Split(rest, "-")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	for i, p := range parts {
		n, ok := octet(p)
		if !ok {
			return netip.Addr{}, false
		}
		b[i] = n
	}
	return netip.AddrFrom4(b), true
}

// parseReverse parses "4.1.0.10.in-addr.arpa." into 10.0.1.4.
func parseReverse(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, ok := octet(p)
		if !ok {
			return netip.Addr{}, false
		}
		b[3-i] = n
	}
	return netip.AddrFrom4(b), true
}

// octet parses a decimal 0–255 without leading zeros or signs.
func octet(s string) (byte, bool) {
	if s == "" || len(s) > 3 || len(s) > 1 && s[0] == '0' || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return byte(n), err == nil
}
