package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// LocalTarget is the route target of a VPC's own CIDR.
const LocalTarget = "local"

// CreateVPC creates a VPC with a fresh VNI and its main route table holding
// the local route.
func (s *Store) CreateVPC(ctx context.Context, name string, cidr netip.Prefix) (*pb.Vpc, error) {
	var out *pb.Vpc
	err := retry(ctx, "create VPC", func() error {
		vpc := &pb.Vpc{
			Id:               model.NewID(model.KindVPC),
			Name:             name,
			Cidr:             cidr.String(),
			Vni:              randomVNI(),
			MainRouteTableId: model.NewID(model.KindRouteTable),
			CreateTime:       timestamppb.Now(),
			// Every VPC comes with a default security group and network
			// ACL, as on AWS: ENIs and subnets that name none get these.
			DefaultSecurityGroupId: model.NewID(model.KindSecurityGroup),
			DefaultNetworkAclId:    model.NewID(model.KindNetworkACL),
		}
		rtb := &pb.RouteTable{
			Id: vpc.MainRouteTableId, VpcId: vpc.Id, Main: true, CreateTime: vpc.CreateTime,
			Routes: []*pb.Route{{DestinationCidr: vpc.Cidr, Target: LocalTarget}},
		}
		var t txn
		t.absent(s.nameKey(model.KindVPC, name))
		t.absent(s.vniKey(vpc.Vni))
		t.putProto(s.resKey(model.KindVPC, vpc.Id), vpc)
		t.put(s.nameKey(model.KindVPC, name), vpc.Id)
		t.put(s.vniKey(vpc.Vni), vpc.Id)
		t.putProto(s.resKey(model.KindRouteTable, rtb.Id), rtb)
		t.putProto(s.resKey(model.KindSecurityGroup, vpc.DefaultSecurityGroupId), defaultGroup(vpc))
		t.putProto(s.resKey(model.KindNetworkACL, vpc.DefaultNetworkAclId), defaultACL(vpc))
		ok, _, err := s.commit(ctx, &t)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.nameFree(ctx, model.KindVPC, name); err != nil {
				return err
			}
			return errRetry // the random VNI was taken; draw another
		}
		out = vpc
		return nil
	})
	return out, err
}

func randomVNI() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])%model.MaxVNI + 1
}

// nameFree reports AlreadyExists if a resource of kind k is named name.
func (s *Store) nameFree(ctx context.Context, k model.Kind, name string) error {
	if name == "" {
		return nil
	}
	r, err := s.c.Get(ctx, s.nameKey(k, name))
	if err != nil {
		return unavailable(err)
	}
	if len(r.Kvs) > 0 {
		return model.Existsf("%s named %q already exists (%s)", k.ANoun(), name, r.Kvs[0].Value)
	}
	return nil
}

// GetVPC reads a VPC by name or id.
func (s *Store) GetVPC(ctx context.Context, ref string) (*pb.Vpc, error) {
	v := new(pb.Vpc)
	_, err := s.load(ctx, model.KindVPC, ref, v)
	return v, err
}

// ListVPCs lists every VPC, ordered by name.
func (s *Store) ListVPCs(ctx context.Context) ([]*pb.Vpc, error) {
	vs, err := listProto(ctx, s, s.key(string(model.KindVPC))+"/", func() *pb.Vpc { return new(pb.Vpc) })
	slices.SortFunc(vs, func(a, b *pb.Vpc) int { return compareNames(a.Name, a.Id, b.Name, b.Id) })
	return vs, err
}

// compareVPCFirst orders a VPC's firewalls: by VPC, its default first,
// then by name and id.
func compareVPCFirst(avpc string, adef bool, an, aid string, bvpc string, bdef bool, bn, bid string) int {
	switch {
	case avpc != bvpc:
		return strings.Compare(avpc, bvpc)
	case adef != bdef && adef:
		return -1
	case adef != bdef:
		return 1
	}
	return compareNames(an, aid, bn, bid)
}

func compareNames(an, aid, bn, bid string) int {
	if an != bn {
		if an < bn {
			return -1
		}
		return 1
	}
	if aid < bid {
		return -1
	} else if aid > bid {
		return 1
	}
	return 0
}

