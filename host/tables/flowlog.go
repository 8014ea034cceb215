package tables

import "time"

// FlowLog is a flow log of a VPC as a host runs it: which of the VPC's
// ENIs it covers, which decisions it keeps, and the file it appends to.
// The tables only hold it; the agent runs one writer per flow log that
// covers an ENI on this host.
type FlowLog struct {
	ID uint64 // fl-…
	// ENI, when set, is the one ENI covered (an instance's flow log);
	// else Subnet, when set, covers the ENIs with an address in that
	// subnet; else the flow log covers every ENI of the VPC.
	ENI, Subnet uint64
	Traffic     FlowTraffic
	// Path is the absolute path of the file the lines are appended to.
	Path string
	// Interval is the aggregation window.
	Interval time.Duration
}

// FlowTraffic is which of the firewall's decisions a flow log keeps.
type FlowTraffic uint8

const (
	FlowAll    FlowTraffic = iota // accepted and rejected
	FlowAccept                    // accepted only
	FlowReject                    // rejected only
)
