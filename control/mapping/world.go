package mapping

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// world is the server's in-memory copy of everything in the store that
// hosts' caches are made of, at revision rev, with the indexes that turn a
// changed record into the hosts it concerns. It is guarded by Service.mu.
type world struct {
	rev      int64
	vpcs     map[string]*pb.Vpc
	byVNI    map[uint32]string
	subnets  map[string]*pb.Subnet
	rtbs     map[string]*pb.RouteTable
	peerings map[string]*pb.Peering
	igws     map[string]*pb.InternetGateway
	vpcIGW   map[string]string // attached internet gateway by VPC
	sgs      map[string]*pb.SecurityGroup
	acls     map[string]*pb.NetworkAcl
	flowLogs map[string]*pb.FlowLog
	zones    map[string]*pb.Zone
	pls      map[string]*pb.PrefixList
	// plGroups are, per prefix list, the groups with a rule naming it.
	plGroups map[string]set
	// services by name, gateway endpoints by id.
	services map[string]*pb.Service
	vpces    map[string]*pb.VpcEndpoint
	hosts    map[string]*pb.Host
	acks     map[string]store.Ack
	// insts holds live (not terminated) instances; created is the revision
	// that wrote each one's mapping.
	insts   map[string]*pb.Instance
	created map[string]int64
	// upserts holds each live instance's mapping change, built once and
	// shared (read-only) by every delta and snapshot that carries it.
	upserts map[string]*pb.Change

	vpcSubnets  map[string]set
	vpcRtbs     map[string]set
	vpcPeerings map[string]set
	vpcInsts    map[string]set
	vpcSGs      map[string]set
	vpcACLs     map[string]set
	vpcFlowLogs map[string]set
	vpcZones    map[string]set
	vpcVpces    map[string]set
	// hostVPC counts live instances per (host, VPC), both ways round.
	hostVPC map[string]map[string]int
	vpcHost map[string]map[string]int
	// relevant is, per host, the newest revision that changed its scope.
	relevant map[string]int64
	// vpn holds VPN gateways, connections, tunnel states and propagated
	// routes (world_vpn.go).
	vpn vpnState
	// dx holds Direct Connect connections, VIFs and gateways (world_dx.go).
	dx dxState
}

type set map[string]struct{}

func (s set) add(k string) set {
	if s == nil {
		s = set{}
	}
	s[k] = struct{}{}
	return s
}

func newWorld() *world {
	return &world{
		vpcs: map[string]*pb.Vpc{}, byVNI: map[uint32]string{}, subnets: map[string]*pb.Subnet{},
		rtbs: map[string]*pb.RouteTable{}, peerings: map[string]*pb.Peering{}, hosts: map[string]*pb.Host{},
		igws: map[string]*pb.InternetGateway{}, vpcIGW: map[string]string{},
		sgs: map[string]*pb.SecurityGroup{}, acls: map[string]*pb.NetworkAcl{}, vpcSGs: map[string]set{}, vpcACLs: map[string]set{},
		flowLogs: map[string]*pb.FlowLog{}, vpcFlowLogs: map[string]set{},
		zones: map[string]*pb.Zone{}, vpcZones: map[string]set{},
		pls: map[string]*pb.PrefixList{}, plGroups: map[string]set{},
		services: map[string]*pb.Service{}, vpces: map[string]*pb.VpcEndpoint{}, vpcVpces: map[string]set{},
		acks: map[string]store.Ack{}, insts: map[string]*pb.Instance{}, created: map[string]int64{}, upserts: map[string]*pb.Change{},
		vpcSubnets: map[string]set{}, vpcRtbs: map[string]set{}, vpcPeerings: map[string]set{}, vpcInsts: map[string]set{},
		hostVPC: map[string]map[string]int{}, vpcHost: map[string]map[string]int{}, relevant: map[string]int64{},
		vpn: newVPNState(), dx: newDXState(),
	}
}

