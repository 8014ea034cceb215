package edge

import (
	"fmt"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// TraceOutbound runs the outbound story on payload (Geneve onward) as if
// it had come from outerSrc — on the live cache, with a tracer attached,
// sending nothing, raising no event, counting nothing — and returns the
// steps it took.
func (x *Edge) TraceOutbound(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict) {
	q := &Edge{cfg: x.cfg, tables: x.tables, fns: x.fns, targets: x.targets}
	q.cfg.Events = func(datapath.Event) {}
	var e packet.Encap
	var out packet.IPv4
	var t datapath.Trace
	var rel relayed
	v, _ := q.outbound(x.tables.Load(), outerSrc, append([]byte(nil), payload...), &e, &out, &rel, nil, &t)
	return t.Steps, v
}

// What each outbound step says in a trace.

func explainParse(e *packet.Encap, ok bool) string {
	if !ok {
		return "not a Geneve packet of ours with a whole IPv4 packet inside"
	}
	return fmt.Sprintf("Geneve VNI %d, SourceVPC %d, inner %v → %v", e.VNI, e.Options.SourceVNI, e.Inner.Src(), e.Inner.Dst())
}

func explainSender(snap *tables.Snapshot, outerSrc netip.Addr, ok bool) string {
	if h, known := snap.Sender(outerSrc); known {
		if !ok {
			return fmt.Sprintf("%v is a registered %s, not a host: only hosts send edges their instances' traffic", outerSrc, h.Role)
		}
		return fmt.Sprintf("%v is a registered %s", outerSrc, h.Role)
	}
	return fmt.Sprintf("%v is no host this edge knows", outerSrc)
}

func explainOwner(e *packet.Encap, outerSrc netip.Addr, ok bool) string {
	if !ok {
		return fmt.Sprintf("%v in VPC %d does not live on %v", e.Inner.Src(), e.VNI, outerSrc)
	}
	return fmt.Sprintf("%v lives on %v", e.Inner.Src(), outerSrc)
}

func explainFunction(e *packet.Encap, fn Function) string {
	if !e.Options.HasTarget {
		return "the packet names no edge function"
	}
	target := tables.Target{Kind: tables.TargetKind(e.Options.Function), ID: e.Options.Target}
	if fn == nil {
		return fmt.Sprintf("this edge does not serve %v", target)
	}
	return fmt.Sprintf("for %v, served here", target)
}

// FlowList returns the edge's flow records.
func (x *Edge) FlowList() []datapath.Flow { return x.Flows.List() }

// TraceReports returns what the edge saw of trace id.
func (x *Edge) TraceReports(id uint32) []datapath.TraceReport { return x.Traces.Get(id) }

// TraceArrival explains what the edge does with a packet from a host.
func (x *Edge) TraceArrival(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict, string) {
	steps, v := x.TraceOutbound(outerSrc, payload)
	return steps, v, "edge outbound"
}