// DeleteVPC deletes a VPC with its main route table, default security
// group and default network ACL. It is refused while subnets, other route
// tables, peerings, security groups or ACLs still belong to it, or while
// rules of other VPCs' groups name its default group. Its flow logs go
// with it (as those of a subnet or an instance do).
func (s *Store) DeleteVPC(ctx context.Context, ref string) error {
	return retry(ctx, "delete VPC", func() error { return s.deleteVPCOnce(ctx, ref) })
}

func (s *Store) deleteVPCOnce(ctx context.Context, ref string) error {
	vpc := new(pb.Vpc)
	rev, err := s.load(ctx, model.KindVPC, ref, vpc)
	if err != nil {
		return err
	}
	var t txn
	t.unchanged(s.resKey(model.KindVPC, vpc.Id), rev)
	t.emptyPrefix(s.refPrefix(vpc.Id))
	if err := s.dropFlowLogs(ctx, vpc.Id, &t); err != nil {
		return err
	}
	t.del(s.resKey(model.KindVPC, vpc.Id))
	t.del(s.nameKey(model.KindVPC, vpc.Name))
	t.del(s.vniKey(vpc.Vni))
	t.del(s.resKey(model.KindRouteTable, vpc.MainRouteTableId))
	if vpc.DefaultSecurityGroupId != "" {
		if err := s.dropDefaultGroup(ctx, vpc.DefaultSecurityGroupId, &t); err != nil {
			return err
		}
	}
	if vpc.DefaultNetworkAclId != "" {
		t.del(s.resKey(model.KindNetworkACL, vpc.DefaultNetworkAclId))
	}
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return err
	}
	in, err := s.blockers(ctx, vpc.Id)
	if err != nil {
		return err
	}
	if in != "" {
		return model.Preconditionf("VPC %s still has %s; delete them first", vpc.Id, in)
	}
	if vpc.DefaultSecurityGroupId != "" {
		why, err := s.groupUsers(ctx, vpc.DefaultSecurityGroupId)
		if err != nil {
			return err
		}
		if why != "" {
			return model.Preconditionf("the default security group %s of VPC %s is %s; revoke those rules first", vpc.DefaultSecurityGroupId, vpc.Id, why)
		}
	}
	return errRetry
}

// dropDefaultGroup adds to t the deletion of a VPC's default group with
// the ref/ keys its rules hold on other groups and prefix lists, guarded
// by the group as read.
func (s *Store) dropDefaultGroup(ctx context.Context, id string, t *txn) error {
	g := new(pb.SecurityGroup)
	rev, found, err := s.getProto(ctx, s.resKey(model.KindSecurityGroup, id), g)
	if err != nil {
		return err
	}
	t.emptyPrefix(s.refPrefix(id))
	if found {
		t.unchanged(s.resKey(model.KindSecurityGroup, id), rev)
		for other := range referencedGroups(g) {
			t.del(s.refKey(other, id))
		}
	}
	t.del(s.resKey(model.KindSecurityGroup, id))
	return nil
}

// ModifyVPC changes a VPC's attributes: dnsSupport, when set, turns its
// resolver on or off; dnsHostnames, when set, its answers for instance
// names. The record changes, so the VPC's facts reach every host in scope
// again.
func (s *Store) ModifyVPC(ctx context.Context, ref string, dnsSupport, dnsHostnames *bool) (*pb.Vpc, error) {
	if dnsSupport == nil && dnsHostnames == nil {
		return nil, model.Invalidf("nothing to change: give the VPC's DNS support or DNS hostnames (on or off)")
	}
	err := retry(ctx, "modify VPC", func() error {
		v := new(pb.Vpc)
		rev, err := s.load(ctx, model.KindVPC, ref, v)
		if err != nil {
			return err
		}
		was := proto.CloneOf(v)
		if dnsSupport != nil {
			v.DnsSupportDisabled = !*dnsSupport
		}
		if dnsHostnames != nil {
			v.DnsHostnamesDisabled = !*dnsHostnames
		}
		if proto.Equal(was, v) {
			return nil // nothing changes: no write, no push
		}
		var t txn
		t.unchanged(s.resKey(model.KindVPC, v.Id), rev)
		t.putProto(s.resKey(model.KindVPC, v.Id), v)
		return s.commitOrRetry(ctx, &t)
	})
	if err != nil {
		return nil, err
	}
	return s.GetVPC(ctx, ref)
}
