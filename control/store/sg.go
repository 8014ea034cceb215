package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// AnyCIDR is the peer of rules open to every address.
const AnyCIDR = "0.0.0.0/0"

// defaultGroup is a VPC's default security group, as AWS makes it: members
// may reach each other on every protocol, and may send anywhere.
func defaultGroup(vpc *pb.Vpc) *pb.SecurityGroup {
	id := vpc.DefaultSecurityGroupId
	all := func(r *pb.SecurityGroupRule) *pb.SecurityGroupRule {
		r.RuleId, r.Protocol, r.FromPort, r.ToPort = model.NewID(model.KindSecurityGroupRule), model.ProtoAll, model.AnyPort, model.AnyPort
		return r
	}
	return &pb.SecurityGroup{
		Id: id, VpcId: vpc.Id, IsDefault: true, Description: "default VPC security group", CreateTime: vpc.CreateTime,
		Ingress: []*pb.SecurityGroupRule{all(&pb.SecurityGroupRule{GroupId: id})},
		Egress:  []*pb.SecurityGroupRule{all(&pb.SecurityGroupRule{Cidr: AnyCIDR})},
	}
}

// CreateSecurityGroup creates a group in a VPC. As on AWS, a new group
// allows all egress and no ingress.
func (s *Store) CreateSecurityGroup(ctx context.Context, vpcRef, name, description string) (*pb.SecurityGroup, error) {
	if name == "" {
		return nil, model.Invalidf("a security group needs a name")
	}
	vpc, err := s.GetVPC(ctx, vpcRef)
	if err != nil {
		return nil, err
	}
	g := &pb.SecurityGroup{
		Id: model.NewID(model.KindSecurityGroup), Name: name, VpcId: vpc.Id, Description: description, CreateTime: timestamppb.Now(),
		Egress: []*pb.SecurityGroupRule{{RuleId: model.NewID(model.KindSecurityGroupRule), Protocol: model.ProtoAll, FromPort: model.AnyPort, ToPort: model.AnyPort, Cidr: AnyCIDR}},
	}
	var t txn
	t.present(s.resKey(model.KindVPC, vpc.Id))
	t.absent(s.nameKey(model.KindSecurityGroup, name))
	t.put(s.nameKey(model.KindSecurityGroup, name), g.Id)
	t.putProto(s.resKey(model.KindSecurityGroup, g.Id), g)
	t.put(s.refKey(vpc.Id, g.Id), "")
	ok, _, err := s.commit(ctx, &t)
	if err != nil || ok {
		return g, err
	}
	if err := s.nameFree(ctx, model.KindSecurityGroup, name); err != nil {
		return nil, err
	}
	return nil, model.NotFoundf("VPC %s was deleted", vpc.Id)
}

// GetSecurityGroup reads a security group by name or id.
func (s *Store) GetSecurityGroup(ctx context.Context, ref string) (*pb.SecurityGroup, error) {
	g := new(pb.SecurityGroup)
	_, err := s.load(ctx, model.KindSecurityGroup, ref, g)
	return g, err
}

// ListSecurityGroups lists groups, of one VPC when vpcID is set: each
// VPC's default group first, then by name.
func (s *Store) ListSecurityGroups(ctx context.Context, vpcID string) ([]*pb.SecurityGroup, error) {
	all, err := listProto(ctx, s, s.key(string(model.KindSecurityGroup))+"/", func() *pb.SecurityGroup { return new(pb.SecurityGroup) })
	if err != nil {
		return nil, err
	}
	if vpcID != "" {
		all = slices.DeleteFunc(all, func(g *pb.SecurityGroup) bool { return g.VpcId != vpcID })
	}
	slices.SortFunc(all, func(a, b *pb.SecurityGroup) int {
		return compareVPCFirst(a.VpcId, a.IsDefault, a.Name, a.Id, b.VpcId, b.IsDefault, b.Name, b.Id)
	})
	return all, nil
}

