package agent

import (
	"net/netip"

	"github.com/openvpc/openvpc/host/services"
	"github.com/openvpc/openvpc/host/tables"
)

// reconcileServices gives every VPC with a local instance a host services
// stack (the VPC resolver and the metadata service, host/services) as its
// services port, and stops those of VPCs left with none. Called with n.mu
// held.
func (n *nics) reconcileServices(snap *tables.Snapshot) {
	want := map[uint32]bool{}
	for _, inst := range n.attached {
		want[inst.att.VNI] = true
	}
	for vni, st := range n.services {
		if !want[vni] {
			n.stopServices(vni, st)
		}
	}
	for vni := range want {
		if _, ok := n.services[vni]; ok {
			continue
		}
		vpc, ok := snap.VPC(vni)
		if !ok {
			continue
		}
		st, err := services.New(services.Config{VNI: vni, CIDR: vpc.CIDR, Region: n.region, Upstream: n.upstream, Tables: n.cache.Tables, Identity: n.identity(vni), MTU: n.mtu, Log: n.log})
		if err != nil {
			n.log.Error("cannot start the VPC's resolver and metadata service", "vni", vni, "err", err)
			continue
		}
		n.services[vni] = st
		n.plane.AttachServices(vni, st)
		n.loops.Add(1)
		go func() {
			defer n.loops.Done()
			_ = n.plane.ServeServices(vni, st) // ends when the stack closes
		}()
	}
}

// stopServices takes a VPC's services port off the data plane and closes
// it. Called with n.mu held.
func (n *nics) stopServices(vni uint32, st *services.Stack) {
	n.plane.DetachServices(vni)
	n.retired.Add(st.Counts())
	if err := st.Close(); err != nil {
		n.log.Error("cannot stop the VPC's services", "vni", vni, "err", err)
	}
	delete(n.services, vni)
}

// identity returns who the local instances of a VPC are, for the metadata
// service: from the attachment at that address and the cache.
func (n *nics) identity(vni uint32) func(ip netip.Addr) (services.Identity, bool) {
	return func(ip netip.Addr) (services.Identity, bool) {
		inst, ok := n.find(vni, ip)
		if !ok {
			return services.Identity{}, false
		}
		snap := n.cache.Tables.Load()
		var m tables.Mapping
		vpc, ok := snap.VPC(vni)
		if !ok || !snap.Lookup(vni, ip, &m) {
			return services.Identity{}, false
		}
		sn, _ := vpc.Subnet(ip)
		var required bool
		var userData []byte
		for _, l := range n.cache.Locals() {
			if l.ENI == m.ENI {
				required, userData = l.IMDSTokenRequired, l.UserData
			}
		}
		public, _ := snap.PublicIP(vni, ip)
		return services.Identity{
			RequireToken: required, PublicIP: public, UserData: userData,
			InstanceID: inst.id, ENI: m.ENI, MAC: m.MAC, IP: ip,
			SubnetID: sn.ID, SubnetCIDR: sn.CIDR, VPCID: vpc.ID, VPCCIDR: vpc.CIDR,
			Groups: append([]uint64(nil), vpc.GroupsOf(&m)...),
		}, true
	}
}

// dnsCounts sums the counters of every VPC resolver this host ran.
func (n *nics) dnsCounts() services.DNSCounts {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.retired
	for _, st := range n.services {
		c.Add(st.Counts())
	}
	return c
}

// Services returns the host services stack of the VPC with VNI vni, if
// this host runs one (it does while the VPC has an instance here).
func (a *Agent) Services(vni uint32) (*services.Stack, bool) {
	if a.nics == nil {
		return nil, false
	}
	a.nics.mu.Lock()
	defer a.nics.mu.Unlock()
	st, ok := a.nics.services[vni]
	return st, ok
}
