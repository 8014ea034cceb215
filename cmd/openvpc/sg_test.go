package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

type (
	ruleJ struct {
		RuleID   string `json:"ruleId"`
		Protocol int32  `json:"protocol"`
		FromPort int32  `json:"fromPort"`
		ToPort   int32  `json:"toPort"`
		CIDR     string `json:"cidr"`
		GroupID  string `json:"groupId"`
	}
	sgJ struct {
		ID          string  `json:"id"`
		Name        string  `json:"name"`
		VpcID       string  `json:"vpcId"`
		Description string  `json:"description"`
		IsDefault   bool    `json:"isDefault"`
		Ingress     []ruleJ `json:"ingress"`
		Egress      []ruleJ `json:"egress"`
	}
	entryJ struct {
		RuleNumber int32  `json:"ruleNumber"`
		Protocol   int32  `json:"protocol"`
		FromPort   int32  `json:"fromPort"`
		ToPort     int32  `json:"toPort"`
		CIDR       string `json:"cidr"`
		Allow      bool   `json:"allow"`
	}
	aclJ struct {
		ID        string   `json:"id"`
		Name      string   `json:"name"`
		VpcID     string   `json:"vpcId"`
		IsDefault bool     `json:"isDefault"`
		Inbound   []entryJ `json:"inbound"`
		Outbound  []entryJ `json:"outbound"`
		SubnetIDs []string `json:"subnetIds"`
	}
	vpcDefaultsJ struct {
		ID         string `json:"id"`
		DefaultSG  string `json:"defaultSecurityGroupId"`
		DefaultACL string `json:"defaultNetworkAclId"`
	}
	subnetACLJ struct {
		ID    string `json:"id"`
		ACLID string `json:"networkAclId"`
	}
	instSGJ struct {
		ID        string   `json:"id"`
		Groups    []string `json:"securityGroupIds"`
		Conntrack *struct {
			TCP uint32 `json:"tcpEstablishedSeconds"`
			UDP uint32 `json:"udpSeconds"`
		} `json:"conntrack"`
	}
)

