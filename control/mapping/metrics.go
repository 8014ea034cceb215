package mapping

import "github.com/prometheus/client_golang/prometheus"

// histogram is the propagation latency: instance created → every host in
// scope acknowledged its mapping.
type histogram = prometheus.Histogram

func newHistogram() histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "openvpc_mapping_propagation_seconds",
		Help:    "Time from an instance's creation until every host in its VPC's scope acknowledged its mapping.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
}

// Collectors are the service's metrics, for the server's /metrics.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.latency, s.events.seen, s.events.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "openvpc_mapping_subscribers",
		Help: "Hosts and edges with a mailbox on this server.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.boxes))
	})}
}
