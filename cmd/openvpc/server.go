package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/control/server"
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
			if endpoints != "" {
				cfg.Store.Endpoints = strings.Split(endpoints, ",")
			}
			s, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			log.Info("ready", "api", s.URL())
			<-cmd.Context().Done()
			log.Info("shutting down")
			return s.Close()
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "API address (gRPC, gRPC-Web and Connect on one port)")
	f.StringVar(&cfg.Store.DataDir, "data-dir", cfg.Store.DataDir, "where the embedded etcd keeps state")
	f.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (instead of the embedded one)")
	f.StringVar(&cfg.Store.Prefix, "etcd-prefix", cfg.Store.Prefix, "key prefix in etcd, so clouds can share a cluster")
	f.Var(newPrefixList(&cfg.Store.EIPPools), "eip-pool", "public range Elastic IPs are allocated from, e.g. 198.51.100.0/24 (repeatable)")
	f.DurationVar(&cfg.EdgeTimeout, "edge-timeout", 15*time.Second, "how long an edge may miss its heartbeats before hosts stop sending it flows")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return c
}