// delta is what one store batch changed, in the terms hosts care about.
type delta struct {
	rev      int64
	facts    set                     // VPCs whose facts changed
	mappings map[string][]*pb.Change // per VPC, in order
	// hostsChanged are hosts whose record was written or deleted.
	hostsChanged set
	// presence is, per VPC, the hosts that gained (+1) or lost (-1) their
	// first or last live instance in it; 0 when both happened.
	presence   map[string]map[string]int
	scopeDirty set            // hosts whose scope may have changed
	gone       []*pb.Instance // instances that stopped being live
	born       []*pb.Instance // instances that became live
	states     []*pb.Instance // live instances whose record changed
	acked      bool
	ackedHosts set // hosts whose ack record changed
	// health: an edge's health flipped, or an edge went away: instances
	// waiting for it may be ready now.
	health bool
	// edges are the changed host records that are (or were) edges': every
	// host holds those.
	edges set
}

func newDelta(rev int64) *delta {
	return &delta{rev: rev, facts: set{}, mappings: map[string][]*pb.Change{}, scopeDirty: set{},
		hostsChanged: set{}, presence: map[string]map[string]int{}}
}

// apply folds one record into the world and notes its effects in d.
func (w *world) apply(r store.Record, d *delta) error {
	switch r.Kind {
	case store.RecVPC:
		return w.applyVPC(r, d)
	case store.RecSubnet:
		return w.applySubnet(r, d)
	case store.RecRouteTable:
		return w.applyRouteTable(r, d)
	case store.RecPeering:
		return w.applyPeering(r, d)
	case store.RecIGW:
		return w.applyIGW(r, d)
	case store.RecSG:
		return w.applySG(r, d)
	case store.RecACL:
		return w.applyACL(r, d)
	case store.RecFlowLog:
		return w.applyFlowLog(r, d)
	case store.RecZone:
		return w.applyZone(r, d)
	case store.RecPrefixList:
		return w.applyPrefixList(r, d)
	case store.RecService:
		return w.applyService(r, d)
	case store.RecEndpoint:
		return w.applyEndpoint(r, d)
	case store.RecInstance:
		return w.applyInstance(r, d)
	case store.RecHost:
		return w.applyHost(r, d)
	case store.RecVPNGateway:
		return w.applyVGW(r, d)
	case store.RecVPNConnection:
		return w.applyVPNConnection(r, d)
	case store.RecTunnelStatus:
		return w.applyTunnelStatus(r, d)
	case store.RecPropagated:
		return w.applyPropagated(r, d)
	case store.RecDXConnection:
		return w.applyDXConnection(r, d)
	case store.RecDXVIF:
		return w.applyDXVIF(r, d)
	case store.RecDXGateway:
		return w.applyDXGateway(r, d)
	case store.RecAck:
		if r.Deleted {
			delete(w.acks, r.ID)
		} else if a, ok := store.DecodeAck(r.Value); ok && a.Revision >= w.acks[r.ID].Revision {
			w.acks[r.ID] = a
		}
		d.acked = true
		d.ackedHosts = d.ackedHosts.add(r.ID)
	}
	return nil
}

// vpcFact is a record that is a fact of its VPC: a subnet, a security
// group, a network ACL, a flow log.
type vpcFact interface {
	proto.Message
	GetVpcId() string
}

// applyVPCFact folds such a record into all (by id) and byVPC (ids per
// VPC), and marks its VPC's facts changed, so the change reaches every
// host in the VPC's scope.
func applyVPCFact[M vpcFact](r store.Record, d *delta, m M, all map[string]M, byVPC map[string]set) error {
	m, err := decode(r, m)
	if err != nil {
		return err
	}
	vpc := m.GetVpcId()
	if r.Deleted {
		delete(all, r.ID)
		delete(byVPC[vpc], r.ID)
	} else {
		all[r.ID] = m
		byVPC[vpc] = byVPC[vpc].add(r.ID)
	}
	d.facts.add(vpc)
	return nil
}

func decode[M proto.Message](r store.Record, m M) (M, error) {
	if err := proto.Unmarshal(r.Value, m); err != nil {
		return m, fmt.Errorf("mapping: corrupt %s record %s: %w", r.Kind, r.ID, err)
	}
	return m, nil
}

