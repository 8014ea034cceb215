package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// TerminatedTTL is how long a terminated instance stays visible.
const TerminatedTTL = time.Hour

// RunSpec says what instance to run.
type RunSpec struct {
	Subnet string     // name or id
	Name   string     // optional, unique among live instances
	Host   string     // optional host id; empty picks the least-loaded host
	IP     netip.Addr // optional; zero takes the lowest free address
	// SecurityGroups are names or ids of the VPC's groups (1–5); empty
	// means the VPC's default group.
	SecurityGroups []string
	// Conntrack sets the ENI's connection-tracking timeouts; nil: AWS's.
	Conntrack *pb.ConntrackSettings
	// IMDSTokenRequired refuses IMDSv1 for the instance.
	IMDSTokenRequired bool
	// UserData is served at /latest/user-data (at most model.MaxUserData).
	UserData []byte
}

// RunInstance creates a pending instance with one ENI in a subnet, placed
// on a host, with an address from the subnet.
func (s *Store) RunInstance(ctx context.Context, spec RunSpec) (*pb.Instance, error) {
	conntrack, err := checkConntrack(spec.Conntrack)
	if err != nil {
		return nil, err
	}
	spec.Conntrack = conntrack
	sn, err := s.GetSubnet(ctx, spec.Subnet)
	if err != nil {
		return nil, err
	}
	prefix := netip.MustParsePrefix(sn.Cidr)
	if spec.IP.IsValid() {
		if err := model.CheckUsable(prefix, spec.IP); err != nil {
			return nil, err
		}
	}
	vpc, err := s.GetVPC(ctx, sn.VpcId)
	if err != nil {
		return nil, err
	}
	host, err := s.placer.pick(ctx, spec.Host)
	if err != nil {
		return nil, err
	}
	defer s.placer.settle(host)
	var out *pb.Instance
	err = retry(ctx, "run instance", func() error {
		inst, err := s.runOnce(ctx, spec, sn, prefix, vpc, host)
		out = inst
		return err
	})
	if err == nil {
		s.placer.placed(host)
	}
	return out, err
}

func (s *Store) runOnce(ctx context.Context, spec RunSpec, sn *pb.Subnet, prefix netip.Prefix, vpc *pb.Vpc, host string) (*pb.Instance, error) {
	ip := spec.IP
	if ip.IsValid() {
		s.ipam.mark(sn.Id, prefix, ip)
	} else {
		var err error
		if ip, err = s.ipam.reserve(ctx, sn.Id, prefix); err != nil {
			return nil, err
		}
	}
	inst := &pb.Instance{
		Id: model.NewID(model.KindInstance), Name: spec.Name, VpcId: vpc.Id, SubnetId: sn.Id, HostId: host,
		State: pb.InstanceState_INSTANCE_STATE_PENDING, EniId: model.NewID(model.KindENI),
		PrivateIp: ip.String(), Mac: model.MAC(vpc.Vni, ip), CreateTime: timestamppb.Now(),
	}
	var t txn
	groups, err := s.instanceGroups(ctx, vpc, spec.SecurityGroups, &t)
	if err != nil {
		s.ipam.done(sn.Id, prefix, ip, false)
		return nil, err
	}
	inst.SecurityGroupIds = groups
	inst.Conntrack = spec.Conntrack
	inst.ImdsTokenRequired = spec.IMDSTokenRequired
	inst.UserData = spec.UserData
	for _, g := range groups {
		t.put(s.refKey(g, inst.Id), "")
	}
	t.present(s.resKey(model.KindSubnet, sn.Id))
	t.present(s.hostKey(host))
	t.absent(s.ipKey(sn.Id, inst.PrivateIp))
	if spec.Name != "" {
		t.absent(s.nameKey(model.KindInstance, spec.Name))
		t.put(s.nameKey(model.KindInstance, spec.Name), inst.Id)
	}
	t.put(s.ipKey(sn.Id, inst.PrivateIp), inst.Id)
	t.put(s.refKey(sn.Id, inst.Id), "")
	t.put(s.onHostKey(host, inst.Id), vpc.Id)
	t.putProto(s.resKey(model.KindInstance, inst.Id), inst)
	ok, rev, err := s.commit(ctx, &t)
	if err != nil {
		s.ipam.done(sn.Id, prefix, ip, false)
		return nil, err
	}
	if ok {
		s.ipam.done(sn.Id, prefix, ip, true)
		inst.Revision = rev
		return inst, nil
	}
	if err := s.whyRunFailed(ctx, spec, sn, prefix, ip, host); !errors.Is(err, errRetry) {
		return nil, err
	}
	if g, err := s.missingGroup(ctx, groups); err != nil || g != "" {
		if err == nil {
			err = model.NotFoundf("security group %s was deleted", g)
		}
		return nil, err
	}
	return nil, errRetry
}

