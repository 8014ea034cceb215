package demo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/localcloud"
)

// setup makes the talk's world: red and yellow, peered, and green, with
// an instance each on a different host; red has an internet gateway and
// its instance an Elastic IP.
func (d *demo) setup(ctx context.Context) error {
	d.vpcs, d.insts = map[string]*pb.Vpc{}, map[string]*pb.Instance{}
	for i, name := range []string{"red", "yellow", "green"} {
		v, err := d.vpc.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: name, Cidr: fmt.Sprintf("10.%d.0.0/16", i)}))
		if err != nil {
			return err
		}
		d.vpcs[name] = v.Msg.Vpc
		if _, err := d.vpc.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: name, Cidr: fmt.Sprintf("10.%d.1.0/24", i), Name: name + "-a"})); err != nil {
			return err
		}
	}
	p, err := d.vpc.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "red", PeerVpc: "yellow", Name: "red-yellow"}))
	if err != nil {
		return err
	}
	if _, err := d.vpc.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		return err
	}
	for _, r := range []struct{ vpc, dest, target string }{{"red", "10.1.0.0/16", "red-yellow"}, {"yellow", "10.0.0.0/16", "red-yellow"}} {
		if _, err := d.vpc.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: d.vpcs[r.vpc].MainRouteTableId, DestinationCidr: r.dest, Target: r.target})); err != nil {
			return err
		}
	}
	// Yellow's default security group admits only its own members; let in
	// red's too (a group of the peered VPC). Replies pass statefully.
	if _, err := d.vpc.AuthorizeSecurityGroupRule(ctx, connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{
		Ref: d.vpcs["yellow"].DefaultSecurityGroupId, Rule: &pb.SecurityGroupRuleSpec{Match: &pb.RuleMatch{Protocol: "all"}, Group: d.vpcs["red"].DefaultSecurityGroupId},
	})); err != nil {
		return err
	}
	if _, err := d.vpc.CreateInternetGateway(ctx, connect.NewRequest(&pb.CreateInternetGatewayRequest{Name: "red-igw"})); err != nil {
		return err
	}
	if _, err := d.vpc.AttachInternetGateway(ctx, connect.NewRequest(&pb.AttachInternetGatewayRequest{Ref: "red-igw", Vpc: "red"})); err != nil {
		return err
	}
	if _, err := d.vpc.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: d.vpcs["red"].MainRouteTableId, DestinationCidr: "0.0.0.0/0", Target: "red-igw"})); err != nil {
		return err
	}
	for i, name := range []string{"red", "yellow", "green"} {
		inst, err := d.runInstance(ctx, name+"-a", name+"-1", fmt.Sprintf("host-%d", i+1))
		if err != nil {
			return err
		}
		d.insts[name] = inst
	}
	// yellow-2 shares host-3 with green-1: host-2 knows host-3 (it holds
	// yellow's mappings), so what host-3 sends is checked in full.
	if _, err := d.runInstance(ctx, "yellow-a", "yellow-2", "host-3"); err != nil {
		return err
	}
	e, err := d.vpc.AllocateAddress(ctx, connect.NewRequest(&pb.AllocateAddressRequest{Name: "red-ip"}))
	if err != nil {
		return err
	}
	if _, err := d.vpc.AssociateAddress(ctx, connect.NewRequest(&pb.AssociateAddressRequest{Ref: "red-ip", Instance: "red-1"})); err != nil {
		return err
	}
	d.eip = e.Msg.Address.PublicIp
	d.say("red-1 %s on host-1 (Elastic IP %s), yellow-1 %s on host-2, green-1 %s and yellow-2 on host-3; red and yellow are peered",
		d.insts["red"].PrivateIp, d.eip, d.insts["yellow"].PrivateIp, d.insts["green"].PrivateIp)
	return d.untilNICs(ctx)
}

func (d *demo) runInstance(ctx context.Context, subnet, name, host string) (*pb.Instance, error) {
	r, err := d.inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: subnet, Name: name, Host: host}))
	if err != nil {
		return nil, err
	}
	w, err := d.inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000}))
	if err != nil {
		return nil, err
	}
	return w.Msg.Instance, nil
}

// untilNICs waits until every instance has its NIC on its host, and the
// edge knows red's Elastic IP.
func (d *demo) untilNICs(ctx context.Context) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ready := true
		for _, inst := range d.insts {
			_, ok := d.agentOf(inst).NIC(d.vpcOf(inst).Vni, netip.MustParseAddr(inst.PrivateIp))
			ready = ready && ok
		}
		if t, err := d.inst.TraceInstance(ctx, connect.NewRequest(&pb.TraceInstanceRequest{From: "red-1", To: localcloud.WebAddr.String()})); err == nil && t.Msg.Verdict == "forwarded" && ready {
			return nil
		}
	}
	return errors.New("the instances' NICs or the edge's Elastic IP did not appear within 10 s")
}

func (d *demo) agentOf(inst *pb.Instance) *agent.Agent {
	for _, h := range d.cloud.Hosts {
		if h.HostID == inst.HostId {
			return h.Agent
		}
	}
	return nil
}

func (d *demo) vpcOf(inst *pb.Instance) *pb.Vpc {
	for _, v := range d.vpcs {
		if v.Id == inst.VpcId {
			return v
		}
	}
	return nil
}
