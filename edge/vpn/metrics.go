package vpn

import (
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// tunnelStat is one tunnel as the metrics show it.
type tunnelStat struct {
	vpn, tunnel   string
	up            bool
	in, out, down uint64
	// bgp: a BGP connection's tunnel; established and learned its session.
	bgp, established bool
	learned          int
}

var (
	upDesc    = prometheus.NewDesc("openvpc_vpn_tunnel_up", "1 while a VPN tunnel on this edge is up (IKE and a child SA established), else 0.", []string{"vpn", "tunnel"}, nil)
	bytesDesc = prometheus.NewDesc("openvpc_vpn_tunnel_bytes_total", "Bytes through a VPN tunnel's current child SA, by direction (in: from the site).", []string{"vpn", "tunnel", "direction"}, nil)
	downDesc  = prometheus.NewDesc("openvpc_vpn_tunnel_down_total", "Times a VPN tunnel on this edge went from up to down.", []string{"vpn", "tunnel"}, nil)
	bgpDesc   = prometheus.NewDesc("openvpc_vpn_bgp_established", "1 while a BGP VPN tunnel's session is established, else 0.", []string{"vpn", "tunnel"}, nil)
	prefDesc  = prometheus.NewDesc("openvpc_vpn_bgp_learned_prefixes", "Prefixes a BGP VPN tunnel's session learned from the site (in effect: usable ones, while established).", []string{"vpn", "tunnel"}, nil)
)

// Describe and Collect make the function a Prometheus collector; the
// edge's collector includes it.
func (f *Function) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- bytesDesc
	ch <- downDesc
	ch <- bgpDesc
	ch <- prefDesc
}

func (f *Function) Collect(ch chan<- prometheus.Metric) {
	for _, s := range *f.stats.Load() {
		up := 0.0
		if s.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, s.vpn, s.tunnel)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(s.in), s.vpn, s.tunnel, "in")
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(s.out), s.vpn, s.tunnel, "out")
		ch <- prometheus.MustNewConstMetric(downDesc, prometheus.CounterValue, float64(s.down), s.vpn, s.tunnel)
		if s.bgp {
			est := 0.0
			if s.established {
				est = 1
			}
			ch <- prometheus.MustNewConstMetric(bgpDesc, prometheus.GaugeValue, est, s.vpn, s.tunnel)
			ch <- prometheus.MustNewConstMetric(prefDesc, prometheus.GaugeValue, float64(s.learned), s.vpn, s.tunnel)
		}
	}
}

// stat is tu's line after a poll that gave st.
func (tu *tunnel) stat(st *pb.TunnelStatus) tunnelStat {
	up := st.GetState() == pb.TunnelState_TUNNEL_STATE_UP
	if tu.wasUp && !up {
		tu.downs++
	}
	tu.wasUp = up
	return tunnelStat{vpn: tu.et.VpnConnectionId, tunnel: tu.key[len(tu.key)-1:], up: up, in: st.GetBytesIn(), out: st.GetBytesOut(), down: tu.downs,
		bgp: st.GetBgp() != nil, established: carrying(st), learned: len(st.GetBgp().GetLearned())}
}
