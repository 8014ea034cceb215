package agent

import (
	"github.com/openvpc/openvpc/datapath"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the agent's counters for Prometheus: packets per
// verdict, underlay traffic, cache size and revision, dropped events. Every
// series carries a host label, so several agents can share a registry.
func (a *Agent) Collector() prometheus.Collector {
	l := prometheus.Labels{"host": a.HostID}
	return &collector{
		a:        a,
		packets:  prometheus.NewDesc("openvpc_host_packets_total", "Packets handled by the host's data plane, by verdict (drop reasons included).", []string{"verdict"}, l),
		wire:     prometheus.NewDesc("openvpc_host_underlay_datagrams_total", "Datagrams sent and received on the underlay.", []string{"direction"}, l),
		wireErr:  prometheus.NewDesc("openvpc_host_underlay_errors_total", "Underlay read and write errors.", []string{"direction"}, l),
		mappings: prometheus.NewDesc("openvpc_host_cache_mappings", "Mappings in the host's cache.", nil, l),
		revision: prometheus.NewDesc("openvpc_host_cache_revision", "The mapping revision the host's cache is at.", nil, l),
		dropped:  prometheus.NewDesc("openvpc_host_events_dropped_total", "Security events not reported because the reporter's queue was full.", nil, l),
	}
}

type collector struct {
	a                                                   *Agent
	packets, wire, wireErr, mappings, revision, dropped *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.wire, c.wireErr, c.mappings, c.revision, c.dropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	snap := a.Cache.Tables.Load()
	ch <- prometheus.MustNewConstMetric(c.mappings, prometheus.GaugeValue, float64(snap.Len()))
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(snap.Revision()))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(a.Reporter.Dropped.Load()))
	if a.Plane == nil {
		return
	}
	for _, v := range datapath.Verdicts() {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(a.Plane.Counters.Get(v)), v.String())
	}
	st := a.Wire.Stats()
	ch <- prometheus.MustNewConstMetric(c.wire, prometheus.CounterValue, float64(st.ReadDatagrams), "in")
	ch <- prometheus.MustNewConstMetric(c.wire, prometheus.CounterValue, float64(st.WriteDatagrams), "out")
	ch <- prometheus.MustNewConstMetric(c.wireErr, prometheus.CounterValue, float64(st.ReadErrors), "in")
	ch <- prometheus.MustNewConstMetric(c.wireErr, prometheus.CounterValue, float64(st.WriteErrors), "out")
}
