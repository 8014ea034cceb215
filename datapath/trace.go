package datapath

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/openvpc/openvpc/packet"
)

// Step is one check of a story, as `openvpc trace` shows it: its name,
// whether the packet passed it, and what the cache said.
type Step struct {
	Name   string
	Pass   bool
	Detail string
}

// Trace records the steps of a story as the story runs them, for `openvpc
// trace`. Stories take a *Trace that is nil on the packet path: there each
// step costs one predictable branch, and nothing is formatted. A step
// records itself where it decides, so a new step is one edit and shows up
// in every trace.
type Trace struct {
	Steps []Step
}

// Step records a step: whether the packet passed it, and what the cache
// said.
func (t *Trace) Step(name string, pass bool, detail string) {
	t.Steps = append(t.Steps, Step{Name: name, Pass: pass, Detail: detail})
}

// Pass records a step the packet passed.
func (t *Trace) Pass(name, format string, args ...any) {
	t.Steps = append(t.Steps, Step{Name: name, Pass: true, Detail: fmt.Sprintf(format, args...)})
}

// Fail records the step that ended the story.
func (t *Trace) Fail(name, format string, args ...any) {
	t.Steps = append(t.Steps, Step{Name: name, Detail: fmt.Sprintf(format, args...)})
}

// Probe builds the packet a trace follows: a TCP SYN, a UDP datagram or
// an ICMP echo request from src to dst (port: the destination port).
func Probe(proto uint8, src, dst netip.Addr, port uint16) ([]byte, error) {
	if !src.Is4() || !dst.Is4() {
		return nil, fmt.Errorf("trace: %v → %v: IPv4 addresses only", src, dst)
	}
	b := make([]byte, 64)
	var n int
	switch proto {
	case packet.ProtoTCP:
		t := packet.TCP(b[packet.IPv4MinSize : packet.IPv4MinSize+packet.TCPMinSize])
		t.Encode(&packet.TCPFields{SrcPort: 40404, DstPort: port, Seq: 1, Flags: 0x02, Window: 65535})
		t.SetChecksum(t.ComputeChecksum(src, dst))
		n = len(t)
	case packet.ProtoUDP:
		u := packet.UDP(b[packet.IPv4MinSize : packet.IPv4MinSize+packet.UDPMinSize+5])
		u.SetSrcPort(40404)
		u.SetDstPort(port)
		u.SetLength(uint16(len(u)))
		copy(u.Payload(), "trace")
		u.SetChecksum(u.ComputeChecksum(src, dst))
		n = len(u)
	case packet.ProtoICMP:
		m := packet.ICMPv4(b[packet.IPv4MinSize : packet.IPv4MinSize+packet.ICMPv4MinSize])
		m.SetType(packet.ICMPv4EchoRequest)
		m.SetIdent(0x7ace)
		m.SetSeq(1)
		m.SetChecksum(m.ComputeChecksum())
		n = len(m)
	default:
		return nil, fmt.Errorf("trace: protocol %d: use tcp, udp or icmp", proto)
	}
	total := packet.IPv4MinSize + n
	packet.IPv4(b).Encode(&packet.IPv4Fields{TotalLen: uint16(total), TTL: packet.DefaultTTL, Protocol: proto, Src: src, Dst: dst})
	return b[:total], nil
}

// TraceReport is what a host or edge saw of a packet under `openvpc trace
// --live`: which story, its verdict, and when.
type TraceReport struct {
	ID      uint32
	Story   string
	Verdict Verdict
	At      time.Time
	Steps   []Step // as the story recorded them on the packet
}

// Traces keeps the reports of recent traced packets. Only packets with the
// TraceID option are reported, so the packet path pays one branch.
type Traces struct {
	mu   sync.Mutex
	ring [256]TraceReport
	next int
}

// Add records a report.
func (t *Traces) Add(r TraceReport) {
	t.mu.Lock()
	t.ring[t.next%len(t.ring)] = r
	t.next++
	t.mu.Unlock()
}

// Get returns the reports of trace id.
func (t *Traces) Get(id uint32) []TraceReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []TraceReport
	for _, r := range t.ring {
		if r.ID == id && !r.At.IsZero() {
			out = append(out, r)
		}
	}
	return out
}
