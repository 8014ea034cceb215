package edge

import (
	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the edge's packet verdicts by direction (out: hosts to
// the internet, in: the internet to hosts), next to its node's cache and
// event metrics.
func (n *Node) Collector() prometheus.Collector {
	l := prometheus.Labels{"edge": n.HostID}
	return &collector{n: n, node: n.Node.Collector(),
		packets:   prometheus.NewDesc("openvpc_edge_packets_total", "Packets handled by the edge, by direction and verdict (drop reasons included).", []string{"direction", "verdict"}, l),
		functions: prometheus.NewDesc("openvpc_edge_function_packets_total", "Packets hosts sent the edge, by the edge function they named, served here or not.", []string{"function"}, l),
		readErrs:  prometheus.NewDesc("openvpc_edge_read_errors_total", "Transient read errors of the wire and outside ports; the loops read on.", nil, l)}
}

type collector struct {
	n                            *Node
	node                         prometheus.Collector
	packets, functions, readErrs *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.node.Describe(ch)
	for _, f := range c.n.Edge.cfg.Functions {
		if fc, ok := f.(prometheus.Collector); ok {
			fc.Describe(ch) // a function's own metrics (VPN tunnels)
		}
	}
	ch <- c.packets
	ch <- c.functions
	ch <- c.readErrs
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.node.Collect(ch)
	for _, f := range c.n.Edge.cfg.Functions {
		if fc, ok := f.(prometheus.Collector); ok {
			fc.Collect(ch)
		}
	}
	for _, d := range []struct {
		name string
		c    *datapath.Counters
	}{{"out", &c.n.Edge.Out}, {"in", &c.n.Edge.In}} {
		for _, v := range datapath.Verdicts() {
			if n := d.c.Get(v); n > 0 {
				ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(n), d.name, v.String())
			}
		}
	}
	for k := range c.n.Edge.Received {
		if n := c.n.Edge.Received[k].Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(c.functions, prometheus.CounterValue, float64(n), tables.TargetKind(k).String())
		}
	}
	ch <- prometheus.MustNewConstMetric(c.readErrs, prometheus.CounterValue, float64(c.n.Edge.ReadErrors.Load()))
}
