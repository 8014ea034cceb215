package services

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/miekg/dns"

	"github.com/openvpc/openvpc/host/tables"
)

// resolverFixture is a stack's resolver over a cache with red (VNI 100,
// 10.0.0.0/16) holding 10.0.1.4, and yellow (VNI 200) holding 10.1.1.5.
func resolverFixture(t *testing.T) *Stack {
	tb := tables.New(1)
	tx := tb.Begin(1)
	for _, err := range []error{
		tx.UpsertHost(tables.Host{ID: 1, Underlay: netip.MustParseAddr("127.0.1.1"), Role: tables.RoleHost, Healthy: true}),
		tx.UpsertVPC(tables.VPC{VNI: 100, ID: 100, Name: "Red", CIDR: netip.MustParsePrefix("10.0.0.0/16")}),
		tx.UpsertVPC(tables.VPC{VNI: 200, ID: 200, Name: "yellow", CIDR: netip.MustParsePrefix("10.1.0.0/16")}),
		tx.UpsertMapping(tables.Mapping{VNI: 100, IP: netip.MustParseAddr("10.0.1.4"), HostID: 1, ENI: 1, Name: "web"}),
		tx.UpsertMapping(tables.Mapping{VNI: 200, IP: netip.MustParseAddr("10.1.1.5"), HostID: 1, ENI: 2, Name: "db"}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	tx.Commit()
	return &Stack{cfg: Config{VNI: 100, CIDR: netip.MustParsePrefix("10.0.0.0/16"), Region: DefaultRegion, Tables: tb}}
}

func TestAnswer(t *testing.T) {
	s := resolverFixture(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  string // the answer's text, "" for none
	}{
		{"ip-10-0-1-4.openvpc.compute.internal.", dns.TypeA, dns.RcodeSuccess, "ip-10-0-1-4.openvpc.compute.internal.\t60\tIN\tA\t10.0.1.4"},
		{"IP-10-0-1-4.OpenVPC.compute.internal.", dns.TypeA, dns.RcodeSuccess, "IP-10-0-1-4.OpenVPC.compute.internal.\t60\tIN\tA\t10.0.1.4"},
		{"ip-10-0-1-4.openvpc.compute.internal.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"ip-10-0-1-5.openvpc.compute.internal.", dns.TypeA, dns.RcodeNameError, ""},
		{"ip-10-1-1-5.openvpc.compute.internal.", dns.TypeA, dns.RcodeNameError, ""}, // yellow's
		{"ip-010-0-1-4.openvpc.compute.internal.", dns.TypeA, dns.RcodeNameError, ""},
		{"4.1.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "4.1.0.10.in-addr.arpa.\t60\tIN\tPTR\tip-10-0-1-4.openvpc.compute.internal."},
		{"5.1.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, ""},
		{"web.red.internal.", dns.TypeA, dns.RcodeSuccess, "web.red.internal.\t60\tIN\tA\t10.0.1.4"},
		{"WEB.Red.internal.", dns.TypeA, dns.RcodeSuccess, "WEB.Red.internal.\t60\tIN\tA\t10.0.1.4"},
		{"db.red.internal.", dns.TypeA, dns.RcodeNameError, ""}, // yellow's instance
		{"red.internal.", dns.TypeA, dns.RcodeNameError, ""},
		{"a.web.red.internal.", dns.TypeA, dns.RcodeNameError, ""},
	} {
		req := new(dns.Msg)
		req.SetQuestion(tc.name, tc.qtype)
		m := s.answer(req)
		if m == nil {
			t.Errorf("%s: not answered as the VPC's", tc.name)
			continue
		}
		var got string
		if len(m.Answer) == 1 {
			got = m.Answer[0].String()
		}
		if m.Rcode != tc.rcode || got != tc.want || len(m.Answer) > 1 {
			t.Errorf("%s %s: rcode %s, answers %v; want %s %q", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], m.Answer, dns.RcodeToString[tc.rcode], tc.want)
		}
	}
	// Names that are not the VPC's are the upstream's.
	for _, name := range []string{"example.com.", "5.1.1.10.in-addr.arpa.", "web.yellow.internal.", "db.yellow.internal."} {
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		if m := s.answer(req); m != nil {
			t.Errorf("%s answered as the VPC's: %v", name, m)
		}
	}
	if m := s.answer(&dns.Msg{}); m.Rcode != dns.RcodeFormatError {
		t.Errorf("no question: %s, want FORMERR", dns.RcodeToString[m.Rcode])
	}
}

// Whatever bytes arrive, a query that unpacks gets a reply that packs,
// and the name parsers never panic.
func FuzzAnswer(f *testing.F) {
	req := new(dns.Msg)
	req.SetQuestion("ip-10-0-1-4.openvpc.compute.internal.", dns.TypeA)
	b, _ := req.Pack()
	f.Add(b)
	req.SetQuestion("4.1.0.10.in-addr.arpa.", dns.TypePTR)
	b, _ = req.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := resolverFixture(t)
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		m := s.answer(req)
		if m == nil {
			return
		}
		if _, err := m.Pack(); err != nil {
			t.Fatalf("reply does not pack: %v", err)
		}
	})
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{"ip-10-0-1-4", "4.1.0.10.in-addr.arpa.", "ip-1-2-3", "ip-256-0-0-1", "0.0.0.0.in-addr.arpa."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ip, ok := parsePrivateLabel(s); ok {
			if back, ok2 := parsePrivateLabel("ip-" + dashes(ip)); !ok2 || back != ip {
				t.Fatalf("%q → %v does not round-trip", s, ip)
			}
		}
		if ip, ok := parseReverse(s); ok && !ip.Is4() {
			t.Fatalf("%q → %v", s, ip)
		}
	})
}

func dashes(ip netip.Addr) string {
	b := ip.As4()
	return itoa(b[0]) + "-" + itoa(b[1]) + "-" + itoa(b[2]) + "-" + itoa(b[3])
}

func itoa(b byte) string { return strconv.Itoa(int(b)) }

// With enableDnsHostnames off the VPC's instance names and their PTRs are
// NXDOMAIN, answered here (never forwarded); other names are unaffected.
func TestAnswerHostnamesDisabled(t *testing.T) {
	s := resolverFixture(t)
	tx := s.cfg.Tables.Begin(2)
	if err := tx.UpsertVPC(tables.VPC{VNI: 100, ID: 100, Name: "Red", CIDR: netip.MustParsePrefix("10.0.0.0/16"), HostnamesDisabled: true}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"ip-10-0-1-4.openvpc.compute.internal.", dns.TypeA},
		{"web.red.internal.", dns.TypeA},
		{"4.1.0.10.in-addr.arpa.", dns.TypePTR},
	} {
		req := new(dns.Msg)
		req.SetQuestion(q.name, q.qtype)
		m := s.answer(req)
		if m == nil || m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
			t.Errorf("%s with hostnames off: %v, want NXDOMAIN answered here", q.name, m)
		}
	}
	req := new(dns.Msg)
	req.SetQuestion("example.com.", dns.TypeA)
	if m := s.answer(req); m != nil {
		t.Errorf("example.com. answered as the VPC's: %v", m)
	}
}

