package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
)

// Cache applies the Mapping Service's batches to the host's lookup tables.
// Host ids are the operator's names ("host-a"); the tables key hosts by
// number, so the cache numbers them, stably for the life of the process.
type Cache struct {
	Tables *tables.Tables
	log    *slog.Logger

	mu      sync.Mutex
	ids     map[string]uint64
	names   map[uint64]string
	skipped atomic.Int64

	// locals are the mappings of ENIs on this host, kept as batches apply
	// so the NICs can follow without scanning the whole cache.
	localMu sync.Mutex
	locals  map[MappingKey]Local
	self    uint64
}

// NewCache returns an empty cache for host self.
func NewCache(self string, log *slog.Logger) *Cache {
	c := &Cache{ids: map[string]uint64{}, names: map[uint64]string{}, log: log, locals: map[MappingKey]Local{}}
	c.self = c.HostNum(self)
	c.Tables = tables.New(c.self)
	return c
}

// HostNum is the number the tables know host id by.
func (c *Cache) HostNum(id string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.ids[id]
	if !ok {
		n = uint64(len(c.ids) + 1)
		c.ids[id], c.names[n] = n, id
	}
	return n
}

// HostName is the id of host number n.
func (c *Cache) HostName(n uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[n]
}

// Skipped counts changes refused as malformed (a server bug, logged).
func (c *Cache) Skipped() int64 { return c.skipped.Load() }

// Apply installs one batch as one new snapshot. A change the tables refuse
// is logged and skipped rather than wedging the stream on it.
func (c *Cache) Apply(b Batch) error {
	tx := c.Tables.Begin(b.Revision)
	defer tx.Abort()
	c.localMu.Lock()
	defer c.localMu.Unlock()
	if b.Snapshot {
		tx.Reset()
		clear(c.locals)
	}
	for _, ch := range b.Changes {
		if err := c.apply(tx, ch); err != nil {
			c.skipped.Add(1)
			c.log.Error("mapping change refused", "rev", b.Revision, "err", err)
		}
	}
	tx.Commit()
	return nil
}

func (c *Cache) apply(tx *tables.Txn, ch *pb.Change) error {
	switch k := ch.Kind.(type) {
	case *pb.Change_UpsertVpc:
		v, err := vpcFromFacts(k.UpsertVpc)
		if err != nil {
			return err
		}
		return tx.UpsertVPC(v)
	case *pb.Change_RemoveVpc:
		tx.RemoveVPC(k.RemoveVpc)
		for key := range c.locals {
			if key.VNI == k.RemoveVpc {
				delete(c.locals, key)
			}
		}
	case *pb.Change_UpsertMapping:
		m, err := c.mappingFrom(k.UpsertMapping)
		if err != nil {
			return err
		}
		if err := tx.UpsertMapping(m); err != nil {
			return err
		}
		key := MappingKey{m.VNI, m.IP.String()}
		if m.HostID == c.self {
			m.Local = true
			c.locals[key] = Local{Mapping: m, InstanceID: k.UpsertMapping.InstanceId, Conntrack: k.UpsertMapping.Conntrack, IMDSTokenRequired: k.UpsertMapping.ImdsTokenRequired, UserData: k.UpsertMapping.UserData}
		} else {
			delete(c.locals, key)
		}
		return nil
	case *pb.Change_DeleteMapping:
		ip, err := netip.ParseAddr(k.DeleteMapping.Ip)
		if err != nil {
			return fmt.Errorf("mapping delete: %v", err)
		}
		delete(c.locals, MappingKey{k.DeleteMapping.Vni, ip.String()})
		return tx.DeleteMapping(k.DeleteMapping.Vni, ip)
	case *pb.Change_UpsertHost:
		h := k.UpsertHost
		a, err := netip.ParseAddr(h.UnderlayAddress)
		if err != nil {
			return fmt.Errorf("host %s: %v", h.Id, err)
		}
		role := tables.RoleHost
		if h.Role == pb.HostRole_HOST_ROLE_EDGE {
			role = tables.RoleEdge
		}
		fns, err := tableFunctions(h)
		if err != nil {
			return err
		}
		return tx.UpsertHost(tables.Host{ID: c.HostNum(h.Id), Underlay: a, Role: role, Healthy: h.Healthy, Functions: fns})
	case *pb.Change_DeleteHost:
		tx.DeleteHost(c.HostNum(k.DeleteHost))
	default:
		return fmt.Errorf("unknown change %T", ch.Kind)
	}
	return nil
}

