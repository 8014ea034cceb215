package edge

import (
	"fmt"
	"net/netip"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
)

// outboundSteps are the outbound story's checks, in order, and the
// verdicts each can end it with.
var outboundSteps = []struct {
	name  string
	stops []datapath.Verdict
}{
	{"parse", []datapath.Verdict{datapath.Malformed}},
	{"known host", []datapath.Verdict{datapath.UnknownSender}},
	{"sender owns the source", []datapath.Verdict{datapath.SenderMismatch}},
	{"internet gateway", []datapath.Verdict{datapath.NoRoute}},
	{"Elastic IP", []datapath.Verdict{datapath.NoPublicIP}},
	{"translate and send out", nil},
}

// TraceOutbound runs the outbound story on payload (Geneve onward) as if
// it had come from outerSrc — on the live cache, sending nothing, raising
// no event — and explains each step.
func (x *Edge) TraceOutbound(outerSrc netip.Addr, payload []byte) ([]datapath.Step, datapath.Verdict) {
	snap := x.tables.Load()
	q := &Edge{cfg: x.cfg, tables: x.tables}
	q.cfg.Events = func(datapath.Event) {}
	var out packet.IPv4
	v := q.Outbound(snap, outerSrc, append([]byte(nil), payload...), &out)
	var e packet.Encap
	parsed := packet.ParseGenevePayload(payload, &e)
	var steps []datapath.Step
	for _, s := range outboundSteps {
		stopped := false
		for _, sv := range s.stops {
			stopped = stopped || v == sv
		}
		detail := ""
		if parsed {
			detail = explainOutbound(snap, outerSrc, &e, s.name, v, out)
		}
		steps = append(steps, datapath.Step{Name: s.name, Pass: !stopped, Detail: detail})
		if stopped {
			break
		}
	}
	return steps, v
}

func explainOutbound(snap *tables.Snapshot, outerSrc netip.Addr, e *packet.Encap, step string, v datapath.Verdict, out packet.IPv4) string {
	in := e.Inner
	switch step {
	case "parse":
		return fmt.Sprintf("Geneve VNI %d, SourceVPC %d, inner %v → %v", e.VNI, e.Options.SourceVNI, in.Src(), in.Dst())
	case "known host":
		if h, ok := snap.Host(outerSrc); ok {
			return fmt.Sprintf("%v is a registered %s", outerSrc, h.Role)
		}
		return fmt.Sprintf("%v is no host this edge knows", outerSrc)
	case "sender owns the source":
		if v == datapath.SenderMismatch {
			return fmt.Sprintf("%v in VPC %d does not live on %v", in.Src(), e.VNI, outerSrc)
		}
		return fmt.Sprintf("%v lives on %v", in.Src(), outerSrc)
	case "internet gateway":
		vpc, ok := snap.VPC(e.VNI)
		switch {
		case !ok || vpc.InternetGateway == 0:
			return fmt.Sprintf("VPC %d has no internet gateway", e.VNI)
		case vpc.CIDR.Contains(in.Dst()):
			return fmt.Sprintf("%v is inside the VPC, not on the internet", in.Dst())
		}
		return fmt.Sprintf("VPC %d has igw-%016x", e.VNI, vpc.InternetGateway)
	case "Elastic IP":
		if pub, ok := snap.PublicIP(e.VNI, in.Src()); ok {
			return fmt.Sprintf("%v has Elastic IP %v", in.Src(), pub)
		}
		return fmt.Sprintf("%v has no Elastic IP: it cannot reach the internet", in.Src())
	case "translate and send out":
		return fmt.Sprintf("source %v → %v (checksums updated), out of the outside port to %v", in.Src(), out.Src(), out.Dst())
	}
	return ""
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
