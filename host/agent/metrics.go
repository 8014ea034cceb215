package agent

import (
	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/fastpath"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the agent's counters for Prometheus: the node's (cache
// size and revision, dropped events), packets per verdict and underlay
// traffic. Every series carries a host label, so several agents can share
// a registry.
func (a *Agent) Collector() prometheus.Collector {
	l := prometheus.Labels{"host": a.HostID}
	return &collector{
		a:       a,
		node:    a.Node.Collector(),
		packets: prometheus.NewDesc("openvpc_host_packets_total", "Packets handled by the host's data plane, by verdict (drop reasons included).", []string{"verdict"}, l),
		wire:    prometheus.NewDesc("openvpc_host_underlay_datagrams_total", "Datagrams sent and received on the underlay.", []string{"direction"}, l),
		wireErr: prometheus.NewDesc("openvpc_host_underlay_errors_total", "Underlay read and write errors.", []string{"direction"}, l),
		dns:     prometheus.NewDesc("openvpc_host_dns_queries_total", "Queries to the host's VPC resolvers: all handled, answered with records, NXDOMAIN, forwarded upstream, and malformed (dropped).", []string{"result"}, l),
		fast:    prometheus.NewDesc("openvpc_host_fastpath_total", "The kernel fast path: packets it replayed (egress_forwarded, egress_delivered, ingress_delivered; also counted in openvpc_host_packets_total), misses, entries found stale (an older snapshot) or expired, packets it never replays (bypass), entries installed (and not installed for want of the next hop's neighbour entry), and at snapshot swaps entries re-decided the same (revalidated) or removed (invalidated), and entries deleted because the Go story decided a packet of theirs differently (forgotten; a flow the cache may not replay is deleted once, not per packet).", []string{"event"}, l),
	}
}

type collector struct {
	a                      *Agent
	node                   prometheus.Collector
	packets, wire, wireErr *prometheus.Desc
	dns, fast              *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.node.Describe(ch)
	for _, d := range []*prometheus.Desc{c.packets, c.wire, c.wireErr, c.dns, c.fast} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.node.Collect(ch)
	a := c.a
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
	d := a.nics.dnsCounts()
	for _, x := range []struct {
		n    uint64
		name string
	}{{d.Queries, "all"}, {d.Answered, "answered"}, {d.NXDomain, "nxdomain"}, {d.Forwarded, "forwarded"}, {d.Malformed, "malformed"}} {
		ch <- prometheus.MustNewConstMetric(c.dns, prometheus.CounterValue, float64(x.n), x.name)
	}
	if a.fast != nil {
		if fc, err := a.fast.Counters(); err == nil {
			for i, n := range fc {
				ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(n), fastpath.CounterNames[i])
			}
		}
		ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(a.fast.Installs.Load()), "installed")
		ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(a.fast.Skipped.Load()), "not_installed_no_neighbour")
		ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(a.fast.Revalidated.Load()), "revalidated")
		ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(a.fast.Invalidated.Load()), "invalidated")
		ch <- prometheus.MustNewConstMetric(c.fast, prometheus.CounterValue, float64(a.fast.Forgets.Load()), "forgotten")
	}
}
