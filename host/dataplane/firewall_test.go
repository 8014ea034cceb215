package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

const (
	sgApp = 0x5a // the default-like group: ingress from its own members, egress anywhere
	sgWeb = 0x5b // tcp 80 from anywhere, icmp echo from anywhere, egress anywhere
	aclA  = 0xac // the default ACL: allow all
	aclB  = 0xad // custom: tcp 80 in, ephemeral ports out, nothing else
)

var anywhere = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}

// withFirewall gives red its groups and ACLs: ENI 1 (10.0.1.4, here) and
// 10.0.1.6 (host 3) are in sgApp, 10.0.1.5 (host 2) in sgWeb; subnet
// 10.0.2.0/24 (ENI 3, here) uses aclB, the rest aclA. extra rules are
// appended to sgApp's ingress.
func withFirewall(tb testing.TB, f *fixture, extra ...tables.SGRule) {
	snap := f.t.Load()
	red0, _ := snap.VPC(red)
	v := *red0
	v.SecurityGroups = []tables.SecurityGroup{
		{ID: sgApp, Ingress: append([]tables.SGRule{{ID: 1, Proto: tables.ProtoAll, Group: sgApp}}, extra...),
			Egress: []tables.SGRule{{ID: 2, Proto: tables.ProtoAll, Prefixes: anywhere}}},
		{ID: sgWeb, Ingress: []tables.SGRule{
			{ID: 3, Proto: 6, From: 80, To: 80, Prefixes: anywhere},
			{ID: 4, Proto: 1, From: 8, To: -1, Prefixes: anywhere},
		}, Egress: []tables.SGRule{{ID: 5, Proto: tables.ProtoAll, Prefixes: anywhere}}},
	}
	v.DefaultGroup = sgApp
	v.NetworkACLs = []tables.NetworkACL{
		{ID: aclA, Inbound: []tables.ACLEntry{{Number: 100, Proto: tables.ProtoAll, Prefix: anywhere[0], Allow: true}},
			Outbound: []tables.ACLEntry{{Number: 100, Proto: tables.ProtoAll, Prefix: anywhere[0], Allow: true}}},
		{ID: aclB, Inbound: []tables.ACLEntry{{Number: 100, Proto: 6, From: 80, To: 80, Prefix: anywhere[0], Allow: true}},
			Outbound: []tables.ACLEntry{{Number: 100, Proto: 6, From: 1024, To: 65535, Prefix: anywhere[0], Allow: true}}},
	}
	v.DefaultACL = aclA
	v.Subnets = append([]tables.Subnet(nil), v.Subnets...)
	for i := range v.Subnets {
		if v.Subnets[i].CIDR.Addr() == a("10.0.2.0") {
			v.Subnets[i].NetworkACL = aclB
		}
	}
	tx := f.t.Begin(snap.Revision() + 1)
	defer tx.Abort()
	must(tb, tx.UpsertVPC(v))
	for _, m := range []tables.Mapping{
		{VNI: red, IP: a("10.0.1.4"), HostID: 1, ENI: 1, Groups: []uint64{sgApp}},
		{VNI: red, IP: a("10.0.1.5"), HostID: 2, ENI: 2, Groups: []uint64{sgWeb}},
		{VNI: red, IP: a("10.0.1.6"), HostID: 3, ENI: 6}, // no groups named: the default, sgApp
		{VNI: red, IP: a("10.0.2.4"), HostID: 1, ENI: 3, Groups: []uint64{sgWeb}},
	} {
		must(tb, tx.UpsertMapping(m))
	}
	tx.Commit()
}

// tcp writes a TCP segment with flags at buf[Headroom:].
func tcp(buf []byte, src, dst string, sport, dport uint16, flags uint8) int {
	b := buf[packet.Headroom:]
	s, d := a(src), a(dst)
	t := packet.TCP(b[packet.IPv4MinSize : packet.IPv4MinSize+packet.TCPMinSize])
	t.Encode(&packet.TCPFields{SrcPort: sport, DstPort: dport, Seq: 1, Flags: flags, Window: 1000})
	t.SetChecksum(t.ComputeChecksum(s, d))
	n := packet.IPv4MinSize + packet.TCPMinSize
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(n), TTL: 64, Protocol: packet.ProtoTCP, Src: s, Dst: d})
	return n
}