func (w *world) applyVPC(r store.Record, d *delta) error {
	v, err := decode(r, new(pb.Vpc))
	if err != nil {
		return err
	}
	if r.Deleted {
		delete(w.vpcs, r.ID)
		delete(w.byVNI, v.Vni)
		for h := range w.vpcHost[r.ID] {
			d.scopeDirty.add(h)
		}
		return nil
	}
	w.vpcs[r.ID] = v
	w.byVNI[v.Vni] = r.ID
	d.facts.add(r.ID)
	return nil
}

func (w *world) applySubnet(r store.Record, d *delta) error {
	return applyVPCFact(r, d, new(pb.Subnet), w.subnets, w.vpcSubnets)
}

func (w *world) applyRouteTable(r store.Record, d *delta) error {
	return applyVPCFact(r, d, new(pb.RouteTable), w.rtbs, w.vpcRtbs)
}

func active(p *pb.Peering) bool {
	return p != nil && p.State == pb.PeeringState_PEERING_STATE_ACTIVE
}

func (w *world) applyPeering(r store.Record, d *delta) error {
	p, err := decode(r, new(pb.Peering))
	if err != nil {
		return err
	}
	wasActive := active(w.peerings[r.ID])
	if r.Deleted {
		delete(w.peerings, r.ID)
		delete(w.vpcPeerings[p.RequesterVpcId], r.ID)
		delete(w.vpcPeerings[p.AccepterVpcId], r.ID)
	} else {
		w.peerings[r.ID] = p
		w.vpcPeerings[p.RequesterVpcId] = w.vpcPeerings[p.RequesterVpcId].add(r.ID)
		w.vpcPeerings[p.AccepterVpcId] = w.vpcPeerings[p.AccepterVpcId].add(r.ID)
	}
	// Peers and route states are facts of both sides.
	d.facts.add(p.RequesterVpcId)
	d.facts.add(p.AccepterVpcId)
	if wasActive != active(w.peerings[r.ID]) {
		for _, v := range []string{p.RequesterVpcId, p.AccepterVpcId} {
			for h := range w.vpcHost[v] {
				d.scopeDirty.add(h)
			}
		}
	}
	return nil
}

// applyIGW follows internet gateways: attaching or detaching one changes
// the VPC's facts (its igw and the state of routes to it) and every edge's
// scope, which is the VPCs with an internet gateway.
func (w *world) applyIGW(r store.Record, d *delta) error {
	g, err := decode(r, new(pb.InternetGateway))
	if err != nil {
		return err
	}
	before := ""
	if old := w.igws[r.ID]; old != nil {
		before = old.VpcId
	}
	after := ""
	if r.Deleted {
		delete(w.igws, r.ID)
	} else {
		w.igws[r.ID] = g
		after = g.VpcId
	}
	if before == after {
		return nil
	}
	if before != "" && w.vpcIGW[before] == r.ID {
		delete(w.vpcIGW, before)
		d.facts.add(before)
	}
	if after != "" {
		w.vpcIGW[after] = r.ID
		d.facts.add(after)
	}
	for h := range w.hosts {
		if w.isEdge(h) {
			d.scopeDirty.add(h)
		}
	}
	return nil
}

// applySG follows security groups: a group and its rules are facts of its
// VPC, so a rule added or revoked reaches every host in the VPC's scope.
// (A rule naming a group of a peered VPC needs nothing more: those hosts
// hold the peer's mappings, each with its ENI's groups.)
// Its rules naming prefix lists are indexed in plGroups.
func (w *world) applySG(r store.Record, d *delta) error {
	if old := w.sgs[r.ID]; old != nil {
		for pl := range rulePrefixLists(old) {
			delete(w.plGroups[pl], r.ID)
			if len(w.plGroups[pl]) == 0 {
				delete(w.plGroups, pl)
			}
		}
	}
	if err := applyVPCFact(r, d, new(pb.SecurityGroup), w.sgs, w.vpcSGs); err != nil {
		return err
	}
	if g := w.sgs[r.ID]; g != nil {
		for pl := range rulePrefixLists(g) {
			w.plGroups[pl] = w.plGroups[pl].add(r.ID)
		}
	}
	return nil
}

func rulePrefixLists(g *pb.SecurityGroup) set {
	var s set
	for _, r := range slices.Concat(g.Ingress, g.Egress) {
		if r.PrefixListId != "" {
			s = s.add(r.PrefixListId)
		}
	}
	return s
}

