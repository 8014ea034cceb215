package node

import "github.com/prometheus/client_golang/prometheus"

// Collector exports what every node has, whatever its role: its cache's
// size and revision, and the security events it could not report. Every
// series carries a host label, so several nodes can share a registry.
func (n *Node) Collector() prometheus.Collector {
	l := prometheus.Labels{"host": n.HostID}
	return &collector{
		n:        n,
		mappings: prometheus.NewDesc("openvpc_host_cache_mappings", "Mappings in the host's cache.", nil, l),
		revision: prometheus.NewDesc("openvpc_host_cache_revision", "The mapping revision the host's cache is at.", nil, l),
		dropped:  prometheus.NewDesc("openvpc_host_events_dropped_total", "Security events not reported because the reporter's queue was full.", nil, l),
	}
}

type collector struct {
	n                           *Node
	mappings, revision, dropped *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.mappings, c.revision, c.dropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.n.Cache.Tables.Load()
	ch <- prometheus.MustNewConstMetric(c.mappings, prometheus.GaugeValue, float64(snap.Len()))
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(snap.Revision()))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.n.Reporter.Dropped.Load()))
}