// TestSecurityGroupsCLI drives security groups through the binary: the
// VPC's default group, custom groups, every kind of rule and every
// refusal, instances' groups at run and on modify, and deletes.
func TestSecurityGroupsCLI(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerHost(t, "host-a", "127.0.1.1")
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "blue", "--cidr", "10.1.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	red := okJSON[vpcDefaultsJ](t, s, "vpc", "get", "red")
	if !strings.HasPrefix(red.DefaultSG, "sg-") || !strings.HasPrefix(red.DefaultACL, "acl-") {
		t.Fatalf("red's defaults: %+v", red)
	}
	if out := s.ok(t, "vpc", "get", "red"); !strings.Contains(out, "DEFAULT SG") || !strings.Contains(out, red.DefaultSG) {
		t.Errorf("vpc get table lacks the default group:\n%s", out)
	}

	// The default group: ingress from itself, egress anywhere.
	groups := okJSON[[]sgJ](t, s, "sg", "list", "--vpc", "red")
	if len(groups) != 1 {
		t.Fatalf("red's groups: %+v, want only the default", groups)
	}
	def := groups[0]
	if def.ID != red.DefaultSG || !def.IsDefault || len(def.Ingress) != 1 || def.Ingress[0].GroupID != def.ID || def.Ingress[0].Protocol != -1 ||
		len(def.Egress) != 1 || def.Egress[0].CIDR != "0.0.0.0/0" {
		t.Fatalf("default group %+v", def)
	}
	s.fail(t, "failed_precondition", []string{def.ID, "default security group", "deleted with the VPC"}, "sg", "delete", def.ID)
	for _, ref := range []string{"red/default", red.ID + "/default"} {
		if got := okJSON[sgJ](t, s, "sg", "get", ref); got.ID != def.ID {
			t.Errorf("sg get %s = %s, want the default group %s", ref, got.ID, def.ID)
		}
	}
	s.fail(t, "not_found", []string{`"nope"`}, "sg", "get", "nope/default")
	s.fail(t, "invalid_argument", nil, "sg", "get", "/default")

	// Custom groups, by name and id.
	web := okJSON[sgJ](t, s, "sg", "create", "--vpc", "red", "--name", "web", "--description", "web servers")
	if !strings.HasPrefix(web.ID, "sg-") || web.VpcID != red.ID || web.Description != "web servers" || web.IsDefault || len(web.Ingress) != 0 ||
		len(web.Egress) != 1 || web.Egress[0].CIDR != "0.0.0.0/0" {
		t.Fatalf("sg create = %+v: want no ingress, egress anywhere", web)
	}
	app := okJSON[sgJ](t, s, "sg", "create", "--vpc", red.ID, "--name", "app")
	s.fail(t, "already_exists", []string{`"web"`, web.ID}, "sg", "create", "--vpc", "red", "--name", "web")
	s.fail(t, "not_found", []string{`"nope"`}, "sg", "create", "--vpc", "nope", "--name", "x")
	s.fail(t, "invalid_argument", []string{"looks like a security group id"}, "sg", "create", "--vpc", "red", "--name", "sg-0123456789abcdef")
	if got := okJSON[sgJ](t, s, "sg", "get", web.ID); !reflect.DeepEqual(got, web) {
		t.Errorf("sg get by id = %+v, want %+v", got, web)
	}

	// Rules of every kind.
	g := okJSON[sgJ](t, s, "sg", "authorize", "web", "--proto", "tcp", "--port", "80", "--cidr", "0.0.0.0/0")
	if len(g.Ingress) != 1 || g.Ingress[0].Protocol != 6 || g.Ingress[0].FromPort != 80 || g.Ingress[0].ToPort != 80 || !strings.HasPrefix(g.Ingress[0].RuleID, "sgr-") {
		t.Fatalf("after authorize tcp 80: %+v", g.Ingress)
	}
	http := g.Ingress[0]
	g = okJSON[sgJ](t, s, "sg", "authorize", "web", "--ingress", "--proto", "udp", "--port", "1000-2000", "--cidr", "10.0.0.0/8")
	if r := g.Ingress[1]; r.Protocol != 17 || r.FromPort != 1000 || r.ToPort != 2000 || r.CIDR != "10.0.0.0/8" {
		t.Errorf("udp range rule %+v", r)
	}
	g = okJSON[sgJ](t, s, "sg", "authorize", "web", "--proto", "icmp", "--icmp-type", "8", "--cidr", "10.0.0.0/16")
	if r := g.Ingress[2]; r.Protocol != 1 || r.FromPort != 8 || r.ToPort != -1 {
		t.Errorf("icmp echo rule %+v", r)
	}
	g = okJSON[sgJ](t, s, "sg", "authorize", "web", "--proto", "tcp", "--port", "8080", "--source-group", "app")
	if r := g.Ingress[3]; r.GroupID != app.ID || r.CIDR != "" {
		t.Errorf("source-group rule %+v", r)
	}
	g = okJSON[sgJ](t, s, "sg", "authorize", "web", "--egress", "--proto", "all", "--cidr", "10.0.0.0/16")
	if len(g.Egress) != 2 || g.Egress[1].Protocol != -1 || g.Egress[1].CIDR != "10.0.0.0/16" {
		t.Errorf("egress rule %+v", g.Egress)
	}
	if out := s.ok(t, "sg", "get", "web"); !strings.Contains(out, http.RuleID+":tcp:80<-0.0.0.0/0") || !strings.Contains(out, "udp:1000-2000<-10.0.0.0/8") ||
		!strings.Contains(out, "icmp:8<-10.0.0.0/16") || !strings.Contains(out, "tcp:8080<-"+app.ID) || !strings.Contains(out, "all->10.0.0.0/16") {
		t.Errorf("sg get table does not spell the rules:\n%s", out)
	}

	// Bad rules, each with what to fix.
	for _, c := range []struct {
		code  string
		wants []string
		args  []string
	}{
		{"already_exists", []string{"already has this ingress rule", http.RuleID}, []string{"--proto", "tcp", "--port", "80", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"tcp and udp only", "icmp"}, []string{"--proto", "icmp", "--port", "80", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"needs a port"}, []string{"--proto", "tcp", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"backwards", "1000-2000"}, []string{"--proto", "tcp", "--port", "2000-1000", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"not a port"}, []string{"--proto", "tcp", "--port", "http", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"protocol", "not known"}, []string{"--proto", "carrier-pigeon", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"icmp only"}, []string{"--proto", "tcp", "--port", "80", "--icmp-type", "8", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"exactly one source"}, []string{"--proto", "tcp", "--port", "22"}},
		{"invalid_argument", []string{"exactly one"}, []string{"--proto", "tcp", "--port", "22", "--cidr", "0.0.0.0/0", "--source-group", "app"}},
		{"invalid_argument", []string{"host bits", "10.0.0.0/8"}, []string{"--proto", "tcp", "--port", "22", "--cidr", "10.1.2.3/8"}},
		{"not_found", []string{`prefix list "pl-0123456789abcdef" not found`}, []string{"--proto", "tcp", "--port", "22", "--prefix-list", "pl-0123456789abcdef"}},
		{"not_found", []string{`"ghost"`}, []string{"--proto", "tcp", "--port", "22", "--source-group", "ghost"}},
		{"", []string{"--ingress or --egress, not both"}, []string{"--ingress", "--egress", "--proto", "tcp", "--port", "22", "--cidr", "0.0.0.0/0"}},
	} {
		s.fail(t, c.code, c.wants, append([]string{"sg", "authorize", "web"}, c.args...)...)
	}

	// A group of another VPC: refused until the VPCs are actively peered.
	blue := okJSON[sgJ](t, s, "sg", "create", "--vpc", "blue", "--name", "blue-db")
	s.fail(t, "invalid_argument", []string{blue.ID, "not actively peered"}, "sg", "authorize", "web", "--egress", "--proto", "tcp", "--port", "5432", "--source-group", "blue-db")
	pcx := okJSON[peeringJ](t, s, "peering", "create", "--vpc", "red", "--peer-vpc", "blue")
	s.ok(t, "peering", "accept", pcx.ID)
	g = okJSON[sgJ](t, s, "sg", "authorize", "web", "--egress", "--proto", "tcp", "--port", "5432", "--source-group", "blue-db")
	if r := g.Egress[2]; r.GroupID != blue.ID {
		t.Errorf("peered group rule %+v", r)
	}
	s.fail(t, "failed_precondition", []string{blue.ID, "referenced by rules of " + web.ID}, "sg", "delete", "blue-db")

	// The quota: 60 rules per direction. Fill to 60 through the API, then
	// the 61st through the binary.
	vc := openvpcv1connect.NewVpcServiceClient(s.http(true), s.url)
	for p := 4; p < 60; p++ { // 3004–3059; the binary adds 3000–3003
		if _, err := vc.AuthorizeSecurityGroupRule(context.Background(), connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: "app", Rule: &pb.SecurityGroupRuleSpec{
			Match: &pb.RuleMatch{Protocol: "tcp", Port: fmt.Sprint(3000 + p)}, Cidr: "10.0.0.0/8",
		}})); err != nil {
			t.Fatal(err)
		}
	}
	s.ok(t, "sg", "authorize", "app", "--proto", "tcp", "--port", "3000", "--cidr", "10.0.0.0/8")
	s.ok(t, "sg", "authorize", "app", "--proto", "tcp", "--port", "3001", "--cidr", "10.0.0.0/8")
	s.ok(t, "sg", "authorize", "app", "--proto", "tcp", "--port", "3002", "--cidr", "10.0.0.0/8")
	s.ok(t, "sg", "authorize", "app", "--proto", "tcp", "--port", "3003", "--cidr", "10.0.0.0/8")
	s.fail(t, "failed_precondition", []string{"60 ingress rules", "per direction", "revoke one"}, "sg", "authorize", "app", "--proto", "tcp", "--port", "4000", "--cidr", "10.0.0.0/8")

	// Revoke by id and by match; what is not there is not found.
	g = okJSON[sgJ](t, s, "sg", "revoke", "web", "--rule", http.RuleID)
	if len(g.Ingress) != 3 || g.Ingress[0].Protocol != 17 {
		t.Errorf("after revoking %s: %+v", http.RuleID, g.Ingress)
	}
	s.fail(t, "not_found", []string{http.RuleID}, "sg", "revoke", "web", "--rule", http.RuleID)
	g = okJSON[sgJ](t, s, "sg", "revoke", "web", "--proto", "udp", "--port", "1000-2000", "--cidr", "10.0.0.0/8")
	if len(g.Ingress) != 2 {
		t.Errorf("after revoking udp 1000-2000: %+v", g.Ingress)
	}
	s.fail(t, "not_found", []string{"udp:1000-2000 from 10.0.0.0/8"}, "sg", "revoke", "web", "--proto", "udp", "--port", "1000-2000", "--cidr", "10.0.0.0/8")
	s.fail(t, "", []string{"say which rule"}, "sg", "revoke", "web")
	s.fail(t, "", []string{"not both"}, "sg", "revoke", "web", "--rule", http.RuleID, "--proto", "tcp")
	s.fail(t, "invalid_argument", []string{"not a rule id"}, "sg", "revoke", "web", "--rule", "rule-1")

	// Instances' groups.
	if r := okJSON[instSGJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--security-group", "red/default,app"); !reflect.DeepEqual(r.Groups, []string{def.ID, app.ID}) {
		t.Errorf("instance run --security-group red/default,app: groups %v", r.Groups)
	}
	inst := okJSON[instSGJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "plain", "--host", "host-a")
	if !reflect.DeepEqual(inst.Groups, []string{def.ID}) {
		t.Errorf("instance without --security-group has groups %v, want the default %s", inst.Groups, def.ID)
	}
	webInst := okJSON[instSGJ](t, s, "instance", "run", "--subnet", "red-a", "--name", "www", "--host", "host-a", "--security-group", "web", "--security-group", app.ID)
	if !reflect.DeepEqual(webInst.Groups, []string{web.ID, app.ID}) {
		t.Errorf("instance groups %v, want web and app", webInst.Groups)
	}
	if out := s.ok(t, "instance", "get", "www"); !strings.Contains(out, web.ID+","+app.ID) {
		t.Errorf("instance get table lacks its groups:\n%s", out)
	}
	var six []string
	for i := range 6 {
		six = append(six, okJSON[sgJ](t, s, "sg", "create", "--vpc", "red", "--name", fmt.Sprintf("g%d", i)).ID)
	}
	s.fail(t, "invalid_argument", []string{"6 security groups", "at most 5"}, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--security-group", strings.Join(six, ","))
	s.fail(t, "invalid_argument", []string{blue.ID, "own VPC"}, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--security-group", "blue-db")
	s.fail(t, "failed_precondition", []string{web.ID, "in use by instances"}, "sg", "delete", "web")

	mod := okJSON[instSGJ](t, s, "instance", "modify", "www", "--security-group", "app")
	if mod.ID != webInst.ID || !reflect.DeepEqual(mod.Groups, []string{app.ID}) {
		t.Errorf("instance modify = %+v, want only app", mod)
	}
	s.fail(t, "invalid_argument", []string{"at most 5"}, "instance", "modify", "www", "--security-group", strings.Join(six, ","))
	s.fail(t, "invalid_argument", []string{"own VPC"}, "instance", "modify", "www", "--security-group", "blue-db")
	s.fail(t, "", []string{"nothing to change", "--security-group"}, "instance", "modify", "www")

	// Connection-tracking timeouts: those not given are kept.
	mod = okJSON[instSGJ](t, s, "instance", "modify", "www", "--tcp-established-timeout", "1h")
	if mod.Conntrack == nil || mod.Conntrack.TCP != 3600 || mod.Conntrack.UDP != 0 || !reflect.DeepEqual(mod.Groups, []string{app.ID}) {
		t.Errorf("after --tcp-established-timeout 1h: %+v", mod)
	}
	mod = okJSON[instSGJ](t, s, "instance", "modify", "www", "--udp-timeout", "45s")
	if mod.Conntrack == nil || mod.Conntrack.TCP != 3600 || mod.Conntrack.UDP != 45 {
		t.Errorf("after --udp-timeout 45s: %+v, want TCP kept at 3600", mod.Conntrack)
	}
	s.fail(t, "invalid_argument", []string{"UDP timeout 5 s", "30–60"}, "instance", "modify", "www", "--udp-timeout", "5s")
	s.fail(t, "", []string{"whole seconds"}, "instance", "modify", "www", "--udp-timeout", "1500ms")
	s.fail(t, "invalid_argument", []string{"TCP established timeout"}, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--tcp-established-timeout", "10s")
	if r := okJSON[instSGJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--udp-timeout", "1m"); r.Conntrack == nil || r.Conntrack.UDP != 60 {
		t.Errorf("instance run --udp-timeout 1m: %+v", r.Conntrack)
	}

	// web has no members now, and what it names does not hold it back.
	s.ok(t, "sg", "delete", "web")
	s.fail(t, "not_found", []string{`"web"`}, "sg", "get", "web")
	s.ok(t, "sg", "delete", "blue-db")
	if out := s.ok(t, "sg", "list"); !strings.Contains(out, app.ID) || !strings.Contains(out, def.ID) || strings.Contains(out, web.ID) {
		t.Errorf("sg list table:\n%s", out)
	}
}

// TestNetworkACLsCLI drives network ACLs through the binary: the default
// ACL, a custom one that denies all until entries are added, numbering,
// association and deletes, with every refusal.
func TestNetworkACLsCLI(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.ok(t, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	s.ok(t, "vpc", "create", "--name", "blue", "--cidr", "10.1.0.0/16")
	red := okJSON[vpcDefaultsJ](t, s, "vpc", "get", "red")
	sn := okJSON[subnetACLJ](t, s, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	if sn.ACLID != red.DefaultACL {
		t.Fatalf("new subnet's ACL %s, want the default %s", sn.ACLID, red.DefaultACL)
	}
	def := okJSON[aclJ](t, s, "acl", "get", red.DefaultACL)
	allowAll := []entryJ{{RuleNumber: 100, Protocol: -1, FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0", Allow: true}}
	if !def.IsDefault || !reflect.DeepEqual(def.Inbound, allowAll) || !reflect.DeepEqual(def.Outbound, allowAll) || !reflect.DeepEqual(def.SubnetIDs, []string{sn.ID}) {
		t.Fatalf("default ACL %+v", def)
	}
	if out := s.ok(t, "subnet", "get", "red-a"); !strings.Contains(out, "NETWORK ACL") || !strings.Contains(out, def.ID) {
		t.Errorf("subnet get table lacks its ACL:\n%s", out)
	}

	strict := okJSON[aclJ](t, s, "acl", "create", "--vpc", "red", "--name", "strict")
	if !strings.HasPrefix(strict.ID, "acl-") || strict.IsDefault || len(strict.Inbound) != 0 || len(strict.Outbound) != 0 {
		t.Fatalf("acl create = %+v: want no entries", strict)
	}
	if out := s.ok(t, "acl", "get", "strict"); !strings.Contains(out, "*:deny") {
		t.Errorf("a new ACL's table does not show the implicit deny:\n%s", out)
	}
	s.fail(t, "already_exists", []string{`"strict"`}, "acl", "create", "--vpc", "red", "--name", "strict")

	a := okJSON[aclJ](t, s, "acl", "entry", "add", "strict", "--rule-number", "200", "--allow", "--proto", "tcp", "--port", "1024-65535", "--cidr", "0.0.0.0/0")
	a = okJSON[aclJ](t, s, "acl", "entry", "add", "strict", "--rule-number", "100", "--allow", "--proto", "tcp", "--port", "80", "--cidr", "0.0.0.0/0")
	a = okJSON[aclJ](t, s, "acl", "entry", "add", "strict", "--rule-number", "50", "--deny", "--proto", "icmp", "--icmp-type", "8", "--cidr", "192.0.2.0/24")
	want := []entryJ{
		{RuleNumber: 50, Protocol: 1, FromPort: 8, ToPort: -1, CIDR: "192.0.2.0/24"},
		{RuleNumber: 100, Protocol: 6, FromPort: 80, ToPort: 80, CIDR: "0.0.0.0/0", Allow: true},
		{RuleNumber: 200, Protocol: 6, FromPort: 1024, ToPort: 65535, CIDR: "0.0.0.0/0", Allow: true},
	}
	if !reflect.DeepEqual(a.Inbound, want) || len(a.Outbound) != 0 {
		t.Fatalf("inbound entries %+v, want %+v (lowest first)", a.Inbound, want)
	}
	a = okJSON[aclJ](t, s, "acl", "entry", "add", "strict", "--rule-number", "100", "--egress", "--allow", "--proto", "all", "--cidr", "0.0.0.0/0")
	if len(a.Outbound) != 1 || a.Outbound[0].RuleNumber != 100 {
		t.Errorf("outbound %+v: the same number is free in the other direction", a.Outbound)
	}
	if out := s.ok(t, "acl", "get", "strict"); !strings.Contains(out, "50:deny:icmp:8:192.0.2.0/24 100:allow:tcp:80:0.0.0.0/0 200:allow:tcp:1024-65535:0.0.0.0/0 *:deny") {
		t.Errorf("acl get table does not spell the entries in order:\n%s", out)
	}
	for _, c := range []struct {
		code  string
		wants []string
		args  []string
	}{
		{"already_exists", []string{"inbound rule number 100", "allow tcp:80", "choose another number"}, []string{"--rule-number", "100", "--deny", "--proto", "tcp", "--port", "22", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"1–32766"}, []string{"--rule-number", "0", "--allow", "--proto", "all", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"1–32766"}, []string{"--rule-number", "32767", "--allow", "--proto", "all", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"tcp and udp only"}, []string{"--rule-number", "7", "--allow", "--proto", "icmp", "--port", "80", "--cidr", "0.0.0.0/0"}},
		{"invalid_argument", []string{"is not a CIDR"}, []string{"--rule-number", "7", "--allow", "--proto", "all", "--cidr", "everywhere"}},
		{"", []string{"--allow or --deny"}, []string{"--rule-number", "7", "--allow", "--deny", "--proto", "all", "--cidr", "0.0.0.0/0"}},
		{"", []string{"--allow or --deny"}, []string{"--rule-number", "7", "--proto", "all", "--cidr", "0.0.0.0/0"}},
	} {
		s.fail(t, c.code, c.wants, append([]string{"acl", "entry", "add", "strict"}, c.args...)...)
	}
	a = okJSON[aclJ](t, s, "acl", "entry", "delete", "strict", "--rule-number", "50")
	if len(a.Inbound) != 2 || a.Inbound[0].RuleNumber != 100 {
		t.Errorf("after deleting 50: %+v", a.Inbound)
	}
	s.fail(t, "not_found", []string{"inbound rule number 50"}, "acl", "entry", "delete", "strict", "--rule-number", "50")
	s.fail(t, "not_found", []string{"outbound rule number 200"}, "acl", "entry", "delete", "strict", "--rule-number", "200", "--egress")

	// Association: exactly one ACL per subnet.
	a = okJSON[aclJ](t, s, "acl", "associate", "strict", "--subnet", "red-a")
	if !reflect.DeepEqual(a.SubnetIDs, []string{sn.ID}) {
		t.Errorf("after associate, strict's subnets %v", a.SubnetIDs)
	}
	if got := okJSON[subnetACLJ](t, s, "subnet", "get", "red-a"); got.ACLID != strict.ID {
		t.Errorf("red-a's ACL %s, want %s", got.ACLID, strict.ID)
	}
	if got := okJSON[aclJ](t, s, "acl", "get", def.ID); len(got.SubnetIDs) != 0 {
		t.Errorf("the default ACL still lists %v", got.SubnetIDs)
	}
	s.fail(t, "failed_precondition", []string{strict.ID, "associated with subnets " + sn.ID, "acl associate"}, "acl", "delete", "strict")
	s.fail(t, "failed_precondition", []string{def.ID, "default network ACL"}, "acl", "delete", def.ID)
	blue := okJSON[aclJ](t, s, "acl", "create", "--vpc", "blue", "--name", "blue-acl")
	s.fail(t, "invalid_argument", []string{blue.ID, "its own VPC"}, "acl", "associate", "blue-acl", "--subnet", "red-a")
	s.fail(t, "", []string{"subnet"}, "acl", "associate", "strict")
	if got := okJSON[[]aclJ](t, s, "acl", "list", "--vpc", "red"); len(got) != 2 || got[0].ID != def.ID || got[1].ID != strict.ID {
		t.Errorf("acl list --vpc red = %+v, want the default then strict", got)
	}

	if a := okJSON[aclJ](t, s, "acl", "associate", "red/default", "--subnet", "red-a"); a.ID != def.ID {
		t.Errorf("acl associate red/default: %s, want %s", a.ID, def.ID)
	}
	s.fail(t, "failed_precondition", []string{strict.ID}, "vpc", "delete", "red")
	s.ok(t, "acl", "delete", "strict")
	s.fail(t, "not_found", []string{`"strict"`}, "acl", "get", "strict")
	s.ok(t, "subnet", "delete", "red-a")
	s.ok(t, "vpc", "delete", "red")
	s.fail(t, "not_found", nil, "acl", "get", def.ID)
}
