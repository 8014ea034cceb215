package dx

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the ports' frame counters and each VIF's BGP state.
func (c *Controller) Collector() prometheus.Collector {
	return &collector{c: c,
		frames:   prometheus.NewDesc("openvpc_dx_frames_total", "Frames on a Direct Connect port: in (tagged, to a VIF), out (from a VIF, tagged), and the dropped: untagged, unknown_vlan (no VIF has the VLAN), error, and local (untagged frames of the edge's own stack, kept off the wire).", []string{"port", "result"}, nil),
		session:  prometheus.NewDesc("openvpc_dx_bgp_established", "1 when the VIF's BGP session is established.", []string{"vif"}, nil),
		received: prometheus.NewDesc("openvpc_dx_bgp_prefixes_received", "Prefixes the customer's router announces on the VIF.", []string{"vif"}, nil),
		flaps:    prometheus.NewDesc("openvpc_dx_bgp_flaps_total", "Times the VIF's session left established.", []string{"vif"}, nil),
	}
}

type collector struct {
	c                                *Controller
	frames, session, received, flaps *prometheus.Desc
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.frames
	ch <- m.session
	ch <- m.received
	ch <- m.flaps
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	for port, f := range m.c.ports {
		k := f.Counters()
		for _, x := range []struct {
			result string
			n      uint64
		}{{"in", k.In}, {"out", k.Out}, {"untagged", k.Untagged}, {"unknown_vlan", k.UnknownVLAN}, {"error", k.Errors}, {"local", k.Local}} {
			ch <- prometheus.MustNewConstMetric(m.frames, prometheus.CounterValue, float64(x.n), port, x.result)
		}
		for id, st := range f.Statuses() {
			up := 0.0
			if st.BGP.State == "established" {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(m.session, prometheus.GaugeValue, up, id)
			ch <- prometheus.MustNewConstMetric(m.received, prometheus.GaugeValue, float64(len(st.BGP.Learned)), id)
			ch <- prometheus.MustNewConstMetric(m.flaps, prometheus.CounterValue, float64(st.BGP.Flaps), id)
		}
	}
}
