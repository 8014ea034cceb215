package edge

import (
	"github.com/openvpc/openvpc/datapath"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the edge's packet verdicts by direction (out: hosts to
// the internet, in: the internet to hosts), next to its node's cache and
// event metrics.
func (n *Node) Collector() prometheus.Collector {
	l := prometheus.Labels{"edge": n.HostID}
	return &collector{n: n, node: n.Node.Collector(),
		packets: prometheus.NewDesc("openvpc_edge_packets_total", "Packets handled by the edge, by direction and verdict (drop reasons included).", []string{"direction", "verdict"}, l)}
}

type collector struct {
	n       *Node
	node    prometheus.Collector
	packets *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.node.Describe(ch)
	ch <- c.packets
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.node.Collect(ch)
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
}
