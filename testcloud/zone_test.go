package testcloud_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/testcloud"
)

// ask sends one query for name/qtype to the resolver at server:53 from
// inside the instance, over UDP.
func ask(t *testing.T, ctx context.Context, ns *nic.Netstack, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	conn, err := ns.Net.DialContext(ctx, "udp", net.JoinHostPort(server, "53"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	c := &dns.Conn{Conn: conn}
	if err := c.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := c.ReadMsg()
	if err != nil {
		t.Fatalf("%s %s from %s: %v", name, dns.TypeToString[qtype], server, err)
	}
	return m
}

// answers is the answer section as "name type value" lines.
func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		h := rr.Header()
		v := rr.String()[len(h.String()):]
		out = append(out, h.Name+" "+dns.TypeToString[h.Rrtype]+" "+v)
	}
	return out
}

// TestPrivateHostedZone: a record added with wait is answered through an
// instance's netstack on every host in scope as soon as the API returns;
// CNAMEs are followed within the zone, names of the zone without records
// are NXDOMAIN (never forwarded), a VPC not associated does not see the
// zone until it is associated, and a deleted record is NXDOMAIN at once.
// Each host's cache holds exactly the zones the store says.
func TestPrivateHostedZone(t *testing.T) {
	s := newScene(t)
	_, clientNS := s.run(t, "red-a", s.a, s.red)
	_, webNS := s.run(t, "red-a", s.b, s.red)
	_, yellowNS := s.run(t, "yellow-a", s.a, s.yellow)
	ctx, cancel := context.WithTimeout(s.c.Ctx(), 30*time.Second)
	defer cancel()
	zc := s.api.Zone

	z, err := zc.CreateZone(ctx, connect.NewRequest(&pb.CreateZoneRequest{Name: "corp.example", Vpcs: []string{"red"}, Wait: true}))
	if err != nil {
		t.Fatal(err)
	}
	zone := z.Msg.Zone.Id
	add := func(name, typ, value string) {
		t.Helper()
		r, err := zc.AddZoneRecord(ctx, connect.NewRequest(&pb.AddZoneRecordRequest{Ref: zone, Name: name, Type: typ, Value: value, Ttl: 120, Wait: true}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Msg.Revision == 0 {
			t.Fatalf("add %s: no revision", name)
		}
	}
	add("www", "A", "10.0.1.50")
	// Right after the API returned: both hosts answer, no retry.
	for _, ns := range []*nic.Netstack{clientNS, webNS} {
		m := ask(t, ctx, ns, "10.0.0.2", "www.corp.example", dns.TypeA)
		if got := answers(m); m.Rcode != dns.RcodeSuccess || !m.Authoritative || !slices.Equal(got, []string{"www.corp.example. A 10.0.1.50"}) || m.Answer[0].Header().Ttl != 120 {
			t.Fatalf("www.corp.example A → %v %v", dns.RcodeToString[m.Rcode], m.Answer)
		}
	}
	add("alias", "CNAME", "www.corp.example")
	add("www", "AAAA", "fd00::50")
	add("@", "TXT", "hello zone")
	add("_pg._tcp", "SRV", "10 5 5432 db.corp.example")
	add("out", "CNAME", "example.org")
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"alias.corp.example", dns.TypeA, []string{"alias.corp.example. CNAME www.corp.example.", "www.corp.example. A 10.0.1.50"}},
		{"ALIAS.Corp.Example", dns.TypeAAAA, []string{"ALIAS.Corp.Example. CNAME www.corp.example.", "www.corp.example. AAAA fd00::50"}},
		{"alias.corp.example", dns.TypeCNAME, []string{"alias.corp.example. CNAME www.corp.example."}},
		{"out.corp.example", dns.TypeA, []string{"out.corp.example. CNAME example.org."}},
		{"corp.example", dns.TypeTXT, []string{`corp.example. TXT "hello zone"`}},
		{"_pg._tcp.corp.example", dns.TypeSRV, []string{"_pg._tcp.corp.example. SRV 10 5 5432 db.corp.example."}},
		{"www.corp.example", dns.TypeTXT, nil}, // the name exists: an empty answer
	} {
		m := ask(t, ctx, clientNS, "169.254.169.253", tc.name, tc.qtype)
		if got := answers(m); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, tc.want) {
			t.Errorf("%s %s → %s %q, want %q", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], got, tc.want)
		}
	}
	st, ok := s.a.Services(s.red.Vni)
	if !ok {
		t.Fatal("host-a runs no services stack for red")
	}
	fwd := st.Counts().Forwarded
	if m := ask(t, ctx, clientNS, "10.0.0.2", "nothing.corp.example", dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 || len(m.Ns) != 0 {
		t.Fatalf("a name of the zone without records → %s %v %v", dns.RcodeToString[m.Rcode], m.Answer, m.Ns)
	}
	if n := st.Counts().Forwarded; n != fwd {
		t.Fatalf("a name of the zone was forwarded (%d)", n-fwd)
	}
	// The netstack's own resolver sees the zone too.
	if addrs, err := clientNS.Net.LookupHost("www.corp.example"); err != nil || !slices.Contains(addrs, "10.0.1.50") {
		t.Fatalf("the netstack's LookupHost www.corp.example → %v, %v", addrs, err)
	}

	// Yellow is not associated: the name is not its.
	if m := ask(t, ctx, yellowNS, "10.1.0.2", "www.corp.example", dns.TypeA); len(m.Answer) != 0 {
		t.Fatalf("yellow sees red's zone: %v", m.Answer)
	}
	if _, err := zc.AssociateZone(ctx, connect.NewRequest(&pb.AssociateZoneRequest{Ref: "corp.example", Vpc: "yellow", Wait: true})); err != nil {
		t.Fatal(err)
	}
	if m := ask(t, ctx, yellowNS, "10.1.0.2", "www.corp.example", dns.TypeA); !slices.Equal(answers(m), []string{"www.corp.example. A 10.0.1.50"}) {
		t.Fatalf("yellow, associated: %v", m.Answer)
	}
	if _, err := zc.DisassociateZone(ctx, connect.NewRequest(&pb.DisassociateZoneRequest{Ref: "corp.example", Vpc: "yellow", Wait: true})); err != nil {
		t.Fatal(err)
	}
	if m := ask(t, ctx, yellowNS, "10.1.0.2", "www.corp.example", dns.TypeA); len(m.Answer) != 0 {
		t.Fatalf("yellow, disassociated, still sees the zone: %v", m.Answer)
	}

	// The caches hold what the store says, read back from the tables.
	for _, h := range []*struct {
		id    string
		state func() map[uint32]*pb.VpcFacts
	}{{"host-a", func() map[uint32]*pb.VpcFacts { return s.a.Cache.State().VPCs }}, {"host-b", func() map[uint32]*pb.VpcFacts { return s.b.Cache.State().VPCs }}} {
		want, err := testcloud.Expected(ctx, s.api, h.id)
		if err != nil {
			t.Fatal(err)
		}
		got := h.state()
		for vni, f := range want.VPCs {
			if g := got[vni]; g == nil || len(g.Zones) != len(f.Zones) || !slices.EqualFunc(g.Zones, f.Zones, func(a, b *pb.ZoneFacts) bool { return proto.Equal(a, b) }) {
				t.Fatalf("%s VPC %d zones: got %v want %v", h.id, vni, g.GetZones(), f.Zones)
			}
		}
	}

	if _, err := zc.DeleteZoneRecord(ctx, connect.NewRequest(&pb.DeleteZoneRecordRequest{Ref: zone, Name: "www", Type: "A", Wait: true})); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*nic.Netstack{clientNS, webNS} {
		if m := ask(t, ctx, ns, "10.0.0.2", "www.corp.example", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
			t.Fatalf("www A deleted (AAAA stays) → %s %v", dns.RcodeToString[m.Rcode], m.Answer)
		}
	}
	if _, err := zc.DeleteZoneRecord(ctx, connect.NewRequest(&pb.DeleteZoneRecordRequest{Ref: zone, Name: "www", Type: "AAAA", Wait: true})); err != nil {
		t.Fatal(err)
	}
	if m := ask(t, ctx, webNS, "10.0.0.2", "www.corp.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("www deleted → %s %v, want NXDOMAIN", dns.RcodeToString[m.Rcode], m.Answer)
	}
	if _, err := zc.DeleteZone(ctx, connect.NewRequest(&pb.DeleteZoneRequest{Ref: zone, Wait: true})); err != nil {
		t.Fatal(err)
	}
	if m := ask(t, ctx, clientNS, "10.0.0.2", "alias.corp.example", dns.TypeA); len(m.Answer) != 0 {
		t.Fatalf("zone deleted, alias still answered: %v", m.Answer)
	}
}