func (c *Cache) mappingFrom(r *pb.MappingRecord) (tables.Mapping, error) {
	ip, err := netip.ParseAddr(r.Ip)
	if err != nil {
		return tables.Mapping{}, fmt.Errorf("mapping %s: %v", r.InstanceId, err)
	}
	eni, ok := model.ParseID(model.KindENI, r.EniId)
	if !ok {
		return tables.Mapping{}, fmt.Errorf("mapping %s: bad ENI id %q", r.InstanceId, r.EniId)
	}
	if len(r.UserData) > model.MaxUserData {
		return tables.Mapping{}, fmt.Errorf("mapping %s: %d bytes of user data, at most %d", r.InstanceId, len(r.UserData), model.MaxUserData)
	}
	hw, err := net.ParseMAC(r.Mac)
	if err != nil || len(hw) != 6 {
		return tables.Mapping{}, fmt.Errorf("mapping %s: bad MAC %q", r.InstanceId, r.Mac)
	}
	m := tables.Mapping{VNI: r.Vni, IP: ip, HostID: c.HostNum(r.HostId), ENI: eni, MAC: [6]byte(hw), Name: r.InstanceName}
	if r.PublicIp != "" {
		if m.Public, err = netip.ParseAddr(r.PublicIp); err != nil {
			return tables.Mapping{}, fmt.Errorf("mapping %s: bad Elastic IP %q", r.InstanceId, r.PublicIp)
		}
	}
	for _, g := range r.SecurityGroupIds {
		id, ok := model.ParseID(model.KindSecurityGroup, g)
		if !ok {
			return tables.Mapping{}, fmt.Errorf("mapping %s: bad security group id %q", r.InstanceId, g)
		}
		m.Groups = append(m.Groups, id)
	}
	return m, nil
}

func vpcFromFacts(f *pb.VpcFacts) (tables.VPC, error) {
	id, ok := model.ParseID(model.KindVPC, f.Id)
	if !ok {
		return tables.VPC{}, fmt.Errorf("VPC %q: bad id", f.Id)
	}
	cidr, err := netip.ParsePrefix(f.Cidr)
	if err != nil {
		return tables.VPC{}, fmt.Errorf("VPC %s: %v", f.Id, err)
	}
	v := tables.VPC{VNI: f.Vni, ID: id, Name: f.Name, CIDR: cidr, DNSDisabled: f.DnsSupportDisabled, HostnamesDisabled: f.DnsHostnamesDisabled}
	if f.InternetGatewayId != "" {
		if v.InternetGateway, ok = model.ParseID(model.KindIGW, f.InternetGatewayId); !ok {
			return tables.VPC{}, fmt.Errorf("VPC %s: bad internet gateway id %q", f.Id, f.InternetGatewayId)
		}
	}
	for _, rt := range f.RouteTables {
		t, err := routeTableFrom(rt)
		if err != nil {
			return tables.VPC{}, fmt.Errorf("VPC %s: %v", f.Id, err)
		}
		if rt.Main {
			v.MainRouteTable = t.ID
		}
		v.RouteTables = append(v.RouteTables, t)
	}
	for _, sn := range f.Subnets {
		sid, _ := model.ParseID(model.KindSubnet, sn.Id)
		rid, _ := model.ParseID(model.KindRouteTable, sn.RouteTableId)
		p, err := netip.ParsePrefix(sn.Cidr)
		if err != nil {
			return tables.VPC{}, fmt.Errorf("subnet %s: %v", sn.Id, err)
		}
		aid, _ := model.ParseID(model.KindNetworkACL, sn.NetworkAclId)
		v.Subnets = append(v.Subnets, tables.Subnet{ID: sid, CIDR: p, RouteTable: rid, NetworkACL: aid})
	}
	if err := firewallFromFacts(f, &v); err != nil {
		return tables.VPC{}, fmt.Errorf("VPC %s: %v", f.Id, err)
	}
	if err := flowLogsFromFacts(f, &v); err != nil {
		return tables.VPC{}, fmt.Errorf("VPC %s: %v", f.Id, err)
	}
	if err := zonesFromFacts(f, &v); err != nil {
		return tables.VPC{}, fmt.Errorf("VPC %s: %v", f.Id, err)
	}
	for _, p := range f.Peers {
		pid, _ := model.ParseID(model.KindPeering, p.PeeringId)
		v.Peerings = append(v.Peerings, tables.Peering{ID: pid, PeerVNI: p.PeerVni, RemoteDNS: p.AllowRemoteDns})
	}
	return v, nil
}