// DeleteSecurityGroup deletes a group that no ENI is a member of and no
// other group's rule names. A VPC's default group goes only with the VPC.
func (s *Store) DeleteSecurityGroup(ctx context.Context, ref string) error {
	return retry(ctx, "delete security group", func() error {
		g := new(pb.SecurityGroup)
		rev, err := s.load(ctx, model.KindSecurityGroup, ref, g)
		if err != nil {
			return err
		}
		if g.IsDefault {
			return model.Preconditionf("%s is the default security group of %s and cannot be deleted; it is deleted with the VPC", g.Id, g.VpcId)
		}
		var t txn
		t.unchanged(s.resKey(model.KindSecurityGroup, g.Id), rev)
		t.emptyPrefix(s.refPrefix(g.Id))
		t.del(s.resKey(model.KindSecurityGroup, g.Id))
		t.del(s.nameKey(model.KindSecurityGroup, g.Name))
		t.del(s.refKey(g.VpcId, g.Id))
		for other := range referencedGroups(g) {
			t.del(s.refKey(other, g.Id))
		}
		ok, _, err := s.commit(ctx, &t)
		if err != nil || ok {
			return err
		}
		if why, err := s.groupUsers(ctx, g.Id); err != nil || why != "" {
			if err == nil {
				err = model.Preconditionf("security group %s is %s; %s", g.Id, why, "move the instances to other groups (openvpc instance modify --security-group) and revoke those rules first")
			}
			return err
		}
		return errRetry
	})
}

// groupUsers says what stands in the way of deleting group id: the ENIs
// that are its members, and the groups whose rules name it.
func (s *Store) groupUsers(ctx context.Context, id string) (string, error) {
	ids, err := s.keysUnder(ctx, s.refPrefix(id))
	if err != nil || len(ids) == 0 {
		return "", err
	}
	var insts, groups []string
	for _, c := range ids {
		if model.IsID(model.KindSecurityGroup, c) {
			groups = append(groups, c)
		} else {
			insts = append(insts, c)
		}
	}
	var parts []string
	if len(insts) > 0 {
		parts = append(parts, "in use by instances "+shortList(insts))
	}
	if len(groups) > 0 {
		parts = append(parts, "referenced by rules of "+shortList(groups))
	}
	return strings.Join(parts, " and "), nil
}

func shortList(ids []string) string {
	const show = 5
	if len(ids) > show {
		return strings.Join(ids[:show], ", ") + fmt.Sprintf(" and %d more", len(ids)-show)
	}
	return strings.Join(ids, ", ")
}

// referencedGroups are the other groups and the prefix lists g's rules
// name: g keeps a ref/<other>/<g> key for each, so that they cannot be
// deleted under it.
func referencedGroups(g *pb.SecurityGroup) map[string]bool {
	out := map[string]bool{}
	for _, r := range slices.Concat(g.Ingress, g.Egress) {
		if r.GroupId != "" && r.GroupId != g.Id {
			out[r.GroupId] = true
		}
		if r.PrefixListId != "" {
			out[r.PrefixListId] = true
		}
	}
	return out
}

// RuleSpec is a security group rule to add or revoke: a direction, a
// match, and exactly one peer.
type RuleSpec struct {
	Egress bool
	Match  model.Match
	// CIDR is a canonical IPv4 prefix; Group a group's name or id;
	// PrefixList a prefix list's name or id.
	CIDR, Group, PrefixList string
}

func (r RuleSpec) direction() string {
	if r.Egress {
		return "egress"
	}
	return "ingress"
}

func (r RuleSpec) checkPeer() error {
	n := 0
	for _, p := range []string{r.CIDR, r.Group, r.PrefixList} {
		if p != "" {
			n++
		}
	}
	if n != 1 {
		peer := "source"
		if r.Egress {
			peer = "destination"
		}
		return model.Invalidf("a rule needs exactly one %s: a CIDR, a security group or a prefix list (got %d)", peer, n)
	}
	return r.Match.Check()
}

func rules(g *pb.SecurityGroup, egress bool) *[]*pb.SecurityGroupRule {
	if egress {
		return &g.Egress
	}
	return &g.Ingress
}

func sameRule(a, b *pb.SecurityGroupRule) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort &&
		a.Cidr == b.Cidr && a.GroupId == b.GroupId && a.PrefixListId == b.PrefixListId
}

// DescribeRule spells a rule for messages and tables: tcp:80 from 10.0.0.0/8.
func DescribeRule(r *pb.SecurityGroupRule, egress bool) string {
	peer := r.Cidr
	if r.GroupId != "" {
		peer = r.GroupId
	} else if r.PrefixListId != "" {
		peer = r.PrefixListId
	}
	dir := "from"
	if egress {
		dir = "to"
	}
	return model.Match{Protocol: r.Protocol, From: r.FromPort, To: r.ToPort}.String() + " " + dir + " " + peer
}

