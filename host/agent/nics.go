package agent

import (
	"net/netip"
	"sync"

	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
)

// nics gives every ENI the cache places on this host a NIC attached to
// the data plane, and takes it away when the ENI leaves.
type nics struct {
	plane *dataplane.Plane
	cache *Cache
	mtu   int

	mu       sync.Mutex
	attached map[uint64]*instance // by ENI
}

type instance struct {
	att *dataplane.Attachment
	ns  *nic.Netstack
}

// reconcile brings the attached NICs in line with the cache's local ENIs.
func (n *nics) reconcile() {
	want := map[uint64]tables.Mapping{}
	for _, m := range n.cache.Locals() {
		want[m.ENI] = m
	}
	snap := n.cache.Tables.Load()
	n.mu.Lock()
	defer n.mu.Unlock()
	for eni, inst := range n.attached {
		if m, ok := want[eni]; !ok || m.IP != inst.att.IP || m.VNI != inst.att.VNI {
			n.plane.Detach(eni)
			inst.ns.Close()
			delete(n.attached, eni)
		}
	}
	for eni, m := range want {
		if _, ok := n.attached[eni]; ok {
			continue
		}
		vpc, ok := snap.VPC(m.VNI)
		if !ok {
			continue
		}
		sn, ok := vpc.Subnet(m.IP)
		if !ok {
			continue
		}
		ns, err := nic.NewNetstack(m.IP, n.mtu)
		if err != nil {
			n.cache.log.Error("cannot create instance NIC", "ip", m.IP, "err", err)
			continue
		}
		att := &dataplane.Attachment{ENI: eni, VNI: m.VNI, IP: m.IP, Subnet: sn.CIDR, Gateway: model.Gateway(sn.CIDR), Port: ns}
		n.plane.Attach(att)
		n.attached[eni] = &instance{att: att, ns: ns}
		go func() { _ = n.plane.ServePort(att) }()
	}
}

// netstack returns the stack of the local instance with address ip in vni.
func (n *nics) netstack(vni uint32, ip netip.Addr) (*nic.Netstack, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, inst := range n.attached {
		if inst.att.VNI == vni && inst.att.IP == ip {
			return inst.ns, true
		}
	}
	return nil, false
}

// eni returns the ENI of the local instance with address ip in vni.
func (n *nics) eni(vni uint32, ip netip.Addr) (uint64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for eni, inst := range n.attached {
		if inst.att.VNI == vni && inst.att.IP == ip {
			return eni, true
		}
	}
	return 0, false
}

func (n *nics) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for eni, inst := range n.attached {
		n.plane.Detach(eni)
		inst.ns.Close()
		delete(n.attached, eni)
	}
}
