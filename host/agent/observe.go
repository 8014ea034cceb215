package agent

import (
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/dataplane"
)

// Observed is a data plane as the agent's API shows it: its flow records,
// its sightings of live-traced packets, and an explanation of what it does
// with a packet arriving from the wire. The agent's own data plane is one;
// an edge's is another (see Config.Observe).
type Observed interface {
	FlowList() []datapath.Flow
	TraceReports(id uint32) []datapath.TraceReport
	TraceArrival(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict, string)
}

// hostPlane is a host's data plane as Observed.
type hostPlane struct{ *dataplane.Plane }

func (p hostPlane) FlowList() []datapath.Flow { return p.Flows.List() }

func (p hostPlane) TraceReports(id uint32) []datapath.TraceReport { return p.Traces.Get(id) }

func (p hostPlane) TraceArrival(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict, string) {
	steps, v := p.TraceIngress(outerSrc, payload)
	return steps, v, "ingress"
}

// observed is the data plane the API shows, or nil.
func (a *Agent) observed() Observed {
	if a.Observe != nil {
		return a.Observe
	}
	if a.Plane != nil {
		return hostPlane{a.Plane}
	}
	return nil
}