// AuthorizeRule adds an allow rule to a group. A peer group must be of the
// same VPC or of an actively peered one; the peering is guarded in the
// same transaction so that it cannot go away meanwhile.
func (s *Store) AuthorizeRule(ctx context.Context, groupRef string, spec RuleSpec) (*pb.SecurityGroup, *pb.SecurityGroupRule, error) {
	if err := spec.checkPeer(); err != nil {
		return nil, nil, err
	}
	var out *pb.SecurityGroup
	var added *pb.SecurityGroupRule
	err := retry(ctx, "authorize security group rule", func() error {
		g := new(pb.SecurityGroup)
		rev, err := s.load(ctx, model.KindSecurityGroup, groupRef, g)
		if err != nil {
			return err
		}
		r := &pb.SecurityGroupRule{
			RuleId: model.NewID(model.KindSecurityGroupRule), Protocol: spec.Match.Protocol,
			FromPort: spec.Match.From, ToPort: spec.Match.To, Cidr: spec.CIDR,
		}
		var t txn
		if spec.Group != "" {
			if err := s.peerGroup(ctx, g, spec.Group, r, &t); err != nil {
				return err
			}
		}
		maxEntries := map[string]uint32{}
		if spec.PrefixList != "" {
			pl, err := s.GetPrefixList(ctx, spec.PrefixList)
			if err != nil {
				return err
			}
			r.PrefixListId, maxEntries[pl.Id] = pl.Id, pl.MaxEntries
			t.present(s.resKey(model.KindPrefixList, pl.Id))
		}
		list := rules(g, spec.Egress)
		for _, have := range *list {
			if sameRule(have, r) {
				return model.Existsf("security group %s already has this %s rule (%s, %s)", g.Id, spec.direction(), have.RuleId, DescribeRule(have, spec.Egress))
			}
		}
		if err := s.checkQuota(ctx, g, spec, *list, r, maxEntries); err != nil {
			return err
		}
		*list = append(*list, r)
		t.unchanged(s.resKey(model.KindSecurityGroup, g.Id), rev)
		t.putProto(s.resKey(model.KindSecurityGroup, g.Id), g)
		if r.GroupId != "" && r.GroupId != g.Id {
			t.put(s.refKey(r.GroupId, g.Id), "")
		}
		if r.PrefixListId != "" {
			t.put(s.refKey(r.PrefixListId, g.Id), "")
		}
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out, added = g, r
		return nil
	})
	return out, added, err
}

// checkQuota refuses r if the rules of its direction, r with them, would
// count as more than the quota; a rule naming a prefix list counts as the
// list's max entries.
func (s *Store) checkQuota(ctx context.Context, g *pb.SecurityGroup, spec RuleSpec, have []*pb.SecurityGroupRule, r *pb.SecurityGroupRule, maxEntries map[string]uint32) error {
	n := 0
	for _, x := range append(slices.Clip(have), r) {
		w, err := s.ruleWeight(ctx, x, maxEntries)
		if err != nil {
			return err
		}
		n += w
	}
	if n <= model.MaxRulesPerDirection {
		return nil
	}
	if r.PrefixListId != "" {
		return model.Preconditionf("security group %s's %s rules would count as %d rules with this one, over the quota of %d per direction: a rule naming prefix list %s counts as its max entries (%d); revoke rules, or name a list with fewer max entries", g.Id, spec.direction(), n, model.MaxRulesPerDirection, r.PrefixListId, maxEntries[r.PrefixListId])
	}
	return model.Preconditionf("security group %s already has %d %s rules (a rule naming a prefix list counts as its max entries), the most a group may have per direction; revoke one, or cover several peers with one wider CIDR", g.Id, n-1, spec.direction())
}

// peerGroup resolves a rule's peer group into r, and adds to t the
// conditions that keep it valid: the group exists and, if it is of another
// VPC, the peering between them is still the active one read here.
func (s *Store) peerGroup(ctx context.Context, g *pb.SecurityGroup, ref string, r *pb.SecurityGroupRule, t *txn) error {
	peer := new(pb.SecurityGroup)
	if _, err := s.load(ctx, model.KindSecurityGroup, ref, peer); err != nil {
		return err
	}
	r.GroupId = peer.Id
	t.present(s.resKey(model.KindSecurityGroup, peer.Id))
	if peer.VpcId == g.VpcId {
		return nil
	}
	notPeered := model.Invalidf("security group %s belongs to %s, which is not actively peered with %s (the VPC of %s); a rule may name groups of its own VPC or of an active peering's other side", peer.Id, peer.VpcId, g.VpcId, g.Id)
	pr, err := s.c.Get(ctx, s.pairKey(g.VpcId, peer.VpcId))
	if err != nil {
		return unavailable(err)
	}
	if len(pr.Kvs) == 0 {
		return notPeered
	}
	p := new(pb.Peering)
	prev, found, err := s.getProto(ctx, s.resKey(model.KindPeering, string(pr.Kvs[0].Value)), p)
	if err != nil {
		return err
	}
	if !found || p.State != pb.PeeringState_PEERING_STATE_ACTIVE {
		return notPeered
	}
	t.unchanged(s.resKey(model.KindPeering, p.Id), prev)
	return nil
}

