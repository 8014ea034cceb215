package store

import (
	"fmt"
	"slices"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

func tcp(from, to int32) model.Match {
	return model.Match{Protocol: model.ProtoTCP, From: from, To: to}
}

// TestVPCDefaults: a VPC comes with a default group (ingress from itself,
// egress anywhere) and a default ACL (rule 100 allows all, both ways);
// its subnets are associated with that ACL and its instances are members
// of that group; neither can be deleted alone, and both go with the VPC.
func TestVPCDefaults(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	g, err := f.s.GetSecurityGroup(c, f.vpc.DefaultSecurityGroupId)
	if err != nil {
		t.Fatal(err)
	}
	if !g.IsDefault || g.VpcId != f.vpc.Id || len(g.Ingress) != 1 || len(g.Egress) != 1 {
		t.Fatalf("default group %v", g)
	}
	in, out := g.Ingress[0], g.Egress[0]
	if in.GroupId != g.Id || in.Protocol != model.ProtoAll || in.Cidr != "" || !model.IsID(model.KindSecurityGroupRule, in.RuleId) {
		t.Errorf("default ingress rule %v, want all from the group itself", in)
	}
	if out.Cidr != AnyCIDR || out.Protocol != model.ProtoAll || out.GroupId != "" {
		t.Errorf("default egress rule %v, want all to 0.0.0.0/0", out)
	}
	a, err := f.s.GetNetworkACL(c, f.vpc.DefaultNetworkAclId)
	if err != nil {
		t.Fatal(err)
	}
	for _, es := range [][]*pb.NetworkAclEntry{a.Inbound, a.Outbound} {
		if len(es) != 1 || es[0].RuleNumber != 100 || !es[0].Allow || es[0].Protocol != model.ProtoAll || es[0].Cidr != AnyCIDR {
			t.Errorf("default ACL entries %v, want rule 100 allow all", es)
		}
	}
	if f.subnet.NetworkAclId != a.Id || !slices.Equal(a.SubnetIds, []string{f.subnet.Id}) {
		t.Errorf("subnet ACL %s, ACL's subnets %v; want the default ACL and the subnet", f.subnet.NetworkAclId, a.SubnetIds)
	}
	inst, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inst.SecurityGroupIds, []string{g.Id}) {
		t.Errorf("instance groups %v, want the default group", inst.SecurityGroupIds)
	}
	// red/default and vpc-…/default name the defaults.
	for _, ref := range []string{"red/default", f.vpc.Id + "/default"} {
		if got, err := f.s.GetSecurityGroup(c, ref); err != nil || got.Id != g.Id {
			t.Errorf("GetSecurityGroup(%q) = %v, %v; want %s", ref, got.GetId(), err, g.Id)
		}
		if got, err := f.s.GetNetworkACL(c, ref); err != nil || got.Id != a.Id {
			t.Errorf("GetNetworkACL(%q) = %v, %v; want %s", ref, got.GetId(), err, a.Id)
		}
	}
	_, err = f.s.GetSecurityGroup(c, "nope/default")
	wantKind(t, err, model.ErrNotFound, `"nope"`)
	wantKind(t, f.s.DeleteSecurityGroup(c, g.Id), model.ErrPrecondition, g.Id, "default", "with the VPC")
	wantKind(t, f.s.DeleteNetworkACL(c, a.Id), model.ErrPrecondition, a.Id, "default")

	if _, err := f.s.TerminateInstance(c, inst.Id); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteSubnet(c, f.subnet.Id); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteVPC(c, f.vpc.Id); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.GetSecurityGroup(c, g.Id)
	wantKind(t, err, model.ErrNotFound)
	_, err = f.s.GetNetworkACL(c, a.Id)
	wantKind(t, err, model.ErrNotFound)
}

