package mapping

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

func rec(t *testing.T, kind, id string, m proto.Message) store.Record {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return store.Record{Kind: kind, ID: id, Value: b}
}

// TestPrefixListChangeMarksItsVPCs: a prefix list's change is a facts
// change of exactly the VPCs with a group whose rule names it, and follows
// rules as they are authorized and revoked.
func TestPrefixListChangeMarksItsVPCs(t *testing.T) {
	w := newWorld()
	apply := func(r store.Record) set {
		t.Helper()
		d := newDelta(1)
		if err := w.apply(r, d); err != nil {
			t.Fatal(err)
		}
		return d.facts
	}
	pl := &pb.PrefixList{Id: "pl-1", Entries: []*pb.PrefixListEntry{{Cidr: "10.9.0.0/16"}}}
	for _, v := range []string{"vpc-a", "vpc-b"} {
		apply(rec(t, store.RecVPC, v, &pb.Vpc{Id: v}))
	}
	naming := &pb.SecurityGroup{Id: "sg-a", VpcId: "vpc-a", Ingress: []*pb.SecurityGroupRule{{RuleId: "sgr-1", Protocol: 6, FromPort: 22, ToPort: 22, PrefixListId: "pl-1"}}}
	apply(rec(t, store.RecSG, "sg-a", naming))
	apply(rec(t, store.RecSG, "sg-b", &pb.SecurityGroup{Id: "sg-b", VpcId: "vpc-b"}))
	if got := apply(rec(t, store.RecPrefixList, "pl-1", pl)); len(got) != 1 || !has(got, "vpc-a") {
		t.Fatalf("a list change marked %v; want vpc-a only", got)
	}
	f := w.facts("vpc-a")
	if r := f.SecurityGroups[0].Ingress[0]; !slices.Equal(r.PrefixCidrs, []string{"10.9.0.0/16"}) {
		t.Fatalf("facts carry %v", r)
	}
	if len(w.sgs["sg-a"].Ingress[0].PrefixCidrs) != 0 {
		t.Fatal("facts() wrote the CIDRs into the world's own rule")
	}
	empty := &pb.PrefixList{Id: "pl-1"}
	apply(rec(t, store.RecPrefixList, "pl-1", empty))
	if g := w.facts("vpc-a").SecurityGroups[0]; len(g.Ingress) != 0 {
		t.Fatalf("a rule naming an empty list reaches hosts: %v", g)
	}
	apply(rec(t, store.RecSG, "sg-a", &pb.SecurityGroup{Id: "sg-a", VpcId: "vpc-a"})) // revoked
	if got := apply(rec(t, store.RecPrefixList, "pl-1", pl)); len(got) != 0 {
		t.Fatalf("with the rule revoked, a list change marked %v", got)
	}
}

func has(s set, k string) bool { _, ok := s[k]; return ok }