// applyPrefixList follows prefix lists, regional: a change to one's
// entries is a facts change of every VPC with a group whose rule names it,
// so it reaches every host enforcing such a rule.
func (w *world) applyPrefixList(r store.Record, d *delta) error {
	pl, err := decode(r, new(pb.PrefixList))
	if err != nil {
		return err
	}
	if r.Deleted {
		delete(w.pls, r.ID)
	} else {
		w.pls[r.ID] = pl
	}
	for g := range w.plGroups[r.ID] {
		if sg := w.sgs[g]; sg != nil {
			d.facts.add(sg.VpcId)
		}
	}
	return nil
}

// groupFacts is a group as hosts enforce it: rules naming a prefix list
// carry its CIDRs (copies of the world's rules; the others are shared). A
// rule naming an empty list allows nothing and is left out: hosts refuse a
// rule with no peer (host/tables checkFirewall), and leaving it out
// enforces the same.
func (w *world) groupFacts(g *pb.SecurityGroup) *pb.SecurityGroupFacts {
	expand := func(rs []*pb.SecurityGroupRule) []*pb.SecurityGroupRule {
		if !slices.ContainsFunc(rs, func(r *pb.SecurityGroupRule) bool { return r.PrefixListId != "" }) {
			return rs
		}
		out := make([]*pb.SecurityGroupRule, 0, len(rs))
		for _, r := range rs {
			if r.PrefixListId != "" {
				if r = expandPrefixList(r, w.pls[r.PrefixListId]); len(r.PrefixCidrs) == 0 {
					continue
				}
			}
			out = append(out, r)
		}
		return out
	}
	return &pb.SecurityGroupFacts{Id: g.Id, Ingress: expand(g.Ingress), Egress: expand(g.Egress)}
}

// expandPrefixList is rule r, naming prefix list pl, with pl's CIDRs as
// hosts match them (none if pl is nil). r is not modified.
func expandPrefixList(r *pb.SecurityGroupRule, pl *pb.PrefixList) *pb.SecurityGroupRule {
	out := proto.CloneOf(r)
	out.PrefixCidrs = nil
	for _, e := range pl.GetEntries() {
		out.PrefixCidrs = append(out.PrefixCidrs, e.Cidr)
	}
	return out
}

// applyACL follows network ACLs, facts of their VPC as groups are.
func (w *world) applyACL(r store.Record, d *delta) error {
	return applyVPCFact(r, d, new(pb.NetworkAcl), w.acls, w.vpcACLs)
}

// applyFlowLog follows flow logs, facts of their VPC: every host in the
// VPC's scope learns of one, and runs it if it covers an ENI it holds.
func (w *world) applyFlowLog(r store.Record, d *delta) error {
	return applyVPCFact(r, d, new(pb.FlowLog), w.flowLogs, w.vpcFlowLogs)
}

// flowLogFacts is a flow log as hosts run it: its scope (an ENI, a
// subnet, or neither: the whole VPC) and the file path of its destination.
func flowLogFacts(fl *pb.FlowLog) *pb.FlowLogFacts {
	return &pb.FlowLogFacts{Id: fl.Id, EniId: fl.EniId, SubnetId: fl.SubnetId, TrafficType: fl.TrafficType,
		Path: strings.TrimPrefix(fl.Destination, model.FlowLogFilePrefix), IntervalSeconds: fl.IntervalSeconds}
}

// applyZone follows private hosted zones, facts of every VPC they are
// associated with: a change of records or associations changes the facts
// of each VPC associated before or after it.
func (w *world) applyZone(r store.Record, d *delta) error {
	if old := w.zones[r.ID]; old != nil {
		for _, v := range old.VpcIds {
			delete(w.vpcZones[v], r.ID)
			if len(w.vpcZones[v]) == 0 {
				delete(w.vpcZones, v)
			}
			if w.vpcs[v] != nil {
				d.facts.add(v)
			}
		}
		delete(w.zones, r.ID)
	}
	if r.Deleted {
		return nil
	}
	z, err := decode(r, new(pb.Zone))
	if err != nil {
		return err
	}
	w.zones[r.ID] = z
	for _, v := range z.VpcIds {
		w.vpcZones[v] = w.vpcZones[v].add(r.ID)
		if w.vpcs[v] != nil {
			d.facts.add(v)
		}
	}
	return nil
}