// whyRunFailed explains a failed run transaction, or asks for a retry when
// another writer merely took the candidate address first.
func (s *Store) whyRunFailed(ctx context.Context, spec RunSpec, sn *pb.Subnet, prefix netip.Prefix, ip netip.Addr, host string) error {
	r, err := s.c.Txn(ctx).Then(
		clientv3.OpGet(s.resKey(model.KindSubnet, sn.Id), clientv3.WithCountOnly()),
		clientv3.OpGet(s.hostKey(host), clientv3.WithCountOnly()),
		clientv3.OpGet(s.ipKey(sn.Id, ip.String())),
		clientv3.OpGet(s.nameKey(model.KindInstance, spec.Name)),
	).Commit()
	if err != nil {
		s.ipam.done(sn.Id, prefix, ip, false)
		return unavailable(err)
	}
	count := func(i int) int64 { return r.Responses[i].GetResponseRange().Count }
	kvs := func(i int) string {
		if kv := r.Responses[i].GetResponseRange().Kvs; len(kv) > 0 {
			return string(kv[0].Value)
		}
		return ""
	}
	ipHolder := kvs(2)
	s.ipam.done(sn.Id, prefix, ip, ipHolder != "")
	switch {
	case count(0) == 0:
		return model.NotFoundf("subnet %s was deleted", sn.Id)
	case count(1) == 0:
		return model.NotFoundf("host %q is not registered", host)
	case spec.Name != "" && kvs(3) != "":
		return model.Existsf("an instance named %q already exists (%s)", spec.Name, kvs(3))
	case spec.IP.IsValid() && ipHolder != "":
		return model.Existsf("address %s in subnet %s is in use by %s", ip, sn.Id, ipHolder)
	}
	return errRetry
}

// GetInstance reads an instance by name or id. Its Revision is the store
// revision that created it (and so its mapping).
func (s *Store) GetInstance(ctx context.Context, ref string) (*pb.Instance, error) {
	id, err := s.resolve(ctx, model.KindInstance, ref)
	if errors.Is(err, model.ErrNotFound) {
		// Terminating frees the name at once (a new instance may take it),
		// but list shows the terminated one for TerminatedTTL: get finds it
		// by the name list shows.
		return s.terminatedNamed(ctx, ref, err)
	}
	if err != nil {
		return nil, err
	}
	r, err := s.c.Get(ctx, s.resKey(model.KindInstance, id))
	if err != nil {
		return nil, unavailable(err)
	}
	if len(r.Kvs) == 0 {
		return nil, model.NotFoundf("instance %q not found", ref)
	}
	inst := new(pb.Instance)
	if err := unmarshal(r.Kvs[0], inst); err != nil {
		return nil, err
	}
	inst.Revision = r.Kvs[0].CreateRevision
	return inst, nil
}

// terminatedNamed is the most recently terminated instance named name,
// or notFound when there is none.
func (s *Store) terminatedNamed(ctx context.Context, name string, notFound error) (*pb.Instance, error) {
	r, err := s.c.Get(ctx, s.key(string(model.KindInstance))+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	var found *pb.Instance
	var at int64
	for _, kv := range r.Kvs {
		inst := new(pb.Instance)
		if err := unmarshal(kv, inst); err != nil {
			return nil, err
		}
		if inst.Name == name && inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED && kv.ModRevision > at {
			inst.Revision = kv.CreateRevision
			found, at = inst, kv.ModRevision
		}
	}
	if found == nil {
		return nil, notFound
	}
	return found, nil
}

// InstanceFilter narrows ListInstances; empty fields match everything.
type InstanceFilter struct {
	VPC, Subnet, Host string // ids
}

// ListInstances lists instances (terminated ones too, for TerminatedTTL).
func (s *Store) ListInstances(ctx context.Context, f InstanceFilter) ([]*pb.Instance, error) {
	r, err := s.c.Get(ctx, s.key(string(model.KindInstance))+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]*pb.Instance, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		inst := new(pb.Instance)
		if err := unmarshal(kv, inst); err != nil {
			return nil, err
		}
		if f.VPC != "" && inst.VpcId != f.VPC || f.Subnet != "" && inst.SubnetId != f.Subnet || f.Host != "" && inst.HostId != f.Host {
			continue
		}
		inst.Revision = kv.CreateRevision
		out = append(out, inst)
	}
	slices.SortFunc(out, func(a, b *pb.Instance) int {
		if a.SubnetId != b.SubnetId {
			return strings.Compare(a.SubnetId, b.SubnetId)
		}
		return netip.MustParseAddr(a.PrivateIp).Compare(netip.MustParseAddr(b.PrivateIp))
	})
	return out, nil
}

// TerminateInstance terminates an instance: its address, name and mapping
// are released at once; the record stays visible for TerminatedTTL.
func (s *Store) TerminateInstance(ctx context.Context, ref string) (*pb.Instance, error) {
	var out *pb.Instance
	err := retry(ctx, "terminate instance", func() error {
		inst, err := s.terminateOnce(ctx, ref)
		out = inst
		return err
	})
	if err != nil {
		return nil, err
	}
	if sn, err := s.GetSubnet(ctx, out.SubnetId); err == nil {
		s.ipam.release(sn.Id, netip.MustParsePrefix(sn.Cidr), netip.MustParseAddr(out.PrivateIp))
	}
	s.placer.removed(out.HostId)
	return out, nil
}