// RevokeRule removes a rule from a group: the one named ruleID, or else
// the one matching spec in its direction.
func (s *Store) RevokeRule(ctx context.Context, groupRef, ruleID string, spec RuleSpec) (*pb.SecurityGroup, error) {
	if ruleID == "" {
		if err := spec.checkPeer(); err != nil {
			return nil, err
		}
	}
	var out *pb.SecurityGroup
	err := retry(ctx, "revoke security group rule", func() error {
		g := new(pb.SecurityGroup)
		rev, err := s.load(ctx, model.KindSecurityGroup, groupRef, g)
		if err != nil {
			return err
		}
		before := referencedGroups(g)
		if ruleID != "" {
			if !dropRule(&g.Ingress, func(r *pb.SecurityGroupRule) bool { return r.RuleId == ruleID }) &&
				!dropRule(&g.Egress, func(r *pb.SecurityGroupRule) bool { return r.RuleId == ruleID }) {
				return model.NotFoundf("security group %s has no rule %s; openvpc sg get %s lists its rules", g.Id, ruleID, g.Id)
			}
		} else {
			want := &pb.SecurityGroupRule{Protocol: spec.Match.Protocol, FromPort: spec.Match.From, ToPort: spec.Match.To, Cidr: spec.CIDR}
			if spec.Group != "" {
				id, err := s.resolve(ctx, model.KindSecurityGroup, spec.Group)
				if err != nil {
					return err
				}
				want.GroupId = id
			}
			if spec.PrefixList != "" {
				id, err := s.resolve(ctx, model.KindPrefixList, spec.PrefixList)
				if err != nil {
					return err
				}
				want.PrefixListId = id
			}
			if !dropRule(rules(g, spec.Egress), func(r *pb.SecurityGroupRule) bool { return sameRule(r, want) }) {
				return model.NotFoundf("security group %s has no %s rule %s; openvpc sg get %s lists its rules", g.Id, spec.direction(), DescribeRule(want, spec.Egress), g.Id)
			}
		}
		after := referencedGroups(g)
		var t txn
		t.unchanged(s.resKey(model.KindSecurityGroup, g.Id), rev)
		t.putProto(s.resKey(model.KindSecurityGroup, g.Id), g)
		for other := range before {
			if !after[other] {
				t.del(s.refKey(other, g.Id))
			}
		}
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = g
		return nil
	})
	return out, err
}

func dropRule(list *[]*pb.SecurityGroupRule, match func(*pb.SecurityGroupRule) bool) bool {
	i := slices.IndexFunc(*list, match)
	if i < 0 {
		return false
	}
	*list = slices.Delete(*list, i, i+1)
	return true
}

// instanceGroups resolves an ENI's groups: names or ids of groups of vpc,
// 1–5 of them, duplicates folded; none means the VPC's default group. It
// adds to t the conditions that they still exist.
func (s *Store) instanceGroups(ctx context.Context, vpc *pb.Vpc, refs []string, t *txn) ([]string, error) {
	if len(refs) == 0 {
		if vpc.DefaultSecurityGroupId == "" {
			return nil, model.Preconditionf("VPC %s has no default security group (it predates them); name the instance's groups", vpc.Id)
		}
		refs = []string{vpc.DefaultSecurityGroupId}
	}
	var ids []string
	for _, ref := range refs {
		g := new(pb.SecurityGroup)
		if _, err := s.load(ctx, model.KindSecurityGroup, ref, g); err != nil {
			return nil, err
		}
		if g.VpcId != vpc.Id {
			return nil, model.Invalidf("security group %s belongs to %s; an instance's groups must be of its own VPC (%s)", g.Id, g.VpcId, vpc.Id)
		}
		if !slices.Contains(ids, g.Id) {
			ids = append(ids, g.Id)
		}
	}
	if len(ids) > model.MaxGroupsPerENI {
		return nil, model.Invalidf("%d security groups given; an instance's network interface may have at most %d", len(ids), model.MaxGroupsPerENI)
	}
	for _, id := range ids {
		t.present(s.resKey(model.KindSecurityGroup, id))
	}
	return ids, nil
}

