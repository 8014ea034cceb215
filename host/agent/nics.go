package agent

import (
	"net/netip"
	"sync"

	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/model"
)

// nics gives every ENI the cache places on this host a NIC attached to
// the data plane, and takes it away when the ENI leaves.
type nics struct {
	plane   *dataplane.Plane
	cache   *Cache
	backend nic.Backend
	mtu     int

	mu       sync.Mutex
	attached map[uint64]*instance // by ENI
}

type instance struct {
	att *dataplane.Attachment
	id  string // the instance's id
	nic nic.NIC
}

// reconcile brings the attached NICs in line with the cache's local ENIs.
// It runs after every applied batch; an agent's first batch is a full
// snapshot, so by then the cache knows every instance this host still
// runs and the backend can sweep away what a crash left for the others.
func (n *nics) reconcile() {
	want := map[uint64]Local{}
	keep := map[string]bool{}
	for _, m := range n.cache.Locals() {
		want[m.ENI] = m
		keep[m.InstanceID] = true
	}
	snap := n.cache.Tables.Load()
	n.mu.Lock()
	defer n.mu.Unlock()
	for eni, inst := range n.attached {
		if m, ok := want[eni]; !ok || m.IP != inst.att.IP || m.VNI != inst.att.VNI || m.InstanceID != inst.id {
			n.plane.Detach(eni)
			if err := inst.nic.Close(); err != nil {
				n.cache.log.Error("cannot remove instance NIC", "instance", inst.id, "err", err)
			}
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
		gw := model.Gateway(sn.CIDR)
		port, err := n.backend.Open(nic.Instance{ID: m.InstanceID, Addr: netip.PrefixFrom(m.IP, sn.CIDR.Bits()), Gateway: gw, MTU: n.mtu})
		if err != nil {
			n.cache.log.Error("cannot create instance NIC", "instance", m.InstanceID, "ip", m.IP, "nic", n.backend, "err", err)
			continue
		}
		att := &dataplane.Attachment{ENI: eni, VNI: m.VNI, IP: m.IP, Subnet: sn.CIDR, Gateway: gw, Port: port}
		n.plane.Attach(att)
		n.attached[eni] = &instance{att: att, id: m.InstanceID, nic: port}
		go func() { _ = n.plane.ServePort(att) }()
	}
	if err := n.backend.Sweep(keep); err != nil {
		n.cache.log.Error("cannot remove what an earlier agent left", "nic", n.backend, "err", err)
	}
}

// nic returns the NIC of the local instance with address ip in vni.
func (n *nics) nic(vni uint32, ip netip.Addr) (nic.NIC, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, inst := range n.attached {
		if inst.att.VNI == vni && inst.att.IP == ip {
			return inst.nic, true
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
		if err := inst.nic.Close(); err != nil {
			n.cache.log.Error("cannot remove instance NIC", "instance", inst.id, "err", err)
		}
		delete(n.attached, eni)
	}
}