// firewallFromFacts reads the VPC's security groups and network ACLs.
func firewallFromFacts(f *pb.VpcFacts, v *tables.VPC) error {
	var ok bool
	if f.DefaultSecurityGroupId != "" {
		if v.DefaultGroup, ok = model.ParseID(model.KindSecurityGroup, f.DefaultSecurityGroupId); !ok {
			return fmt.Errorf("bad default security group %q", f.DefaultSecurityGroupId)
		}
	}
	if f.DefaultNetworkAclId != "" {
		if v.DefaultACL, ok = model.ParseID(model.KindNetworkACL, f.DefaultNetworkAclId); !ok {
			return fmt.Errorf("bad default network ACL %q", f.DefaultNetworkAclId)
		}
	}
	for _, g := range f.SecurityGroups {
		id, ok := model.ParseID(model.KindSecurityGroup, g.Id)
		if !ok {
			return fmt.Errorf("bad security group id %q", g.Id)
		}
		sg := tables.SecurityGroup{ID: id}
		for _, dir := range []struct {
			in  []*pb.SecurityGroupRule
			out *[]tables.SGRule
		}{{g.Ingress, &sg.Ingress}, {g.Egress, &sg.Egress}} {
			for _, r := range dir.in {
				rule, err := ruleFrom(r)
				if err != nil {
					return fmt.Errorf("%s: %v", g.Id, err)
				}
				*dir.out = append(*dir.out, rule)
			}
		}
		v.SecurityGroups = append(v.SecurityGroups, sg)
	}
	for _, a := range f.NetworkAcls {
		id, ok := model.ParseID(model.KindNetworkACL, a.Id)
		if !ok {
			return fmt.Errorf("bad network ACL id %q", a.Id)
		}
		acl := tables.NetworkACL{ID: id}
		for _, dir := range []struct {
			in  []*pb.NetworkAclEntry
			out *[]tables.ACLEntry
		}{{a.Inbound, &acl.Inbound}, {a.Outbound, &acl.Outbound}} {
			for _, e := range dir.in {
				p, err := netip.ParsePrefix(e.Cidr)
				if err != nil {
					return fmt.Errorf("%s entry %d: %v", a.Id, e.RuleNumber, err)
				}
				*dir.out = append(*dir.out, tables.ACLEntry{Number: e.RuleNumber, Proto: int16(e.Protocol), From: e.FromPort, To: e.ToPort, Prefix: p, Allow: e.Allow})
			}
		}
		v.NetworkACLs = append(v.NetworkACLs, acl)
	}
	return nil
}