// TestSecurityGroupRules: authorize and revoke, with every refusal.
func TestSecurityGroupRules(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	web, err := f.s.CreateSecurityGroup(c, "red", "web", "web servers")
	if err != nil {
		t.Fatal(err)
	}
	if len(web.Ingress) != 0 || len(web.Egress) != 1 || web.Egress[0].Cidr != AnyCIDR {
		t.Fatalf("new group %v: want no ingress, egress to anywhere", web)
	}
	_, err = f.s.CreateSecurityGroup(c, "red", "web", "")
	wantKind(t, err, model.ErrExists, `"web"`, web.Id)
	_, err = f.s.CreateSecurityGroup(c, "nope", "x", "")
	wantKind(t, err, model.ErrNotFound)

	g, r, err := f.s.AuthorizeRule(c, "web", RuleSpec{Match: tcp(80, 80), CIDR: AnyCIDR})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Ingress) != 1 || g.Ingress[0].RuleId != r.RuleId || r.Protocol != 6 || r.FromPort != 80 || r.ToPort != 80 || r.Cidr != AnyCIDR {
		t.Fatalf("after authorize: group %v, rule %v", g, r)
	}
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(80, 80), CIDR: AnyCIDR})
	wantKind(t, err, model.ErrExists, r.RuleId, "already has")
	// The same match as egress is another rule.
	if _, _, err := f.s.AuthorizeRule(c, web.Id, RuleSpec{Egress: true, Match: tcp(80, 80), CIDR: AnyCIDR}); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(22, 22)})
	wantKind(t, err, model.ErrInvalid, "exactly one source")
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(22, 22), CIDR: AnyCIDR, Group: web.Id})
	wantKind(t, err, model.ErrInvalid, "exactly one")
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(22, 22), PrefixList: "pl-0123456789abcdef"})
	wantKind(t, err, model.ErrNotFound, `prefix list "pl-0123456789abcdef" not found`)
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: model.Match{Protocol: model.ProtoICMP, From: 80, To: 300}, CIDR: AnyCIDR})
	wantKind(t, err, model.ErrInvalid, "ICMP")
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(22, 22), Group: "sg-0123456789abcdef"})
	wantKind(t, err, model.ErrNotFound)

	// Quota: 60 rules per direction (one ingress rule is there already).
	for p := int32(1000); p < 1059; p++ {
		if _, _, err := f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(p, p), CIDR: "10.0.0.0/8"}); err != nil {
			t.Fatalf("rule %d: %v", p, err)
		}
	}
	_, _, err = f.s.AuthorizeRule(c, web.Id, RuleSpec{Match: tcp(2000, 2000), CIDR: "10.0.0.0/8"})
	wantKind(t, err, model.ErrPrecondition, "60 ingress rules", "per direction")

	// Revoke by id and by what it matches.
	g, err = f.s.RevokeRule(c, web.Id, r.RuleId, RuleSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(g.Ingress, func(x *pb.SecurityGroupRule) bool { return x.RuleId == r.RuleId }) || len(g.Ingress) != 59 {
		t.Fatalf("rule %s still there, or others went: %d ingress rules", r.RuleId, len(g.Ingress))
	}
	_, err = f.s.RevokeRule(c, web.Id, r.RuleId, RuleSpec{})
	wantKind(t, err, model.ErrNotFound, r.RuleId)
	if _, err := f.s.RevokeRule(c, web.Id, "", RuleSpec{Match: tcp(1000, 1000), CIDR: "10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.RevokeRule(c, web.Id, "", RuleSpec{Match: tcp(1000, 1000), CIDR: "10.0.0.0/8"})
	wantKind(t, err, model.ErrNotFound, "tcp:1000 from 10.0.0.0/8")
	_, err = f.s.RevokeRule(c, web.Id, "", RuleSpec{Egress: true, Match: tcp(1001, 1001), CIDR: "10.0.0.0/8"})
	wantKind(t, err, model.ErrNotFound, "egress")
}

// TestGroupReferences: a rule may name a group of its VPC or of an
// actively peered one, and the named group cannot be deleted meanwhile.
func TestGroupReferences(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	web, _ := f.s.CreateSecurityGroup(c, "red", "web", "")
	app, _ := f.s.CreateSecurityGroup(c, "red", "app", "")
	if _, err := f.s.CreateVPC(c, "blue", mustPrefix("10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	blueGrp, err := f.s.CreateSecurityGroup(c, "blue", "blue-db", "")
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := f.s.AuthorizeRule(c, "web", RuleSpec{Match: tcp(80, 80), Group: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if r.GroupId != app.Id {
		t.Fatalf("rule peer %q, want %s", r.GroupId, app.Id)
	}
	// A second rule naming app: revoking one keeps app referenced.
	if _, _, err := f.s.AuthorizeRule(c, "web", RuleSpec{Match: tcp(443, 443), Group: app.Id}); err != nil {
		t.Fatal(err)
	}
	// A group may name itself without blocking its own deletion.
	if _, _, err := f.s.AuthorizeRule(c, "web", RuleSpec{Match: tcp(8080, 8080), Group: web.Id}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.s.DeleteSecurityGroup(c, "app"), model.ErrPrecondition, app.Id, "referenced by rules of "+web.Id)

	// Not peered, then pending, then active.
	_, _, err = f.s.AuthorizeRule(c, "web", RuleSpec{Match: tcp(5432, 5432), Group: "blue-db"})
	wantKind(t, err, model.ErrInvalid, blueGrp.Id, "not actively peered")
	p, err := f.s.CreatePeering(c, "red", "blue", "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.s.AuthorizeRule(c, "web", RuleSpec{Match: tcp(5432, 5432), Group: "blue-db"})
	wantKind(t, err, model.ErrInvalid, "not actively peered")
	if _, err := f.s.AcceptPeering(c, p.Id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.s.AuthorizeRule(c, "web", RuleSpec{Egress: true, Match: tcp(5432, 5432), Group: "blue-db"}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.s.DeleteSecurityGroup(c, "blue-db"), model.ErrPrecondition, "referenced by rules of "+web.Id)

	if _, err := f.s.RevokeRule(c, "web", "", RuleSpec{Match: tcp(80, 80), Group: "app"}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.s.DeleteSecurityGroup(c, "app"), model.ErrPrecondition, "referenced")
	if _, err := f.s.RevokeRule(c, "web", "", RuleSpec{Match: tcp(443, 443), Group: "app"}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteSecurityGroup(c, "app"); err != nil {
		t.Fatalf("app is no longer referenced: %v", err)
	}
	// A custom group blocks its VPC's deletion.
	wantKind(t, f.s.DeleteVPC(c, "blue"), model.ErrPrecondition, blueGrp.Id)
	if err := f.s.DeleteSecurityGroup(c, "web"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteSecurityGroup(c, "blue-db"); err != nil {
		t.Fatalf("blue-db is no longer referenced (web is gone): %v", err)
	}
}

// TestDefaultGroupReferencedFromPeer: a peer's rule naming a VPC's
// default group keeps the VPC from being deleted, and says so.
func TestDefaultGroupReferencedFromPeer(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	red, _ := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16"))
	if _, err := s.CreateVPC(c, "blue", mustPrefix("10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	p, _ := s.CreatePeering(c, "red", "blue", "")
	if _, err := s.AcceptPeering(c, p.Id); err != nil {
		t.Fatal(err)
	}
	bg, err := s.CreateSecurityGroup(c, "blue", "b", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AuthorizeRule(c, bg.Id, RuleSpec{Match: tcp(1, 65535), Group: red.DefaultSecurityGroupId}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePeering(c, p.Id); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.DeleteVPC(c, "red"), model.ErrPrecondition, red.DefaultSecurityGroupId, "referenced by rules of "+bg.Id)
	if err := s.DeleteSecurityGroup(c, bg.Id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVPC(c, "red"); err != nil {
		t.Fatal(err)
	}
}

// TestInstanceGroups: run with groups, modify them, and the refusals;
// a group with members cannot be deleted.
func TestInstanceGroups(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	var ids []string
	for _, n := range []string{"g1", "g2", "g3", "g4", "g5", "g6"} {
		g, err := f.s.CreateSecurityGroup(c, "red", n, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.Id)
	}
	inst, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", SecurityGroups: []string{"g1", ids[1], "g1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inst.SecurityGroupIds, ids[:2]) {
		t.Fatalf("groups %v, want %v (duplicates folded)", inst.SecurityGroupIds, ids[:2])
	}
	_, err = f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", SecurityGroups: []string{"g1", "g2", "g3", "g4", "g5", "g6"}})
	wantKind(t, err, model.ErrInvalid, "6 security groups", "at most 5")
	if _, err := f.s.CreateVPC(c, "blue", mustPrefix("10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	bg, _ := f.s.CreateSecurityGroup(c, "blue", "bg", "")
	_, err = f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", SecurityGroups: []string{"bg"}})
	wantKind(t, err, model.ErrInvalid, bg.Id, "own VPC")
	_, err = f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", SecurityGroups: []string{"nope"}})
	wantKind(t, err, model.ErrNotFound, "nope")

	wantKind(t, f.s.DeleteSecurityGroup(c, "g1"), model.ErrPrecondition, "in use by instances "+inst.Id)

	mod, err := f.s.ModifyInstance(c, inst.Id, InstanceChange{SecurityGroups: []string{"g3"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mod.SecurityGroupIds, ids[2:3]) || mod.Revision != inst.Revision {
		t.Fatalf("after modify: groups %v revision %d", mod.SecurityGroupIds, mod.Revision)
	}
	if err := f.s.DeleteSecurityGroup(c, "g1"); err != nil {
		t.Fatalf("g1 has no members now: %v", err)
	}
	_, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{})
	wantKind(t, err, model.ErrInvalid, "nothing to change")
	_, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{SecurityGroups: []string{"bg"}})
	wantKind(t, err, model.ErrInvalid, "own VPC")
	_, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{SecurityGroups: []string{"g2", "g3", "g4", "g5", "g6", f.vpc.DefaultSecurityGroupId}})
	wantKind(t, err, model.ErrInvalid, "at most 5")
	// Conntrack timeouts: set, checked, reset to the defaults; the groups stay.
	mod, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{Conntrack: &pb.ConntrackSettings{TcpEstablishedSeconds: 3600}})
	if err != nil || mod.Conntrack.GetTcpEstablishedSeconds() != 3600 || !slices.Equal(mod.SecurityGroupIds, ids[2:3]) {
		t.Fatalf("after setting conntrack: %v, %v", mod, err)
	}
	_, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{Conntrack: &pb.ConntrackSettings{UdpSeconds: 5}})
	wantKind(t, err, model.ErrInvalid, "UDP timeout 5 s", "30–60")
	if mod, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{Conntrack: &pb.ConntrackSettings{}}); err != nil || mod.Conntrack != nil {
		t.Fatalf("after resetting conntrack: %v, %v", mod, err)
	}
	_, err = f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", Conntrack: &pb.ConntrackSettings{OtherSeconds: 1}})
	wantKind(t, err, model.ErrInvalid, "other protocols")
	wantKind(t, f.s.DeleteSecurityGroup(c, "g3"), model.ErrPrecondition, inst.Id)
	if _, err := f.s.TerminateInstance(c, inst.Id); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteSecurityGroup(c, "g3"); err != nil {
		t.Fatalf("g3's member terminated: %v", err)
	}
	_, err = f.s.ModifyInstance(c, inst.Id, InstanceChange{SecurityGroups: []string{"g2"}})
	wantKind(t, err, model.ErrPrecondition, "terminated")
}

// TestNetworkACLs: entries, numbering, association and deletion.
func TestNetworkACLs(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	a, err := f.s.CreateNetworkACL(c, "red", "strict")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Inbound) != 0 || len(a.Outbound) != 0 || a.IsDefault {
		t.Fatalf("new ACL %v: want no entries (deny all)", a)
	}
	add := func(n int32, egress, allow bool, m model.Match, cidr string) error {
		_, err := f.s.AddACLEntry(c, "strict", egress, &pb.NetworkAclEntry{RuleNumber: n, Protocol: m.Protocol, FromPort: m.From, ToPort: m.To, Cidr: cidr, Allow: allow})
		return err
	}
	for _, n := range []int32{200, 100, 150} {
		if err := add(n, false, true, tcp(80, 80), AnyCIDR); err != nil {
			t.Fatal(err)
		}
	}
	wantKind(t, add(100, false, false, tcp(22, 22), AnyCIDR), model.ErrExists, "inbound rule number 100", "allow tcp:80")
	if err := add(100, true, true, tcp(1024, 65535), AnyCIDR); err != nil {
		t.Fatalf("the same number in the other direction: %v", err)
	}
	wantKind(t, add(0, false, true, tcp(80, 80), AnyCIDR), model.ErrInvalid, "1–32766")
	wantKind(t, add(32767, false, true, tcp(80, 80), AnyCIDR), model.ErrInvalid, "1–32766")
	wantKind(t, add(5, false, true, model.Match{Protocol: model.ProtoAll, From: 80, To: 80}, AnyCIDR), model.ErrInvalid, "no ports")
	a, err = f.s.GetNetworkACL(c, "strict")
	if err != nil {
		t.Fatal(err)
	}
	var nums []int32
	for _, e := range a.Inbound {
		nums = append(nums, e.RuleNumber)
	}
	if !slices.Equal(nums, []int32{100, 150, 200}) || len(a.Outbound) != 1 {
		t.Fatalf("inbound numbers %v (want lowest first), outbound %v", nums, a.Outbound)
	}
	if a, err = f.s.DeleteACLEntry(c, "strict", false, 150); err != nil || len(a.Inbound) != 2 {
		t.Fatalf("delete 150: %v, %v", a, err)
	}
	_, err = f.s.DeleteACLEntry(c, "strict", false, 150)
	wantKind(t, err, model.ErrNotFound, "inbound rule number 150")
	_, err = f.s.DeleteACLEntry(c, "strict", true, 200)
	wantKind(t, err, model.ErrNotFound, "outbound")

	a, sn, err := f.s.AssociateNetworkACL(c, "strict", "red-a")
	if err != nil {
		t.Fatal(err)
	}
	if sn.NetworkAclId != a.Id || !slices.Equal(a.SubnetIds, []string{sn.Id}) {
		t.Fatalf("associate: subnet ACL %s, ACL subnets %v", sn.NetworkAclId, a.SubnetIds)
	}
	if def, _ := f.s.GetNetworkACL(c, f.vpc.DefaultNetworkAclId); len(def.SubnetIds) != 0 {
		t.Fatalf("default ACL still lists %v", def.SubnetIds)
	}
	acls, err := f.s.ListNetworkACLs(c, f.vpc.Id)
	if err != nil || len(acls) != 2 || !acls[0].IsDefault || !slices.Equal(acls[1].SubnetIds, []string{sn.Id}) {
		t.Fatalf("list: %v, %v", acls, err)
	}
	wantKind(t, f.s.DeleteNetworkACL(c, "strict"), model.ErrPrecondition, "associated with subnets "+sn.Id, "acl associate")
	wantKind(t, f.s.DeleteVPC(c, "red"), model.ErrPrecondition, a.Id)
	// A subnet's ACL must be of its VPC.
	if _, err := f.s.CreateVPC(c, "blue", mustPrefix("10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateNetworkACL(c, "blue", "blue-acl"); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.s.AssociateNetworkACL(c, "blue-acl", "red-a")
	wantKind(t, err, model.ErrInvalid, "its own VPC")
	// Back to the default; then the custom ACL can go, and a deleted
	// subnet leaves no association behind.
	if _, _, err := f.s.AssociateNetworkACL(c, f.vpc.DefaultNetworkAclId, "red-a"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteNetworkACL(c, "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteSubnet(c, "red-a"); err != nil {
		t.Fatal(err)
	}
	if def, _ := f.s.GetNetworkACL(c, f.vpc.DefaultNetworkAclId); len(def.SubnetIds) != 0 {
		t.Fatalf("default ACL lists deleted subnet %v", def.SubnetIds)
	}
	if err := f.s.DeleteVPC(c, "red"); err != nil {
		t.Fatal(err)
	}
}

// TestFirewallRaces: concurrent writers never lose a rule, and a delete
// racing with what would reference the deleted group or ACL leaves no
// dangling reference, whichever wins.
func TestFirewallRaces(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	if _, err := f.s.CreateSecurityGroup(c, "red", "busy", ""); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, _, err := f.s.AuthorizeRule(c, "busy", RuleSpec{Match: tcp(int32(100+i), int32(100+i)), CIDR: AnyCIDR})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if g, _ := f.s.GetSecurityGroup(c, "busy"); len(g.Ingress) != n {
		t.Fatalf("%d concurrent authorizations left %d rules", n, len(g.Ingress))
	}

	deletes := 0
	for round := range 8 {
		name := fmt.Sprintf("doomed-%d", round)
		g, err := f.s.CreateSecurityGroup(c, "red", name, "")
		if err != nil {
			t.Fatal(err)
		}
		acl, err := f.s.CreateNetworkACL(c, "red", name)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{}, 4)
		var instErr, ruleErr, assocErr error
		var inst *pb.Instance
		go func() {
			inst, instErr = f.s.RunInstance(c, RunSpec{Subnet: "red-a", Host: "host-a", SecurityGroups: []string{g.Id}})
			done <- struct{}{}
		}()
		go func() {
			_, _, ruleErr = f.s.AuthorizeRule(c, "busy", RuleSpec{Match: tcp(9, 9), Group: g.Id})
			done <- struct{}{}
		}()
		go func() { _, _, assocErr = f.s.AssociateNetworkACL(c, acl.Id, "red-a"); done <- struct{}{} }()
		var delG, delACL error
		go func() {
			delG, delACL = f.s.DeleteSecurityGroup(c, g.Id), f.s.DeleteNetworkACL(c, acl.Id)
			done <- struct{}{}
		}()
		for range 4 {
			<-done
		}
		if delG == nil && (instErr == nil || ruleErr == nil) {
			t.Fatalf("round %d: group %s deleted, yet run (%v) or authorize (%v) naming it succeeded", round, g.Id, instErr, ruleErr)
		}
		if delACL == nil && assocErr == nil {
			if sn, _ := f.s.GetSubnet(c, "red-a"); sn.NetworkAclId == acl.Id {
				t.Fatalf("round %d: ACL %s deleted while red-a is associated with it", round, acl.Id)
			}
		}
		if delG == nil {
			deletes++
		}
		// Undo, for the next round.
		if inst != nil {
			if _, err := f.s.TerminateInstance(c, inst.Id); err != nil {
				t.Fatal(err)
			}
		}
		if ruleErr == nil {
			if _, err := f.s.RevokeRule(c, "busy", "", RuleSpec{Match: tcp(9, 9), Group: g.Id}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := f.s.AssociateNetworkACL(c, f.vpc.DefaultNetworkAclId, "red-a"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the delete won %d of 8 rounds", deletes)
}
