package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/flowlog"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/node"
)

// flowLogs runs the flow logs that cover ENIs on this host: one
// flowlog.Logger each, appending to the flow log's file. reconcile follows
// the cache after every applied batch (start what now covers a local ENI,
// stop what was deleted or covers none any more, restart what changed);
// run owns the loggers' goroutines and returns once they all stopped.
type flowLogs struct {
	flows func() []datapath.Flow // the data plane's flow records
	cache *node.Cache
	log   *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // run's; nil until run starts
	running map[uint64]*flowLogRun
	// failed are the flow logs whose file could not be opened, as they
	// were then: tried again only once they change.
	failed map[uint64]tables.FlowLog
	wg     sync.WaitGroup // the loggers
}

// flowLogRun is one running logger.
type flowLogRun struct {
	spec   tables.FlowLog
	covers atomic.Pointer[map[uint64]bool] // local ENIs covered, as of the last batch
	cancel context.CancelFunc
	done   chan struct{} // closed when the logger stopped (ended or failed)
}

func newFlowLogs(flows func() []datapath.Flow, cache *node.Cache, log *slog.Logger) *flowLogs {
	return &flowLogs{flows: flows, cache: cache, log: log, running: map[uint64]*flowLogRun{}, failed: map[uint64]tables.FlowLog{}}
}

// run starts the flow logs the cache already names, then stops them all
// when ctx ends (each writes its last window) and waits for them.
func (f *flowLogs) run(ctx context.Context) error {
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
	f.reconcile()
	<-ctx.Done()
	f.mu.Lock()
	for id, r := range f.running {
		r.cancel()
		delete(f.running, id)
	}
	f.mu.Unlock()
	f.wg.Wait()
	return nil
}

// reconcile brings the running loggers in line with the cache.
func (f *flowLogs) reconcile() {
	want := f.wanted()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx == nil || f.ctx.Err() != nil {
		return // run starts them, or has stopped them for good
	}
	for id, r := range f.running {
		if w, ok := want[id]; !ok || w.spec != r.spec {
			r.cancel()
			<-r.done // its last window is written before the batch counts as applied
			delete(f.running, id)
		}
	}
	for id, spec := range f.failed {
		if w, ok := want[id]; !ok || w.spec != spec {
			delete(f.failed, id)
		}
	}
	for id, w := range want {
		if r, ok := f.running[id]; ok {
			r.covers.Store(&w.covers) // a logger that failed stays stopped until its flow log changes
			continue
		}
		if _, ok := f.failed[id]; ok {
			continue
		}
		if r := f.start(w.spec, w.covers); r != nil {
			f.running[id] = r
		} else {
			f.failed[id] = w.spec
		}
	}
}

type wantedLog struct {
	spec   tables.FlowLog
	covers map[uint64]bool
}

// wanted is every flow log that covers an ENI on this host, with those ENIs.
func (f *flowLogs) wanted() map[uint64]*wantedLog {
	snap := f.cache.Tables.Load()
	want := map[uint64]*wantedLog{}
	for _, l := range f.cache.Locals() {
		v, ok := snap.VPC(l.VNI)
		if !ok {
			continue
		}
		for _, fl := range v.FlowLogs {
			if !covers(v, fl, l.Mapping) {
				continue
			}
			w := want[fl.ID]
			if w == nil {
				w = &wantedLog{spec: fl, covers: map[uint64]bool{}}
				want[fl.ID] = w
			}
			w.covers[l.ENI] = true
		}
	}
	return want
}

// covers reports whether flow log fl of VPC v covers the ENI of m.
func covers(v *tables.VPC, fl tables.FlowLog, m tables.Mapping) bool {
	switch {
	case fl.ENI != 0:
		return m.ENI == fl.ENI
	case fl.Subnet != 0:
		sn, ok := v.Subnet(m.IP)
		return ok && sn.ID == fl.Subnet
	}
	return true
}

var flowTraffic = map[tables.FlowTraffic]flowlog.Traffic{
	tables.FlowAll: flowlog.All, tables.FlowAccept: flowlog.Accept, tables.FlowReject: flowlog.Reject,
}

// start opens the flow log's file and starts its logger; nil if it
// cannot (logged once: the flow log is tried again when it changes).
func (f *flowLogs) start(spec tables.FlowLog, covered map[uint64]bool) *flowLogRun {
	id := model.FormatID(model.KindFlowLog, spec.ID)
	file, err := os.OpenFile(spec.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		f.log.Error("flow log: cannot open its destination", "flow_log", id, "err", err)
		return nil
	}
	r := &flowLogRun{spec: spec, done: make(chan struct{})}
	r.covers.Store(&covered)
	l, err := flowlog.New(flowlog.Config{
		Flows:    f.flows,
		ENI:      f.localENI,
		Covers:   func(eni uint64) bool { return (*r.covers.Load())[eni] },
		Traffic:  flowTraffic[spec.Traffic],
		Interval: spec.Interval,
		Out:      &lineWriter{w: file},
	})
	if err != nil {
		file.Close()
		f.log.Error("flow log refused", "flow_log", id, "err", err)
		return nil
	}
	ctx, cancel := context.WithCancel(f.ctx)
	r.cancel = cancel
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(r.done)
		defer file.Close()
		if err := l.Run(ctx); err != nil {
			f.log.Error("flow log stopped: cannot write its destination", "flow_log", id, "path", spec.Path, "err", err)
		}
	}()
	f.log.Info("flow log started", "flow_log", id, "path", spec.Path, "interval", spec.Interval)
	return r
}

// localENI is the ENI on this host with address ip in VPC vni.
func (f *flowLogs) localENI(vni uint32, ip netip.Addr) (uint64, bool) {
	var m tables.Mapping
	if !f.cache.Tables.Load().Lookup(vni, ip, &m) || !m.Local {
		return 0, false
	}
	return m.ENI, true
}

// lineWriter writes only whole lines, each write one or more of them: the
// file may be appended to by other hosts' loggers too (O_APPEND), and a
// line must never be split between two writes.
type lineWriter struct {
	w       io.Writer
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	end := bytes.LastIndexByte(w.partial, '\n')
	if end < 0 {
		return len(p), nil
	}
	_, err := w.w.Write(w.partial[:end+1])
	w.partial = append(w.partial[:0], w.partial[end+1:]...)
	return len(p), err
}