// ZoneFacts is a zone as the VPC resolver answers it (records shared
// read-only with the zone's record).
func ZoneFacts(z *pb.Zone) *pb.ZoneFacts {
	return &pb.ZoneFacts{Id: z.Id, Name: z.Name, Records: z.Records}
}

func live(i *pb.Instance) bool {
	return i != nil && i.State != pb.InstanceState_INSTANCE_STATE_TERMINATED
}

func (w *world) applyInstance(r store.Record, d *delta) error {
	inst, err := decode(r, new(pb.Instance))
	if err != nil {
		return err
	}
	old := w.insts[r.ID]
	now := !r.Deleted && live(inst)
	switch {
	case old != nil && !now:
		w.removeInstance(old, d)
		d.gone = append(d.gone, old)
	case old == nil && now:
		w.created[r.ID] = r.CreateRevision
		w.addInstance(inst, d)
		d.born = append(d.born, inst)
	case old != nil && now:
		switch {
		case old.HostId != inst.HostId || old.PrivateIp != inst.PrivateIp:
			w.removeInstance(old, d)
			w.addInstance(inst, d)
		case old.PublicIp != inst.PublicIp || !slices.Equal(old.SecurityGroupIds, inst.SecurityGroupIds) || !proto.Equal(old.Conntrack, inst.Conntrack) || old.ImdsTokenRequired != inst.ImdsTokenRequired:
			// An Elastic IP was associated or disassociated, or the ENI's
			// groups or timeouts changed: the same mapping, with a new
			// public address for the edges, or new groups or timeouts for
			// every host in scope.
			w.insts[r.ID] = inst
			up := &pb.Change{Kind: &pb.Change_UpsertMapping{UpsertMapping: w.record(inst)}}
			w.upserts[r.ID] = up
			d.mappings[inst.VpcId] = append(d.mappings[inst.VpcId], up)
		default:
			w.insts[r.ID] = inst
		}
		d.states = append(d.states, inst)
	}
	return nil
}

func (w *world) addInstance(i *pb.Instance, d *delta) {
	w.insts[i.Id] = i
	w.vpcInsts[i.VpcId] = w.vpcInsts[i.VpcId].add(i.Id)
	if w.count(i.HostId, i.VpcId, +1) == 1 {
		d.scopeDirty.add(i.HostId)
		d.present(i.VpcId, i.HostId, +1)
	}
	up := &pb.Change{Kind: &pb.Change_UpsertMapping{UpsertMapping: w.record(i)}}
	w.upserts[i.Id] = up
	d.mappings[i.VpcId] = append(d.mappings[i.VpcId], up)
}

func (w *world) removeInstance(i *pb.Instance, d *delta) {
	delete(w.insts, i.Id)
	delete(w.created, i.Id)
	delete(w.upserts, i.Id)
	delete(w.vpcInsts[i.VpcId], i.Id)
	if w.count(i.HostId, i.VpcId, -1) == 0 {
		d.scopeDirty.add(i.HostId)
		d.present(i.VpcId, i.HostId, -1)
	}
	vni := w.vpcs[i.VpcId].GetVni()
	d.mappings[i.VpcId] = append(d.mappings[i.VpcId], &pb.Change{Kind: &pb.Change_DeleteMapping{DeleteMapping: &pb.MappingKey{Vni: vni, Ip: i.PrivateIp}}})
}

func (d *delta) present(vpc, host string, by int) {
	if d.presence[vpc] == nil {
		d.presence[vpc] = map[string]int{}
	}
	d.presence[vpc][host] += by
}

// count adjusts the live-instance count of (host, vpc) and returns it.
func (w *world) count(host, vpc string, by int) int {
	if w.hostVPC[host] == nil {
		w.hostVPC[host] = map[string]int{}
	}
	if w.vpcHost[vpc] == nil {
		w.vpcHost[vpc] = map[string]int{}
	}
	n := w.hostVPC[host][vpc] + by
	if n <= 0 {
		delete(w.hostVPC[host], vpc)
		delete(w.vpcHost[vpc], host)
		return 0
	}
	w.hostVPC[host][vpc], w.vpcHost[vpc][host] = n, n
	return n
}

