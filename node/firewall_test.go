package node

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/tables"
)

// The security groups and ACLs the Mapping Service pushes arrive in the
// cache as the data path reads them.
func TestCacheFirewallFacts(t *testing.T) {
	c := NewCache("host-1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	const sg, sg2, acl = "sg-00000000000000a1", "sg-00000000000000a2", "acl-00000000000000b1"
	facts := &pb.VpcFacts{Vni: 7, Id: "vpc-0000000000000007", Cidr: "10.7.0.0/16",
		Subnets:                []*pb.SubnetFacts{{Id: "subnet-0000000000000001", Cidr: "10.7.1.0/24", NetworkAclId: acl}},
		DefaultSecurityGroupId: sg, DefaultNetworkAclId: acl,
		SecurityGroups: []*pb.SecurityGroupFacts{
			{Id: sg, Ingress: []*pb.SecurityGroupRule{{RuleId: "sgr-0000000000000001", Protocol: -1, GroupId: sg}},
				Egress: []*pb.SecurityGroupRule{{RuleId: "sgr-0000000000000002", Protocol: -1, Cidr: "0.0.0.0/0"}}},
			{Id: sg2, Ingress: []*pb.SecurityGroupRule{{RuleId: "sgr-0000000000000003", Protocol: 6, FromPort: 80, ToPort: 80,
				PrefixListId: "pl-0000000000000001", PrefixCidrs: []string{"192.0.2.0/24", "198.51.100.0/24"}}}},
		},
		NetworkAcls: []*pb.NetworkAclFacts{{Id: acl,
			Inbound: []*pb.NetworkAclEntry{{RuleNumber: 200, Protocol: -1, Cidr: "0.0.0.0/0"}, {RuleNumber: 100, Protocol: 6, FromPort: 80, ToPort: 80, Cidr: "0.0.0.0/0", Allow: true}}}},
	}
	rec := &pb.MappingRecord{Vni: 7, Ip: "10.7.1.5", HostId: "host-2", EniId: "eni-0000000000000005", Mac: "02:00:00:00:00:05",
		SecurityGroupIds: []string{sg2, sg}}
	err := c.Apply(Batch{Snapshot: true, Revision: 1, Changes: []*pb.Change{
		{Kind: &pb.Change_UpsertVpc{UpsertVpc: facts}},
		{Kind: &pb.Change_UpsertMapping{UpsertMapping: rec}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	snap := c.Tables.Load()
	v, ok := snap.VPC(7)
	if !ok || len(v.SecurityGroups) != 2 || len(v.NetworkACLs) != 1 || v.DefaultGroup != 0xa1 || v.DefaultACL != 0xb1 {
		t.Fatalf("VPC facts: %+v", v)
	}
	var m tables.Mapping
	if !snap.Lookup(7, netip.MustParseAddr("10.7.1.5"), &m) || len(m.Groups) != 2 || m.Groups[0] != 0xa1 || m.Groups[1] != 0xa2 {
		t.Fatalf("mapping groups %v", m.Groups)
	}
	f := tables.Flow{Proto: 6, DstPort: 80}
	if g, r, ok := v.Allow(m.Groups, true, &f, netip.MustParseAddr("198.51.100.9"), nil); !ok || g != 0xa2 || r != 3 {
		t.Fatalf("prefix-list rule: %x %x %v", g, r, ok)
	}
	acl0 := v.ACL(netip.MustParseAddr("10.7.1.5"), netip.MustParseAddr("203.0.113.1"))
	if n, allow := acl0.Decide(true, &f, netip.MustParseAddr("203.0.113.1")); n != 100 || !allow {
		t.Fatalf("ACL entries out of order: rule %d allow %v", n, allow)
	}
	// A broken fact is refused (and counted), not half-applied.
	bad := &pb.VpcFacts{Vni: 8, Id: "vpc-0000000000000008", Cidr: "10.8.0.0/16", DefaultSecurityGroupId: "sg-00000000000000ff"}
	before := c.skipped.Load()
	if err := c.Apply(Batch{Revision: 2, Changes: []*pb.Change{{Kind: &pb.Change_UpsertVpc{UpsertVpc: bad}}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Tables.Load().VPC(8); ok || c.skipped.Load() != before+1 {
		t.Fatal("a default group the VPC does not have was accepted")
	}
}