// Peered with yellow, red's resolver answers yellow's instance names and
// PTRs only while the peering allows remote DNS; otherwise they are
// NXDOMAIN (private names) or the upstream's (yellow's zone and PTRs), as
// without a peering.
func TestAnswerPeerNames(t *testing.T) {
	s := resolverFixture(t)
	peer := func(remote bool) {
		t.Helper()
		tx := s.cfg.Tables.Begin(2)
		if err := tx.UpsertVPC(tables.VPC{VNI: 100, ID: 100, Name: "Red", CIDR: netip.MustParsePrefix("10.0.0.0/16"),
			Peerings: []tables.Peering{{ID: 7, PeerVNI: 200, RemoteDNS: remote}}}); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
	}
	ask := func(name string, qtype uint16) *dns.Msg {
		req := new(dns.Msg)
		req.SetQuestion(name, qtype)
		return s.answer(req)
	}
	for _, remote := range []bool{false, true, false} {
		peer(remote)
		m := ask("ip-10-1-1-5.openvpc.compute.internal.", dns.TypeA)
		if remote && (m == nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.1.1.5") || !remote && (m == nil || m.Rcode != dns.RcodeNameError) {
			t.Errorf("remote DNS %v: yellow's private name → %v", remote, m)
		}
		m = ask("DB.yellow.internal.", dns.TypeA)
		if remote && (m == nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.1.1.5") || !remote && m != nil {
			t.Errorf("remote DNS %v: db.yellow.internal → %v", remote, m)
		}
		m = ask("5.1.1.10.in-addr.arpa.", dns.TypePTR)
		if remote && (m == nil || len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "ip-10-1-1-5.openvpc.compute.internal.") || !remote && m != nil {
			t.Errorf("remote DNS %v: yellow's PTR → %v", remote, m)
		}
		m = ask("web.yellow.internal.", dns.TypeA) // red's instance, in yellow's zone
		if remote && (m == nil || m.Rcode != dns.RcodeNameError) || !remote && m != nil {
			t.Errorf("remote DNS %v: web.yellow.internal → %v", remote, m)
		}
		if m := ask("web.red.internal.", dns.TypeA); m == nil || len(m.Answer) != 1 {
			t.Errorf("remote DNS %v: red's own name → %v", remote, m)
		}
	}
}
