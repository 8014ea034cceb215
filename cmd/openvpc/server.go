package main

import (
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openvpc/openvpc/control/server"
	"github.com/openvpc/openvpc/pki"
)

func serverCmd() *cobra.Command {
	cfg := server.DefaultConfig()
	var endpoints, level string
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the API and Mapping Service (state in embedded etcd, or an external cluster)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(level)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.MetricsBestEffort = !cmd.Flags().Changed("metrics")
			tlsSANs(&cfg)
			if endpoints != "" {
				cfg.Store.Endpoints = strings.Split(endpoints, ",")
			}
			s, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			log.Info("ready", "api", s.URL(), "metrics", s.MetricsURL())
			<-cmd.Context().Done()
			log.Info("shutting down")
			return s.Close()
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "API address (gRPC, gRPC-Web and Connect on one port)")
	addMetricsFlag(f, &cfg)
	f.StringVar(&cfg.Store.DataDir, "data-dir", cfg.Store.DataDir, "where the embedded etcd keeps state")
	f.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (instead of the embedded one)")
	f.StringVar(&cfg.Store.Prefix, "etcd-prefix", cfg.Store.Prefix, "key prefix in etcd, so clouds can share a cluster")
	f.Var(newPrefixList(&cfg.Store.EIPPools), "eip-pool", "public range Elastic IPs are allocated from, e.g. 198.51.100.0/24 (repeatable)")
	f.Var(newPrefixList(&cfg.Store.VPNPools), "vpn-pool", "public range VPN tunnels' outside addresses are allocated from (repeatable; default: the Elastic IP pools)")
	f.StringVar(&cfg.DNSUpstream, "dns-upstream", "", "a resolver (ip or ip:port) the hosts' VPC resolvers forward other names to, caching answers for their TTLs; none: only private names are answered")
	f.DurationVar(&cfg.EdgeTimeout, "edge-timeout", 15*time.Second, "how long an edge may miss its heartbeats before hosts stop sending it flows")
	addTrustFlags(f, &cfg)
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return c
}

// DefaultMetrics is where the server serves Prometheus metrics unless told
// otherwise: loopback, apart from the API, as Prometheus exporters do.
const DefaultMetrics = "127.0.0.1:7072"

// addMetricsFlag adds --metrics.
func addMetricsFlag(f *pflag.FlagSet, cfg *server.Config) {
	cfg.Metrics = DefaultMetrics
	f.StringVar(&cfg.Metrics, "metrics", cfg.Metrics, "serve Prometheus metrics (plain HTTP, /metrics) on this address, apart from the API ('' for none); they name every host and event reason, so keep it private")
}

// sans holds --tls-san values until they are sorted into names and IPs.
var sans []string

// addTrustFlags adds the flags of the server's trust settings.
func addTrustFlags(f *pflag.FlagSet, cfg *server.Config) {
	f.BoolVar(&cfg.Trust.Insecure, "insecure-loopback", false, "serve without TLS or authentication, for development; refused unless --listen is a loopback address")
	f.StringVar(&cfg.Trust.CACertFile, "ca-cert", "", "PEM CA certificate to issue certificates with (with --ca-key); default: the CA kept in etcd, made on first start")
	f.StringVar(&cfg.Trust.CAKeyFile, "ca-key", "", "PEM ECDSA P-256 key of --ca-cert")
	f.DurationVar(&cfg.Trust.CertTTL, "cert-ttl", pki.DefaultCertTTL, "lifetime of host, edge and service node certificates (they renew at two thirds of it)")
	f.StringVar(&cfg.AdminConfig, "admin-config", pki.DefaultConfigPath(), "where to write a client config with an admin token when it holds none for this cloud ('' for nowhere)")
	f.StringSliceVar(&sans, "tls-san", nil, "extra DNS names or IP addresses clients reach this server by, for its certificate (repeatable)")
}

func tlsSANs(cfg *server.Config) {
	for _, s := range sans {
		if ip, err := netip.ParseAddr(s); err == nil {
			cfg.Trust.IPs = append(cfg.Trust.IPs, ip)
		} else if s != "" {
			cfg.Trust.Names = append(cfg.Trust.Names, s)
		}
	}
}