// missingGroup names the first of ids that no longer exists, if any.
func (s *Store) missingGroup(ctx context.Context, ids []string) (string, error) {
	for _, id := range ids {
		r, err := s.c.Get(ctx, s.resKey(model.KindSecurityGroup, id), clientv3.WithCountOnly())
		if err != nil {
			return "", unavailable(err)
		}
		if r.Count == 0 {
			return id, nil
		}
	}
	return "", nil
}

// InstanceChange is what ModifyInstance changes of an instance's ENI;
// empty fields keep what it has.
type InstanceChange struct {
	// SecurityGroups replace the ENI's groups (names or ids, 1–5).
	SecurityGroups []string
	// Conntrack replaces the ENI's connection-tracking timeouts; all
	// zero means AWS's defaults.
	Conntrack *pb.ConntrackSettings
	// IMDSTokenRequired, when set, refuses (true) or allows (false) IMDSv1.
	IMDSTokenRequired *bool
}

// checkConntrack validates settings and folds all-default ones into nil.
func checkConntrack(c *pb.ConntrackSettings) (*pb.ConntrackSettings, error) {
	if c == nil {
		return nil, nil
	}
	if err := model.CheckConntrack(c.TcpEstablishedSeconds, c.UdpSeconds, c.UdpStreamSeconds, c.OtherSeconds); err != nil {
		return nil, err
	}
	if proto.Equal(c, &pb.ConntrackSettings{}) {
		return nil, nil
	}
	return c, nil
}

// ModifyInstance changes a live instance's ENI: its security groups, its
// conntrack timeouts. The instance record changes, so its mapping reaches
// every host in scope again, changed.
func (s *Store) ModifyInstance(ctx context.Context, ref string, change InstanceChange) (*pb.Instance, error) {
	if len(change.SecurityGroups) == 0 && change.Conntrack == nil && change.IMDSTokenRequired == nil {
		return nil, model.Invalidf("nothing to change: give the instance's new security groups (1–%d), conntrack timeouts or IMDSv1 setting", model.MaxGroupsPerENI)
	}
	conntrack, err := checkConntrack(change.Conntrack)
	if err != nil {
		return nil, err
	}
	var out *pb.Instance
	err = retry(ctx, "modify instance", func() error {
		inst := new(pb.Instance)
		rev, err := s.load(ctx, model.KindInstance, ref, inst)
		if err != nil {
			return err
		}
		if inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED {
			return model.Preconditionf("instance %s is terminated", inst.Id)
		}
		var t txn
		ids := inst.SecurityGroupIds
		if len(change.SecurityGroups) > 0 {
			vpc, err := s.GetVPC(ctx, inst.VpcId)
			if err != nil {
				return err
			}
			if ids, err = s.instanceGroups(ctx, vpc, change.SecurityGroups, &t); err != nil {
				return err
			}
		}
		newConntrack := inst.Conntrack
		if change.Conntrack != nil {
			newConntrack = conntrack
		}
		token := inst.ImdsTokenRequired
		if change.IMDSTokenRequired != nil {
			token = *change.IMDSTokenRequired
		}
		if slices.Equal(ids, inst.SecurityGroupIds) && proto.Equal(newConntrack, inst.Conntrack) && token == inst.ImdsTokenRequired {
			out = inst // nothing changes: no write, no push
			return nil
		}
		inst.Conntrack, inst.ImdsTokenRequired = newConntrack, token
		for _, old := range inst.SecurityGroupIds {
			if !slices.Contains(ids, old) {
				t.del(s.refKey(old, inst.Id))
			}
		}
		for _, id := range ids {
			t.put(s.refKey(id, inst.Id), "")
		}
		inst.SecurityGroupIds = ids
		t.unchanged(s.resKey(model.KindInstance, inst.Id), rev)
		t.putProto(s.resKey(model.KindInstance, inst.Id), inst)
		if err := s.commitOrRetry(ctx, &t); err != nil {
			return err
		}
		out = inst
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetInstance(ctx, out.Id) // with its Revision
}
