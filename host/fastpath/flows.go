package fastpath

import (
	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/dataplane"
	"github.com/openvpc/openvpc/packet"
)

// flowMerger adds what the entries counted to the data plane's flow
// records (`openvpc flows`, flow logs), so a flow the kernel carries is
// listed with its packets and bytes as if the Go story had seen them.
type flowMerger struct {
	egress, ingress *datapath.FlowTable
	egSeen          map[fastpathEgressKey][2]uint64
	inSeen          map[fastpathIngressKey][2]uint64
	buf             []byte
}

func newFlowMerger(p *dataplane.Plane) *flowMerger {
	return &flowMerger{egress: p.Flows.Table(datapath.Egress), ingress: p.Flows.Table(datapath.Ingress),
		egSeen: map[fastpathEgressKey][2]uint64{}, inSeen: map[fastpathIngressKey][2]uint64{}, buf: make([]byte, 64)}
}

func (m *flowMerger) release(p *dataplane.Plane) {
	p.Flows.Release(m.egress)
	p.Flows.Release(m.ingress)
}

// delta is what an entry counted since the last merge; an entry installed
// afresh starts from zero again.
func delta(now, seen [2]uint64) (packets, bytes uint64) {
	if now[0] < seen[0] || now[1] < seen[1] {
		return now[0], now[1]
	}
	return now[0] - seen[0], now[1] - seen[1]
}

// merge walks both maps once.
func (m *flowMerger) merge(f *FastPath, p *dataplane.Plane) {
	eniOf := map[uint32]uint64{}
	for eni, pt := range *f.ports.Load() {
		eniOf[pt.ifindex] = eni
	}
	egSeen := make(map[fastpathEgressKey][2]uint64, len(m.egSeen))
	var ek fastpathEgressKey
	var ee fastpathEgressEntry
	m.egress.Begin()
	for it := f.objs.EgressFlows.Iterate(); it.Next(&ek, &ee); {
		now := [2]uint64{ee.Packets, ee.Bytes}
		egSeen[ek] = now
		n, b := delta(now, m.egSeen[ek])
		att, ok := p.Attachment(eniOf[ek.Ifindex])
		if n == 0 || !ok {
			continue
		}
		v := datapath.Forwarded
		if ee.Action == actDeliver {
			v = datapath.Delivered
		}
		l := synthetic(m.buf, ek.Saddr, ek.Daddr, ek.Sport, ek.Dport, ek.Proto)
		m.egress.RecordCount(datapath.NewFlowID(att.VNI, packet.IPv4(m.buf[:l])), n, b, v)
	}
	m.egress.End()
	m.egSeen = egSeen

	inSeen := make(map[fastpathIngressKey][2]uint64, len(m.inSeen))
	var ik fastpathIngressKey
	var ie fastpathIngressEntry
	m.ingress.Begin()
	for it := f.objs.IngressFlows.Iterate(); it.Next(&ik, &ie); {
		now := [2]uint64{ie.Packets, ie.Bytes}
		inSeen[ik] = now
		n, b := delta(now, m.inSeen[ik])
		if n == 0 {
			continue
		}
		l := synthetic(m.buf, ik.Saddr, ik.Daddr, ik.Sport, ik.Dport, ik.Proto)
		m.ingress.RecordCount(datapath.NewFlowID(ik.Vni, packet.IPv4(m.buf[:l])), n, b, datapath.Delivered)
	}
	m.ingress.End()
	m.inSeen = inSeen
}