func (s *Store) terminateOnce(ctx context.Context, ref string) (*pb.Instance, error) {
	inst := new(pb.Instance)
	rev, err := s.load(ctx, model.KindInstance, ref, inst)
	if err != nil {
		return nil, err
	}
	if inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED {
		return nil, model.Preconditionf("instance %s is already terminated", inst.Id)
	}
	lease, err := s.c.Grant(ctx, int64(TerminatedTTL/time.Second))
	if err != nil {
		return nil, unavailable(err)
	}
	inst.State = pb.InstanceState_INSTANCE_STATE_TERMINATED
	var t txn
	if err := s.disassociateOnTerminate(ctx, inst, &t); err != nil {
		return nil, err
	}
	if err := s.dropFlowLogs(ctx, inst.Id, &t); err != nil {
		return nil, err
	}
	t.unchanged(s.resKey(model.KindInstance, inst.Id), rev)
	t.putProto(s.resKey(model.KindInstance, inst.Id), inst, clientv3.WithLease(lease.ID))
	t.del(s.ipKey(inst.SubnetId, inst.PrivateIp))
	if inst.Name != "" {
		t.del(s.nameKey(model.KindInstance, inst.Name))
	}
	t.del(s.refKey(inst.SubnetId, inst.Id))
	for _, g := range inst.SecurityGroupIds {
		t.del(s.refKey(g, inst.Id))
	}
	t.del(s.onHostKey(inst.HostId, inst.Id))
	ok, rev, err := s.commit(ctx, &t)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Raced with another change, such as the pending → running update.
		_, _ = s.c.Revoke(ctx, lease.ID)
		return nil, errRetry
	}
	inst.Revision = rev
	return inst, nil
}

// SetInstanceState moves a live instance to state (pending → running),
// unless it changed since revision rev was read.
func (s *Store) SetInstanceState(ctx context.Context, id string, state pb.InstanceState) (*pb.Instance, error) {
	inst := new(pb.Instance)
	rev, found, err := s.getProto(ctx, s.resKey(model.KindInstance, id), inst)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, model.NotFoundf("instance %s not found", id)
	}
	if inst.State == state || inst.State == pb.InstanceState_INSTANCE_STATE_TERMINATED {
		return inst, nil
	}
	inst.State = state
	var t txn
	t.unchanged(s.resKey(model.KindInstance, id), rev)
	t.putProto(s.resKey(model.KindInstance, id), inst)
	if _, _, err := s.commit(ctx, &t); err != nil {
		return nil, err
	}
	return inst, nil
}

// placer picks the least-loaded host for instances placed automatically.
// Counts come from etcd (refreshed every poolTTL) plus this process's
// placements in flight, so concurrent runs spread out.
type placer struct {
	s      *Store
	mu     sync.Mutex
	counts map[string]int64
	loaded time.Time
}

func newPlacer(s *Store) *placer { return &placer{s: s, counts: map[string]int64{}} }

// pick returns want if it is a registered host, else the least-loaded host
// with role host, counting the placement as in flight.
func (p *placer) pick(ctx context.Context, want string) (string, error) {
	if want != "" {
		h, err := p.s.GetHost(ctx, want)
		if err != nil {
			return "", err
		}
		if h.Role != pb.HostRole_HOST_ROLE_HOST {
			return "", model.Invalidf("%s is an edge, not a host; instances run on hosts", want)
		}
		p.mu.Lock()
		p.counts[want]++
		p.mu.Unlock()
		return want, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.loaded) > poolTTL {
		hosts, err := p.s.ListHosts(ctx)
		if err != nil {
			return "", err
		}
		counts := map[string]int64{}
		for _, h := range hosts {
			if h.Role == pb.HostRole_HOST_ROLE_HOST {
				counts[h.Id] = h.Instances
			}
		}
		p.counts, p.loaded = counts, time.Now()
	}
	best, bestN := "", int64(-1)
	for id, n := range p.counts {
		if bestN < 0 || n < bestN || n == bestN && id < best {
			best, bestN = id, n
		}
	}
	if best == "" {
		return "", model.Preconditionf("no hosts are registered to run instances on; start a host agent (openvpc host run …) first")
	}
	p.counts[best]++
	return best, nil
}

// refresh makes the next pick reload hosts and counts.
func (p *placer) refresh() {
	p.mu.Lock()
	p.loaded = time.Time{}
	p.mu.Unlock()
}

// settle ends an in-flight placement; placed/removed adjust the counts.
func (p *placer) settle(host string) {
	p.mu.Lock()
	p.counts[host]--
	p.mu.Unlock()
}

func (p *placer) placed(host string) {
	p.mu.Lock()
	p.counts[host]++
	p.mu.Unlock()
}

func (p *placer) removed(host string) {
	p.mu.Lock()
	if p.counts[host] > 0 {
		p.counts[host]--
	}
	p.mu.Unlock()
}
