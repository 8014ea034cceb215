// Package flowlog writes VPC flow logs in AWS's default format (version 2)
// from a host's flow records: one line per network interface, flow and
// capture window, with that window's packets and bytes and whether the
// firewall accepted or rejected them — the format the tools users already
// have parse.
//
//	version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
package flowlog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/openvpc/openvpc/datapath"
)

// Traffic is which flows a log keeps.
type Traffic uint8

const (
	All    Traffic = iota // accepted and rejected
	Accept                // what the firewall let through
	Reject                // what security groups and network ACLs refused
)

// ParseTraffic reads AWS's traffic types: ACCEPT, REJECT or ALL (any case).
func ParseTraffic(s string) (Traffic, error) {
	switch s {
	case "all", "ALL", "":
		return All, nil
	case "accept", "ACCEPT":
		return Accept, nil
	case "reject", "REJECT":
		return Reject, nil
	}
	return 0, fmt.Errorf("flowlog: traffic type %q: use accept, reject or all", s)
}

// Config is one flow log on one host.
type Config struct {
	// Flows returns the host's flow records (datapath.Flows.List).
	Flows func() []datapath.Flow
	// ENI says which local ENI has address ip in VPC vni: a flow is logged
	// for its local end.
	ENI func(vni uint32, ip netip.Addr) (eni uint64, ok bool)
	// Covers says whether the log covers an ENI (its instance, subnet or VPC).
	Covers func(eni uint64) bool
	// Traffic is which flows it keeps.
	Traffic Traffic
	// Interval is the aggregation window: default 60 s, at least 1 s.
	Interval time.Duration
	// Account is the account-id field (default 000000000000).
	Account string
	// Out receives the lines.
	Out io.Writer
}

// Logger writes one flow log.
type Logger struct {
	cfg  Config
	last map[key]counts // what the previous windows already reported
}

type key struct {
	datapath.FlowKey
	datapath.Direction
}

type counts struct{ packets, bytes uint64 }

// New checks cfg and applies its defaults.
func New(cfg Config) (*Logger, error) {
	if cfg.Flows == nil || cfg.ENI == nil || cfg.Out == nil {
		return nil, errors.New("flowlog: a log needs flow records, an ENI lookup and an output")
	}
	if cfg.Covers == nil {
		cfg.Covers = func(uint64) bool { return true }
	}
	if cfg.Interval == 0 {
		cfg.Interval = 60 * time.Second
	}
	if cfg.Interval < time.Second {
		return nil, fmt.Errorf("flowlog: aggregation interval %v: at least 1s", cfg.Interval)
	}
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
	return &Logger{cfg: cfg, last: map[key]counts{}}, nil
}

// Run writes a window every Interval until ctx ends, then the last one.
func (l *Logger) Run(ctx context.Context) error {
	tick := time.NewTicker(l.cfg.Interval)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return l.Flush(start, time.Now())
		case now := <-tick.C:
			if err := l.Flush(start, now); err != nil {
				return err
			}
			start = now
		}
	}
}

// Flush writes the lines of the window from start to end: every flow of a
// covered ENI with packets since the previous window.
func (l *Logger) Flush(start, end time.Time) error {
	w := bufio.NewWriter(l.cfg.Out)
	seen := map[key]bool{}
	for _, f := range l.cfg.Flows() {
		action, ok := actionOf(f.Verdict)
		if !ok || l.cfg.Traffic == Accept && action != "ACCEPT" || l.cfg.Traffic == Reject && action != "REJECT" {
			continue
		}
		local := f.Src
		if f.Direction == datapath.Ingress {
			local = f.Dst
		}
		eni, ok := l.cfg.ENI(f.VNI, local)
		if !ok || !l.cfg.Covers(eni) {
			continue
		}
		k := key{f.FlowKey, f.Direction}
		seen[k] = true
		prev := l.last[k]
		if f.Packets < prev.packets { // the record was evicted and began again
			prev = counts{}
		}
		if f.Packets == prev.packets {
			continue
		}
		l.last[k] = counts{f.Packets, f.Bytes}
		fmt.Fprintf(w, "2 %s eni-%016x %v %v %d %d %d %d %d %d %d %s OK\n", l.cfg.Account, eni, f.Src, f.Dst, f.SrcPort, f.DstPort,
			f.Proto, f.Packets-prev.packets, f.Bytes-prev.bytes, start.Unix(), end.Unix(), action)
	}
	for k := range l.last {
		if !seen[k] {
			delete(l.last, k) // gone from the records: forget it
		}
	}
	return w.Flush()
}

// actionOf is a verdict as a flow log says it: the firewall's decisions
// only (other drops are not the firewall's, and AWS logs them nowhere;
// nor does it log traffic to its resolver or metadata: to-host-service).
func actionOf(v datapath.Verdict) (string, bool) {
	switch v {
	case datapath.Forwarded, datapath.Delivered:
		return "ACCEPT", true
	case datapath.SGDenied, datapath.ACLDenied, datapath.ConntrackFull:
		return "REJECT", true
	}
	return "", false
}