func ruleFrom(r *pb.SecurityGroupRule) (tables.SGRule, error) {
	rid, _ := model.ParseID(model.KindSecurityGroupRule, r.RuleId)
	rule := tables.SGRule{ID: rid, Proto: int16(r.Protocol), From: r.FromPort, To: r.ToPort}
	cidrs := r.PrefixCidrs
	if r.Cidr != "" {
		cidrs = append([]string{r.Cidr}, cidrs...)
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return rule, fmt.Errorf("rule %s: %v", r.RuleId, err)
		}
		rule.Prefixes = append(rule.Prefixes, p)
	}
	if r.GroupId != "" {
		var ok bool
		if rule.Group, ok = model.ParseID(model.KindSecurityGroup, r.GroupId); !ok {
			return rule, fmt.Errorf("rule %s: bad group %q", r.RuleId, r.GroupId)
		}
	}
	return rule, nil
}

func routeTableFrom(rt *pb.RouteTable) (tables.RouteTable, error) {
	id, ok := model.ParseID(model.KindRouteTable, rt.Id)
	if !ok {
		return tables.RouteTable{}, fmt.Errorf("bad route table id %q", rt.Id)
	}
	t := tables.RouteTable{ID: id}
	for _, r := range rt.Routes {
		dst, err := netip.ParsePrefix(r.DestinationCidr)
		if err != nil {
			return t, fmt.Errorf("route table %s: %v", rt.Id, err)
		}
		t.Routes = append(t.Routes, tables.Route{Dst: dst, Target: targetFrom(r)})
	}
	return t, nil
}

var targetKinds = map[string]tables.TargetKind{
	"pcx": tables.TargetPeering, "igw": tables.TargetInternetGateway, "vgw": tables.TargetVPNGateway,
	"dxvif": tables.TargetDirectConnect, "vpce": tables.TargetEndpoint, "vpn": tables.TargetVPNConnection,
}

// targetFrom reads a route's target; a route whose target cannot carry
// traffic (a peering no longer active, a kind this host does not know) is
// a blackhole: matching packets are dropped, not sent elsewhere.
func targetFrom(r *pb.Route) tables.Target {
	if r.State == pb.RouteState_ROUTE_STATE_BLACKHOLE {
		return tables.Target{Kind: tables.TargetBlackhole}
	}
	if r.Target == "local" {
		return tables.Target{Kind: tables.TargetLocal}
	}
	prefix, _, _ := strings.Cut(r.Target, "-")
	kind, ok := targetKinds[prefix]
	if !ok {
		return tables.Target{Kind: tables.TargetBlackhole}
	}
	id, ok := model.ParseID(model.Kind(prefix), r.Target)
	if !ok {
		return tables.Target{Kind: tables.TargetBlackhole}
	}
	return tables.Target{Kind: kind, ID: id}
}

// functionKinds are the edge functions as the cache numbers them: by the
// kind of route target they serve, with the id prefix of their targets.
var functionKinds = map[pb.EdgeFunctionKind]struct {
	kind   tables.TargetKind
	prefix model.Kind
}{
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_INTERNET:       {tables.TargetInternetGateway, model.KindIGW},
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN:            {tables.TargetVPNConnection, model.KindVPNConnection},
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_DIRECT_CONNECT: {tables.TargetDirectConnect, model.KindDirectConnect},
	pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_ENDPOINT:       {tables.TargetEndpoint, model.KindEndpoint},
}

// tableFunctions turns what a host record says an edge serves into the
// cache's terms; nil for a host.
func tableFunctions(h *pb.HostRecord) (*[]tables.Function, error) {
	if len(h.Functions) == 0 {
		if h.Role == pb.HostRole_HOST_ROLE_EDGE {
			return &[]tables.Function{}, nil
		}
		return nil, nil
	}
	out := make([]tables.Function, 0, len(h.Functions))
	for _, f := range h.Functions {
		k, ok := functionKinds[f.Kind]
		if !ok {
			return nil, fmt.Errorf("host %s: unknown edge function %v", h.Id, f.Kind)
		}
		fn := tables.Function{Kind: k.kind}
		for _, t := range f.Targets {
			id, ok := model.ParseID(k.prefix, t)
			if !ok {
				return nil, fmt.Errorf("host %s: edge function %v: bad target %q", h.Id, f.Kind, t)
			}
			fn.Targets = append(fn.Targets, id)
		}
		for _, t := range f.StandbyTargets {
			id, ok := model.ParseID(k.prefix, t)
			if !ok {
				return nil, fmt.Errorf("host %s: edge function %v: bad standby target %q", h.Id, f.Kind, t)
			}
			fn.Standby = append(fn.Standby, id)
		}
		out = append(out, fn)
	}
	return &out, nil
}

