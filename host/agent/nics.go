package agent

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/host/fastpath"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/host/services"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
)

// nics gives every ENI the cache places on this host a NIC attached to
// the data plane, and takes it away when the ENI leaves. Each NIC's read
// loop is a goroutine of its own, owned here: closeAll ends and waits for
// every one.
type nics struct {
	plane   *dataplane.Plane
	cache   *node.Cache
	log     *slog.Logger
	backend nic.Backend
	// fast, when set, replays decisions in the kernel for veth NICs.
	fast   *fastpath.FastPath
	mtu    int
	region string // in private DNS names
	// upstream is where the VPC resolvers forward other names.
	upstream func() string

	mu       sync.Mutex
	attached map[uint64]*instance // by ENI
	// services are the host services stacks, one per VPC with a local
	// instance (VPCs' addresses overlap, so each needs its own).
	services map[uint32]*services.Stack
	// retired sums the resolver counters of stacks that stopped, so the
	// host's totals never go down.
	retired services.DNSCounts
	closed  bool           // closeAll ran: open nothing more
	loops   sync.WaitGroup // the NICs' read loops
}

type instance struct {
	att     *dataplane.Attachment
	id      string // the instance's id
	nic     nic.NIC
	closing atomic.Bool // its loop is meant to end
}

// reconcile brings the attached NICs in line with the cache's local ENIs.
// It runs after every applied batch; an agent's first batch is a full
// snapshot, so by then the cache knows every instance this host still
// runs and the backend can sweep away what a crash left for the others.
func (n *nics) reconcile() {
	want := map[uint64]node.Local{}
	keep := map[string]bool{}
	for _, m := range n.cache.Locals() {
		want[m.ENI] = m
		keep[m.InstanceID] = true
	}
	snap := n.cache.Tables.Load()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for eni, inst := range n.attached {
		if m, ok := want[eni]; !ok || m.IP != inst.att.IP || m.VNI != inst.att.VNI || m.InstanceID != inst.id {
			n.detach(eni, inst)
		}
	}
	for eni, m := range want {
		if inst, ok := n.attached[eni]; ok {
			n.plane.SetTimeouts(inst.att, timeoutsOf(m.Conntrack)) // an instance modify changes them live
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
		port, err := n.backend.Open(nic.Instance{ID: m.InstanceID, Addr: netip.PrefixFrom(m.IP, sn.CIDR.Bits()), Gateway: gw, MTU: n.mtu, Resolver: model.Resolver(vpc.CIDR)})
		if err != nil {
			n.log.Error("cannot create instance NIC", "instance", m.InstanceID, "ip", m.IP, "nic", n.backend, "err", err)
			continue
		}
		att := &dataplane.Attachment{ENI: eni, VNI: m.VNI, IP: m.IP, Subnet: sn.CIDR, Gateway: gw, Resolver: model.Resolver(vpc.CIDR), Port: port}
		n.plane.SetTimeouts(att, timeoutsOf(m.Conntrack))
		if v, ok := port.(hostLinked); ok && n.fast != nil {
			idx, hostMAC, instMAC := v.HostLink()
			if err := n.fast.AddPort(eni, idx, hostMAC, instMAC); err != nil {
				n.log.Error("instance NIC without the fast path: its packets all take the Go story", "instance", m.InstanceID, "err", err)
			}
		}
		n.plane.Attach(att)
		inst := &instance{att: att, id: m.InstanceID, nic: port}
		n.attached[eni] = inst
		n.loops.Add(1)
		go n.serve(inst)
	}
	n.reconcileServices(snap)
	if err := n.backend.Sweep(keep); err != nil {
		n.log.Error("cannot remove what an earlier agent left", "nic", n.backend, "err", err)
	}
}

// serve runs an instance's egress loop until its NIC closes; a NIC that
// fails while still attached cuts its instance off, which is logged.
func (n *nics) serve(inst *instance) {
	defer n.loops.Done()
	err := n.plane.ServePort(inst.att)
	if !inst.closing.Load() {
		n.log.Error("instance NIC stopped reading; the instance is cut off until it is run again", "instance", inst.id, "err", err)
	}
}

// detach takes an instance off the data plane and closes its NIC, which
// ends its loop. Called with n.mu held.
func (n *nics) detach(eni uint64, inst *instance) {
	n.plane.Detach(eni)
	if n.fast != nil {
		n.fast.RemovePort(eni)
	}
	inst.closing.Store(true)
	if err := inst.nic.Close(); err != nil {
		n.log.Error("cannot remove instance NIC", "instance", inst.id, "err", err)
	}
	delete(n.attached, eni)
}

// hostLinked is a NIC with a host-side device the fast path attaches to
// (nic.Veth).
type hostLinked interface {
	HostLink() (ifindex int, hostMAC, instMAC net.HardwareAddr)
}

// find returns the local instance with address ip in vni.
func (n *nics) find(vni uint32, ip netip.Addr) (*instance, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, inst := range n.attached {
		if inst.att.VNI == vni && inst.att.IP == ip {
			return inst, true
		}
	}
	return nil, false
}

// Instance implements node.Instances: the node API acts as local
// instances through their NICs and the data plane.
func (n *nics) Instance(vni uint32, ip netip.Addr) (node.Instance, bool) {
	inst, ok := n.find(vni, ip)
	if !ok {
		return nil, false
	}
	return hostInstance{inst.nic, n.plane, inst.att}, true
}

// closeAll closes every NIC, opens no more, and waits for their loops.
func (n *nics) closeAll() {
	n.mu.Lock()
	n.closed = true
	for eni, inst := range n.attached {
		n.detach(eni, inst)
	}
	for vni, st := range n.services {
		n.stopServices(vni, st)
	}
	n.mu.Unlock()
	n.loops.Wait()
}

// hostInstance is a local instance as node.Instance.
type hostInstance struct {
	nic.NIC
	plane *dataplane.Plane
	att   *dataplane.Attachment
}

func (i hostInstance) Send(pkt []byte) (datapath.Verdict, error) { return i.plane.Send(i.att.ENI, pkt) }

func (i hostInstance) SendTraced(pkt []byte, id uint32) (datapath.Verdict, error) {
	return i.plane.SendTraced(i.att.ENI, pkt, id)
}

func (i hostInstance) TraceEgress(pkt []byte) node.EgressTrace {
	steps, r := i.plane.TraceEgress(i.att, pkt)
	return node.EgressTrace{Steps: steps, Verdict: r.Verdict, NextHop: r.Dst, Payload: r.Payload}
}

// timeoutsOf reads an ENI's connection-tracking timeouts (zero: the
// data plane's defaults).
func timeoutsOf(c *pb.ConntrackTimeouts) dataplane.Timeouts {
	return dataplane.Timeouts{TCPEstablished: c.GetTcpEstablishedSeconds(), UDP: c.GetUdpSeconds(), UDPStream: c.GetUdpStreamSeconds(), Other: c.GetOtherSeconds()}
}