// The AWS matrix on one host's stories: rules, state, groups as peers,
// the ACL between subnets, and trace naming what decided.
func TestFirewall(t *testing.T) {
	f := newFixture(t)
	withFirewall(t, f)
	buf := make([]byte, 2048)
	var r Result
	egress := func(from uint64, n int) datapath.Verdict {
		f.p.Egress(f.t.Load(), f.enis[from], buf, n, make([]byte, ScratchSize), &r)
		return r.Verdict
	}
	ingress := func(sender netip.Addr, n int) datapath.Verdict {
		f.p.Ingress(f.t.Load(), sender, wire0(buf, n), &r)
		return r.Verdict
	}
	for _, tc := range []struct {
		name string
		run  func() datapath.Verdict
		want datapath.Verdict
	}{
		{"app opens a connection to web:80 (egress anywhere)", func() datapath.Verdict { return egress(1, tcp(buf, "10.0.1.4", "10.0.1.5", 40000, 80, 0x02)) }, datapath.Forwarded},
		{"web's reply comes back with no rule for it: tracked", func() datapath.Verdict { return ingress(host2, tcp(buf, "10.0.1.5", "10.0.1.4", 80, 40000, 0x12)) }, datapath.Delivered},
		{"web opens a connection of its own to app: not in sgApp", func() datapath.Verdict { return ingress(host2, tcp(buf, "10.0.1.5", "10.0.1.4", 80, 40001, 0x02)) }, datapath.SGDenied},
		{"a member of sgApp on host 3 gets in (default group)", func() datapath.Verdict { return ingress(host3, tcp(buf, "10.0.1.6", "10.0.1.4", 5000, 22, 0x02)) }, datapath.Delivered},
		{"ENI 3 (sgWeb, aclB) is reached on 80 from another subnet", func() datapath.Verdict { return ingress(host2, tcp(buf, "10.0.1.5", "10.0.2.4", 40002, 80, 0x02)) }, datapath.Delivered},
		{"and its reply leaves to an ephemeral port (aclB outbound)", func() datapath.Verdict { return egress(3, tcp(buf, "10.0.2.4", "10.0.1.5", 80, 40002, 0x12)) }, datapath.Forwarded},
		{"to port 22 the ACL lets nothing in", func() datapath.Verdict { return ingress(host2, tcp(buf, "10.0.1.5", "10.0.2.4", 40003, 22, 0x02)) }, datapath.ACLDenied},
		{"a reply to port 80 is not an ephemeral port: aclB is stateless", func() datapath.Verdict { return egress(3, tcp(buf, "10.0.2.4", "10.0.1.5", 40004, 80, 0x02)) }, datapath.ACLDenied},
		{"same subnet: no ACL, both groups", func() datapath.Verdict { return egress(1, tcp(buf, "10.0.1.4", "10.0.1.6", 40005, 443, 0x02)) }, datapath.Forwarded},
	} {
		if got := tc.run(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if len(f.events) != 0 {
		t.Errorf("the firewall raised security events: %v", f.events)
	}

	// ICMP: echo allowed by type into sgWeb's ENI 3 (ACL B has no icmp: on the
	// same host, from ENI 1 in the other subnet, so the ACL denies it).
	n := tcp(buf, "10.0.1.4", "10.0.2.4", 1, 1, 0)
	_ = n
	steps, tr := f.p.TraceIngress(host2, wire0(buf, tcp(buf, "10.0.1.5", "10.0.1.4", 80, 40009, 0x02)))
	if last := steps[len(steps)-1]; tr != datapath.SGDenied || last.Name != "security groups" || !strings.Contains(last.Detail, fmt.Sprintf("sg-%016x", sgApp)) {
		t.Errorf("trace of a refused connection: %v, last step %+v", tr, last)
	}
	steps, tr = f.p.TraceIngress(host3, wire0(buf, tcp(buf, "10.0.1.6", "10.0.1.4", 5001, 22, 0x02)))
	if tr != datapath.Delivered || !hasStep(steps, "security groups", fmt.Sprintf("sgr-%016x", 1)) {
		t.Errorf("trace of an allowed connection names no rule: %v %+v", tr, steps)
	}
	steps, tr = f.p.TraceIngress(host2, wire0(buf, tcp(buf, "10.0.1.5", "10.0.2.4", 40010, 22, 0x02)))
	if last := steps[len(steps)-1]; tr != datapath.ACLDenied || last.Name != "network ACL" || !strings.Contains(last.Detail, "final rule") {
		t.Errorf("trace of an ACL drop: %v, last step %+v", tr, last)
	}
}

func hasStep(steps []datapath.Step, name, detail string) bool {
	for _, s := range steps {
		if s.Name == name && s.Pass && strings.Contains(s.Detail, detail) {
			return true
		}
	}
	return false
}

// Revoking a rule keeps a tracked connection and refuses new ones; a flow
// that the groups allow all ways is not tracked.
func TestFirewallStateOutlivesRules(t *testing.T) {
	f := newFixture(t)
	withFirewall(t, f, tables.SGRule{ID: 9, Proto: 6, From: 8080, To: 8080, Prefixes: anywhere})
	buf := make([]byte, 2048)
	var r Result
	in := func(sport uint16) datapath.Verdict {
		f.p.Ingress(f.t.Load(), host2, wire0(buf, tcp(buf, "10.0.1.5", "10.0.1.4", sport, 8080, 0x02)), &r)
		return r.Verdict
	}
	if v := in(50000); v != datapath.Delivered {
		t.Fatalf("allowed by rule 9: %v", v)
	}
	withFirewall(t, f) // rule 9 revoked
	if v := in(50000); v != datapath.Delivered {
		t.Fatalf("the tracked connection after the revoke: %v, want delivered", v)
	}
	if v := in(50001); v != datapath.SGDenied {
		t.Fatalf("a new connection after the revoke: %v, want sg-denied", v)
	}
	// sgApp's egress is open to all, but its ingress is not: tracked. Make
	// both open, and nothing is tracked.
	before := f.p.Conntrack().Len(f.p.clock.Load())
	withFirewall(t, f, tables.SGRule{ID: 10, Proto: tables.ProtoAll, Prefixes: anywhere})
	f.p.Egress(f.t.Load(), f.enis[1], buf, tcp(buf, "10.0.1.4", "10.0.1.5", 41000, 80, 0x02), make([]byte, ScratchSize), &r)
	if r.Verdict != datapath.Forwarded || f.p.Conntrack().Len(f.p.clock.Load()) != before {
		t.Fatalf("an all-open flow: %v, %d tracked (was %d)", r.Verdict, f.p.Conntrack().Len(f.p.clock.Load()), before)
	}
}

// A full table refuses new flows and counts them; tracked flows still pass.
func TestConntrackFull(t *testing.T) {
	f := newFixture(t)
	f.p.conntrack = NewConntrack(ctWindow)
	withFirewall(t, f)
	buf := make([]byte, 2048)
	var r Result
	out := func(sport uint16) datapath.Verdict {
		f.p.Egress(f.t.Load(), f.enis[1], buf, tcp(buf, "10.0.1.4", "10.0.1.5", sport, 80, 0x02), make([]byte, ScratchSize), &r)
		return r.Verdict
	}
	full := 0
	for sport := range uint16(64) {
		if out(30000+sport) == datapath.ConntrackFull {
			full++
		}
	}
	if full == 0 || f.p.Conntrack().Full.Load() != uint64(full) {
		t.Fatalf("%d flows refused, %d counted", full, f.p.Conntrack().Full.Load())
	}
	for sport := range uint16(64) {
		if v := out(30000 + sport); v == datapath.Forwarded {
			f.p.Ingress(f.t.Load(), host2, wire0(buf, tcp(buf, "10.0.1.5", "10.0.1.4", 80, 30000+sport, 0x12)), &r)
			if r.Verdict != datapath.Delivered {
				t.Fatalf("the reply of a tracked flow in a full table: %v", r.Verdict)
			}
			return
		}
	}
	t.Fatal("no flow tracked at all")
}

// Both stories allocate nothing with groups, ACLs and conntrack, hit or miss.
func TestFirewallNoAllocations(t *testing.T) {
	f := newFixture(t)
	withFirewall(t, f)
	f.p.cfg.Events = func(datapath.Event) {}
	snap := f.t.Load()
	buf := make([]byte, 2048)
	scratch := make([]byte, ScratchSize)
	var r Result
	sport := uint16(20000)
	for name, run := range map[string]func(){
		"egress, new flow each time": func() {
			sport++
			f.p.Egress(snap, f.enis[1], buf, tcp(buf, "10.0.1.4", "10.0.1.5", sport, 80, 0x02), scratch, &r)
		},
		"egress, tracked": func() {
			f.p.Egress(snap, f.enis[1], buf, tcp(buf, "10.0.1.4", "10.0.1.5", 1234, 80, 0x10), scratch, &r)
		},
		"ingress, tracked reply": func() {
			n := tcp(buf, "10.0.1.5", "10.0.1.4", 80, 1234, 0x10)
			start, _ := packet.EncapsulateGeneve(buf, n, red, packet.GeneveOptions{SourceVNI: red})
			f.p.Ingress(snap, host2, buf[start:packet.Headroom+n], &r)
		},
		"ingress, refused": func() {
			n := tcp(buf, "10.0.1.5", "10.0.1.4", 80, 999, 0x02)
			start, _ := packet.EncapsulateGeneve(buf, n, red, packet.GeneveOptions{SourceVNI: red})
			f.p.Ingress(snap, host2, buf[start:packet.Headroom+n], &r)
		},
	} {
		if allocs := testing.AllocsPerRun(200, run); allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet (%v)", name, allocs, r.Verdict)
		}
	}
}

// BenchmarkFirewall is P11: egress + ingress with 2 groups of 50 rules and
// a conntrack hit, next to the same pipeline in a VPC without groups.
func BenchmarkFirewall(b *testing.B) {
	for _, groups := range []bool{false, true} {
		f := newFixture(b)
		if groups {
			var rules []tables.SGRule
			for i := range 49 {
				rules = append(rules, tables.SGRule{ID: uint64(100 + i), Proto: 17, From: int32(1000 + i), To: int32(1000 + i), Prefixes: anywhere})
			}
			withFirewall(b, f, rules...)
		}
		f.p.cfg.Events = func(datapath.Event) {}
		snap := f.t.Load()
		buf := make([]byte, 2048)
		scratch := make([]byte, ScratchSize)
		var r Result
		n := tcp(buf, "10.0.1.4", "10.0.1.5", 1234, 80, 0x10)
		orig := append([]byte(nil), buf[packet.Headroom:packet.Headroom+n]...)
		reply := make([]byte, 2048)
		rn := tcp(reply, "10.0.1.5", "10.0.1.4", 80, 1234, 0x10)
		in := append([]byte(nil), wire(reply, rn, red, red)...)
		f.p.Egress(snap, f.enis[1], buf, n, scratch, &r) // tracks the flow
		name := "without-groups"
		if groups {
			name = "2x50-rules-conntrack-hit"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				copy(buf[packet.Headroom:], orig)
				f.p.Egress(snap, f.enis[1], buf, n, scratch, &r)
				f.p.Ingress(snap, host2, in, &r)
			}
			if r.Verdict != datapath.Delivered {
				b.Fatalf("verdict %v", r.Verdict)
			}
		})
	}
}
