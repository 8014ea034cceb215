package main

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/objectstore"
)

// s3Cmd is `openvpc service s3`: the object store on its own, for a
// service node elsewhere (its --endpoints listener believes PROXY v2
// headers: let only service nodes reach it) and for plain clients
// (--listen, no endpoint). `openvpc up` runs one with a service node.
func s3Cmd() *cobra.Command {
	var dir, listen, endpoints, level string
	c := &cobra.Command{
		Use:   "s3 [--data-dir DIR] [--listen ADDR] [--endpoints ADDR]",
		Short: "Run the S3-compatible object store (path-style; bucket policies with aws:SourceVpce/SourceVpc/SourceIp)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(level)
			if err != nil {
				return err
			}
			cfg := objectstore.Config{Dir: dir, Log: log}
			if listen != "" {
				if cfg.Direct, err = net.Listen("tcp", listen); err != nil {
					return fmt.Errorf("--listen %s: %w", listen, err)
				}
			}
			if endpoints != "" {
				if cfg.Endpoints, err = net.Listen("tcp", endpoints); err != nil {
					return fmt.Errorf("--endpoints %s: %w", endpoints, err)
				}
			}
			if cfg.Direct == nil && cfg.Endpoints == nil {
				return fmt.Errorf("give --listen, --endpoints or both")
			}
			s, err := objectstore.New(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "object store up: clients on %s, service nodes on %s, objects in %s\n", or(listen, "-"), or(endpoints, "-"), or(dir, "memory"))
			return s.Run(cmd.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "data-dir", "", "where objects and bucket policies are kept ('' keeps them in memory)")
	f.StringVar(&listen, "listen", "127.0.0.1:9000", "address for clients without an endpoint: their source is the connection's peer")
	f.StringVar(&endpoints, "endpoints", "", "address for service nodes: every connection must start with a PROXY v2 header with the VPC-endpoint TLV")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error (info logs every request with source and endpoint)")
	return c
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// addServiceCommands puts the service runners under the client's
// `openvpc service`.
func addServiceCommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() == "service" {
			c.AddCommand(s3Cmd())
		}
	}
}
