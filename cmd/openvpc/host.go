package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
	"github.com/openvpc/openvpc/host/agent"
)

func hostCmd(o *cli.Options) *cobra.Command {
	var id, underlay, level string
	c := &cobra.Command{
		Use:   "host --host-id ID --underlay ADDR [--server URL]",
		Short: "Run a host agent: join the Mapping Service and keep this host's cache current",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(level)
			if err != nil {
				return err
			}
			addr, err := netip.ParseAddr(underlay)
			if err != nil {
				return fmt.Errorf("--underlay %q is not an IPv4 address: give this host's address on the underlay network", underlay)
			}
			a, err := agent.New(agent.Config{
				Server: cli.BaseURL(o.Server), HostID: id, Underlay: addr, HTTP: cli.HTTPClient(), Logger: log,
			})
			if err != nil {
				return err
			}
			if err := a.Run(cmd.Context()); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			log.Info("host agent stopped", "host", id, "revision", a.Sub.Revision())
			return nil
		},
	}
	c.Flags().StringVar(&id, "host-id", "", "this host's id, e.g. host-a (required)")
	c.Flags().StringVar(&underlay, "underlay", "", "this host's IPv4 address on the underlay network (required)")
	c.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	_ = c.MarkFlagRequired("host-id")
	_ = c.MarkFlagRequired("underlay")
	c.AddCommand(cli.HostList(o))
	return c
}
