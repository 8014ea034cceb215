package mapping_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/testcloud"
)

// TestFirewallChurn: concurrent rule authorizations and revocations,
// ENI group and conntrack changes, ACL entries and associations, runs and terminates,
// cross-VPC group rules, while hosts disconnect and reconnect; at the end
// every host's cache equals what the store says, groups and ACLs included.
func TestFirewallChurn(t *testing.T) {
	ops := 600
	if testing.Short() {
		ops = 200
	}
	c := testcloud.New(t, etcd)
	api := c.API()
	var hosts []*testcloud.Host
	for i := range 4 {
		hosts = append(hosts, c.AddHost(api.URL, fmt.Sprintf("host-%d", i), addr(i+1)))
	}
	ctx := c.Ctx()
	const nVPC, nGroup, nACL = 3, 3, 2
	for v := range nVPC {
		name := fmt.Sprintf("v%d", v)
		if _, err := api.VPC.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: name, Cidr: fmt.Sprintf("10.%d.0.0/16", v)})); err != nil {
			t.Fatal(err)
		}
		for s := range 2 {
			if _, err := api.VPC.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: name, Cidr: fmt.Sprintf("10.%d.%d.0/24", v, s), Name: fmt.Sprintf("%s-%d", name, s)})); err != nil {
				t.Fatal(err)
			}
		}
		for g := range nGroup {
			if _, err := api.VPC.CreateSecurityGroup(ctx, connect.NewRequest(&pb.CreateSecurityGroupRequest{Vpc: name, Name: fmt.Sprintf("%s-g%d", name, g)})); err != nil {
				t.Fatal(err)
			}
		}
		for a := range nACL {
			if _, err := api.VPC.CreateNetworkAcl(ctx, connect.NewRequest(&pb.CreateNetworkAclRequest{Vpc: name, Name: fmt.Sprintf("%s-acl%d", name, a)})); err != nil {
				t.Fatal(err)
			}
		}
	}
	// v0 and v1 are peered, so their groups may name each other.
	p, err := api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "v0", PeerVpc: "v1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(3, 4))
	intn := func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(n)
	}
	live := map[string]int{} // instance → its VPC
	group := func(v int) string { return fmt.Sprintf("v%d-g%d", v, intn(nGroup)) }
	// Refusals a random op may meet are part of the game; anything else fails the test.
	tolerated := func(err error) error {
		switch connect.CodeOf(err) {
		case connect.CodeAlreadyExists, connect.CodeNotFound, connect.CodeFailedPrecondition, connect.CodeInvalidArgument:
			return nil
		}
		return err
	}
	step := func() error {
		v := intn(nVPC)
		switch k := intn(100); {
		case k < 20:
			gs := []string{group(v)}
			if intn(2) == 0 {
				gs = append(gs, group(v))
			}
			r, err := api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{
				Subnet: fmt.Sprintf("v%d-%d", v, intn(2)), Host: fmt.Sprintf("host-%d", intn(len(hosts))), SecurityGroups: gs,
			}))
			if err != nil {
				return err
			}
			mu.Lock()
			live[r.Msg.Instance.Id] = v
			mu.Unlock()
		case k < 30:
			mu.Lock()
			var id string
			for i := range live {
				id = i
				break
			}
			delete(live, id)
			mu.Unlock()
			if id != "" {
				if _, err := api.Inst.TerminateInstance(ctx, connect.NewRequest(&pb.TerminateInstanceRequest{Ref: id})); err != nil {
					return err
				}
			}
		case k < 45:
			mu.Lock()
			var id string
			var iv int
			for i, vv := range live {
				id, iv = i, vv
				break
			}
			mu.Unlock()
			if id != "" {
				req := &pb.ModifyInstanceRequest{Ref: id, SecurityGroups: []string{group(iv)}}
				if intn(3) == 0 {
					req.SecurityGroups, req.Conntrack = nil, &pb.ConntrackSettings{TcpEstablishedSeconds: uint32(60 * (1 + intn(3)))}
				}
				_, err := api.Inst.ModifyInstance(ctx, connect.NewRequest(req))
				return tolerated(err) // it may have been terminated meanwhile
			}
		case k < 65:
			spec := &pb.SecurityGroupRuleSpec{Egress: intn(2) == 0, Match: &pb.RuleMatch{Protocol: "tcp", Port: fmt.Sprint(intn(8))}, Cidr: fmt.Sprintf("10.%d.0.0/16", intn(4))}
			if v < 2 && intn(2) == 0 {
				spec.Cidr, spec.Group = "", group(intn(2)) // this VPC's or the peer's
			}
			_, err := api.VPC.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{Ref: group(v), Rule: spec}))
			return tolerated(err)
		case k < 80:
			g, err := api.VPC.GetSecurityGroup(ctx, connect.NewRequest(&pb.GetSecurityGroupRequest{Ref: group(v)}))
			if err != nil {
				return err
			}
			rules := append(g.Msg.SecurityGroup.Ingress, g.Msg.SecurityGroup.Egress...)
			if len(rules) > 0 {
				_, err := api.VPC.RevokeSecurityGroupRule(ctx, connect.NewRequest(&pb.RevokeSecurityGroupRuleRequest{Ref: g.Msg.SecurityGroup.Id, RuleId: rules[intn(len(rules))].RuleId}))
				return tolerated(err) // revoked by another worker meanwhile
			}
		case k < 88:
			acl := fmt.Sprintf("v%d-acl%d", v, intn(nACL))
			n := int32(1 + intn(20))
			if intn(3) == 0 {
				_, err := api.VPC.DeleteNetworkAclEntry(ctx, connect.NewRequest(&pb.DeleteNetworkAclEntryRequest{Ref: acl, RuleNumber: n, Egress: n%2 == 0}))
				return tolerated(err)
			}
			_, err := api.VPC.CreateNetworkAclEntry(ctx, connect.NewRequest(&pb.CreateNetworkAclEntryRequest{
				Ref: acl, RuleNumber: n, Egress: n%2 == 0, Allow: intn(2) == 0, Match: &pb.RuleMatch{Protocol: "all"}, Cidr: "0.0.0.0/0",
			}))
			return tolerated(err)
		case k < 94:
			_, err := api.VPC.AssociateNetworkAcl(ctx, connect.NewRequest(&pb.AssociateNetworkAclRequest{Ref: fmt.Sprintf("v%d-acl%d", v, intn(nACL)), Subnet: fmt.Sprintf("v%d-%d", v, intn(2))}))
			return err
		case k < 97:
			hosts[intn(len(hosts))].Disconnect()
		default:
			hosts[intn(len(hosts))].Connect()
		}
		return nil
	}
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < ops; i += workers {
				if err := step(); err != nil {
					errs <- fmt.Errorf("op %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, h := range hosts {
		h.Connect()
	}
	c.Converge(api, hosts...)
	rules, entries := 0, 0
	for _, h := range hosts {
		for _, f := range h.Mirror.State().VPCs {
			for _, g := range f.SecurityGroups {
				rules += len(g.Ingress) + len(g.Egress)
			}
			for _, a := range f.NetworkAcls {
				entries += len(a.Inbound) + len(a.Outbound)
			}
		}
	}
	if rules == 0 || entries == 0 {
		t.Fatalf("the churn left %d rules and %d ACL entries in the hosts' caches; it exercised nothing", rules, entries)
	}
	t.Logf("hosts hold %d rules and %d ACL entries in all", rules, entries)
}
