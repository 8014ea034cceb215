//go:build !linux

package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
)

func dxSiteCmd(*cli.Options) *cobra.Command {
	return &cobra.Command{Use: "site VIF", Short: "Run a simulated data centre on a VIF (Linux only)", Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("dx site needs Linux (network namespaces, TC-eBPF)")
		}}
}
