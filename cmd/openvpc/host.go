package main

import (
	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
)

func hostCmd(o *cli.Options) *cobra.Command {
	c := &cobra.Command{Use: "host", Short: "Run a host agent"}
	c.AddCommand(cli.HostList(o))
	return c
}