// ProtoFunctions is tableFunctions backwards: the edge functions as the
// Mapping Service names them (what an edge registers, what State shows).
func ProtoFunctions(fns []tables.Function) []*pb.EdgeFunction {
	var out []*pb.EdgeFunction
	for _, f := range fns {
		for pk, k := range functionKinds {
			if k.kind != f.Kind {
				continue
			}
			pf := &pb.EdgeFunction{Kind: pk}
			for _, id := range f.Targets {
				pf.Targets = append(pf.Targets, model.FormatID(k.prefix, id))
			}
			out = append(out, pf)
		}
	}
	return out
}

// Local is the mapping of an ENI on this host, with its instance: the
// tables need no instance ids, but a NIC named after its instance does.
type Local struct {
	tables.Mapping
	InstanceID string
	// Conntrack are the ENI's connection-tracking timeouts (nil: defaults).
	Conntrack *pb.ConntrackTimeouts
	// IMDSTokenRequired: the metadata service refuses IMDSv1 for it.
	IMDSTokenRequired bool
	// UserData is the instance's user data (nil: none), which the
	// Mapping Service sends this host alone.
	UserData []byte
}

// Locals lists the mappings of the ENIs on this host.
func (c *Cache) Locals() []Local {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	out := make([]Local, 0, len(c.locals))
	for _, m := range c.locals {
		out = append(out, m)
	}
	return out
}

// State reads the tables back in the Mapping Service's terms, so tests can
// compare the real cache with what the store says it should hold.
func (c *Cache) State() State {
	snap := c.Tables.Load()
	st := State{VPCs: map[uint32]*pb.VpcFacts{}, Mappings: map[MappingKey]*pb.MappingRecord{}, Hosts: map[string]*pb.HostRecord{}}
	for v := range snap.VPCs() {
		st.VPCs[v.VNI] = &pb.VpcFacts{Vni: v.VNI, Id: model.FormatID(model.KindVPC, v.ID), Name: v.Name, Cidr: v.CIDR.String(), DnsSupportDisabled: v.DNSDisabled, DnsHostnamesDisabled: v.HostnamesDisabled}
		firewallFacts(v, st.VPCs[v.VNI])
		flowLogFacts(v, st.VPCs[v.VNI])
		zoneFacts(v, st.VPCs[v.VNI])
	}
	for m := range snap.Mappings() {
		st.Mappings[MappingKey{m.VNI, m.IP.String()}] = &pb.MappingRecord{
			Vni: m.VNI, Ip: m.IP.String(), HostId: c.HostName(m.HostID),
			EniId: model.FormatID(model.KindENI, m.ENI), Mac: net.HardwareAddr(m.MAC[:]).String(),
			SecurityGroupIds: protoGroups(m.Groups), InstanceName: m.Name,
		}
		if m.Public.IsValid() {
			st.Mappings[MappingKey{m.VNI, m.IP.String()}].PublicIp = m.Public.String()
		}
	}
	for h := range snap.Hosts() {
		role := pb.HostRole_HOST_ROLE_HOST
		if h.Role == tables.RoleEdge {
			role = pb.HostRole_HOST_ROLE_EDGE
		}
		st.Hosts[c.HostName(h.ID)] = &pb.HostRecord{Id: c.HostName(h.ID), UnderlayAddress: h.Underlay.String(), Role: role, Healthy: h.Healthy, Functions: ProtoFunctions(h.FunctionList())}
	}
	return st
}