func (w *world) record(i *pb.Instance) *pb.MappingRecord {
	return &pb.MappingRecord{
		Vni: w.vpcs[i.VpcId].GetVni(), Ip: i.PrivateIp, HostId: i.HostId,
		EniId: i.EniId, Mac: i.Mac, InstanceId: i.Id, PublicIp: i.PublicIp,
		SecurityGroupIds: i.SecurityGroupIds, Conntrack: conntrack(i.Conntrack), InstanceName: i.Name,
		ImdsTokenRequired: i.ImdsTokenRequired,
	}
}

// forHost is c as host gets it: an instance's mapping carries its user
// data only to the host it runs on (w.upserts holds records without it,
// for every other host). c itself is shared and never changed.
func (w *world) forHost(host string, c *pb.Change) *pb.Change {
	r := c.GetUpsertMapping()
	if r == nil || r.HostId != host {
		return c
	}
	i := w.insts[r.InstanceId]
	if i == nil || len(i.UserData) == 0 {
		return c
	}
	r = proto.CloneOf(r)
	r.UserData = i.UserData
	return &pb.Change{Kind: &pb.Change_UpsertMapping{UpsertMapping: r}}
}

// conntrackDefaults are AWS's connection-tracking timeouts, sent in every
// mapping so a host never has to guess them. Shared and read-only.
var conntrackDefaults = &pb.ConntrackTimeouts{
	TcpEstablishedSeconds: model.ConntrackTCPEstablished, UdpSeconds: model.ConntrackUDP,
	UdpStreamSeconds: model.ConntrackUDPStream, OtherSeconds: model.ConntrackOther,
}

// conntrack is an ENI's timeouts: its own settings over the defaults.
func conntrack(c *pb.ConntrackSettings) *pb.ConntrackTimeouts {
	if c == nil {
		return conntrackDefaults
	}
	or := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	return &pb.ConntrackTimeouts{
		TcpEstablishedSeconds: or(c.TcpEstablishedSeconds, model.ConntrackTCPEstablished), UdpSeconds: or(c.UdpSeconds, model.ConntrackUDP),
		UdpStreamSeconds: or(c.UdpStreamSeconds, model.ConntrackUDPStream), OtherSeconds: or(c.OtherSeconds, model.ConntrackOther),
	}
}

func (w *world) applyHost(r store.Record, d *delta) error {
	h, err := decode(r, new(pb.Host))
	if err != nil {
		return err
	}
	old := w.hosts[r.ID]
	if old != nil && old.Role == pb.HostRole_HOST_ROLE_EDGE && (r.Deleted || old.Unhealthy != h.Unhealthy) {
		d.health = true
	}
	if old != nil && old.Role == pb.HostRole_HOST_ROLE_EDGE || h.Role == pb.HostRole_HOST_ROLE_EDGE {
		d.edges = d.edges.add(r.ID)
		if old == nil || !proto.Equal(&pb.Host{Functions: old.Functions}, &pb.Host{Functions: h.Functions}) {
			// What an edge serves decides its scope.
			d.scopeDirty.add(r.ID)
			d.health = true // instances may be waiting for an edge serving their VPC
		}
	}
	vpnEdge := w.serves(r.ID, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN)
	if r.Deleted {
		delete(w.hosts, r.ID)
	} else {
		w.hosts[r.ID] = h
	}
	d.hostsChanged.add(r.ID)
	if old == nil || r.Deleted || old.Unhealthy != h.Unhealthy {
		w.dxEdgeHealth(r.ID, d)
	}
	if vpnEdge || w.serves(r.ID, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN) {
		// Tunnels may move: placement is over the healthy VPN edges.
		w.vpn.fresh = false
		w.vpnVPCs(d)
		w.vpnEdgesDirty(d)
	}
	return nil
}

func (w *world) isEdge(host string) bool {
	h := w.hosts[host]
	return h != nil && h.Role == pb.HostRole_HOST_ROLE_EDGE
}

// serves reports whether host is an edge serving function kind.
func (w *world) serves(host string, kind pb.EdgeFunctionKind) bool {
	if !w.isEdge(host) {
		return false
	}
	for _, f := range w.hosts[host].Functions {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

func hostRecord(h *pb.Host) *pb.HostRecord {
	return &pb.HostRecord{Id: h.Id, UnderlayAddress: h.UnderlayAddress, Role: h.Role, Healthy: !h.Unhealthy, Functions: h.Functions}
}

// activePeers lists the VPCs actively peered with vpc.
func (w *world) activePeers(vpc string) []string {
	var out []string
	for id := range w.vpcPeerings[vpc] {
		p := w.peerings[id]
		if !active(p) {
			continue
		}
		if p.RequesterVpcId == vpc {
			out = append(out, p.AccepterVpcId)
		} else {
			out = append(out, p.RequesterVpcId)
		}
	}
	return out
}

// scope is the set of VPCs host must know: those of its instances and
// their active peers. An edge's is computed per function it serves: for
// the internet, the VPCs with an internet gateway. (VPN, Direct Connect
// and endpoints will add the VPCs attached to the targets they serve.)
func (w *world) scope(host string) set {
	s := set{}
	if w.isEdge(host) {
		if w.serves(host, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET) {
			for v := range w.vpcIGW {
				if _, ok := w.vpcs[v]; ok {
					s.add(v)
				}
			}
		}
		if w.serves(host, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN) {
			w.vpnScope(host, s)
		}
		if w.serves(host, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT) {
			for v, eps := range w.vpcVpces {
				if _, ok := w.vpcs[v]; ok && len(eps) > 0 {
					s.add(v)
				}
			}
		}
		if w.serves(host, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT) {
			w.dxScope(host, s)
		}
		return s
	}
	for v := range w.hostVPC[host] {
		if _, ok := w.vpcs[v]; !ok {
			continue
		}
		s.add(v)
		for _, p := range w.activePeers(v) {
			if _, ok := w.vpcs[p]; ok {
				s.add(p)
			}
		}
	}
	return s
}

// hostsOf lists the hosts whose scope includes vpc.
func (w *world) hostsOf(vpc string) set {
	s := set{}
	for h := range w.vpcHost[vpc] {
		s.add(h)
	}
	for _, p := range w.activePeers(vpc) {
		for h := range w.vpcHost[p] {
			s.add(h)
		}
	}
	if w.vpcIGW[vpc] != "" {
		for h := range w.hosts {
			if w.serves(h, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET) {
				s.add(h)
			}
		}
	}
	w.vpnHostsOf(vpc, s)
	if len(w.vpcVpces[vpc]) > 0 {
		for h := range w.hosts {
			if w.serves(h, pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT) {
				s.add(h)
			}
		}
	}
	w.dxHostsOf(vpc, s)
	return s
}

// facts builds everything a host needs about vpc besides its mappings.
func (w *world) facts(vpc string) *pb.VpcFacts {
	v := w.vpcs[vpc]
	f := &pb.VpcFacts{Vni: v.Vni, Id: v.Id, Name: v.Name, Cidr: v.Cidr, InternetGatewayId: w.vpcIGW[vpc], DnsSupportDisabled: v.DnsSupportDisabled, DnsHostnamesDisabled: v.DnsHostnamesDisabled,
		DefaultSecurityGroupId: v.DefaultSecurityGroupId, DefaultNetworkAclId: v.DefaultNetworkAclId}
	for id := range w.vpcSubnets[vpc] {
		sn := w.subnets[id]
		f.Subnets = append(f.Subnets, &pb.SubnetFacts{Id: sn.Id, Cidr: sn.Cidr, RouteTableId: sn.RouteTableId, NetworkAclId: sn.NetworkAclId})
	}
	// Rules and entries are shared read-only with the world's records.
	for id := range w.vpcSGs[vpc] {
		f.SecurityGroups = append(f.SecurityGroups, w.groupFacts(w.sgs[id]))
	}
	for id := range w.vpcACLs[vpc] {
		a := w.acls[id]
		f.NetworkAcls = append(f.NetworkAcls, &pb.NetworkAclFacts{Id: a.Id, Inbound: a.Inbound, Outbound: a.Outbound})
	}
	for id := range w.vpcFlowLogs[vpc] {
		f.FlowLogs = append(f.FlowLogs, flowLogFacts(w.flowLogs[id]))
	}
	for id := range w.vpcZones[vpc] {
		f.Zones = append(f.Zones, ZoneFacts(w.zones[id]))
	}
	for id := range w.vpcVpces[vpc] {
		f.Endpoints = append(f.Endpoints, w.endpointFacts(w.vpces[id]))
	}
	for id := range w.vpcRtbs[vpc] {
		rt := w.expandEndpointRoutes(proto.CloneOf(w.rtbs[id]))
		for _, r := range rt.Routes {
			r.State = pb.RouteState_ROUTE_STATE_ACTIVE
			switch {
			case r.Target == store.LocalTarget:
			case model.IsID(model.KindEndpoint, r.Target):
				if ep := w.vpces[r.Target]; ep == nil || ep.VpcId != vpc {
					r.State = pb.RouteState_ROUTE_STATE_BLACKHOLE
				}
			case model.IsID(model.KindIGW, r.Target):
				if w.vpcIGW[vpc] != r.Target {
					r.State = pb.RouteState_ROUTE_STATE_BLACKHOLE
				}
			case model.IsID(model.KindPeering, r.Target):
				if !active(w.peerings[r.Target]) {
					r.State = pb.RouteState_ROUTE_STATE_BLACKHOLE
				}
			default:
				// A target kind this Mapping Service manages nothing of leads
				// nowhere; it is never taken for a peering.
				r.State = pb.RouteState_ROUTE_STATE_BLACKHOLE
			}
		}
		rt.Routes = w.propagatedRoutes(vpc, rt)
		f.RouteTables = append(f.RouteTables, rt)
	}
	for id := range w.vpcPeerings[vpc] {
		p := w.peerings[id]
		if !active(p) {
			continue
		}
		peer := p.AccepterVpcId
		if peer == vpc {
			peer = p.RequesterVpcId
		}
		if pv, ok := w.vpcs[peer]; ok {
			f.Peers = append(f.Peers, &pb.PeerFacts{PeeringId: p.Id, PeerVni: pv.Vni, PeerVpcId: pv.Id, PeerCidr: pv.Cidr, AllowRemoteDns: p.AllowRemoteDns})
		}
	}
	slices.SortFunc(f.Subnets, func(a, b *pb.SubnetFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.RouteTables, func(a, b *pb.RouteTable) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.Peers, func(a, b *pb.PeerFacts) int { return strings.Compare(a.PeeringId, b.PeeringId) })
	slices.SortFunc(f.SecurityGroups, func(a, b *pb.SecurityGroupFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.NetworkAcls, func(a, b *pb.NetworkAclFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.FlowLogs, func(a, b *pb.FlowLogFacts) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(f.Zones, func(a, b *pb.ZoneFacts) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(f.Endpoints, func(a, b *pb.EndpointFacts) int { return strings.Compare(a.Id, b.Id) })
	return f
}

// fullVPC is a scope-add: the VPC's facts followed by all its mappings.
func (w *world) fullVPC(host, vpc string, out []*pb.Change) []*pb.Change {
	out = append(out, &pb.Change{Kind: &pb.Change_UpsertVpc{UpsertVpc: w.facts(vpc)}})
	for id := range w.vpcInsts[vpc] {
		out = append(out, w.forHost(host, w.upserts[id]))
	}
	return out
}

// markRelevant records that d changed the scope contents of these hosts.
func (w *world) markRelevant(d *delta) {
	touched := set{}
	for v := range d.facts {
		maps.Copy(touched, w.hostsOf(v))
	}
	for v := range d.mappings {
		maps.Copy(touched, w.hostsOf(v))
	}
	maps.Copy(touched, d.scopeDirty)
	for changed := range d.hostsChanged {
		if w.isEdge(changed) {
			for h := range w.hosts {
				touched.add(h)
			}
			break
		}
		for v := range w.hostVPC[changed] {
			maps.Copy(touched, w.hostsOf(v))
		}
	}
	for h := range touched {
		w.relevant[h] = d.rev
	}
}
