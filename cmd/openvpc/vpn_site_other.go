//go:build !linux

package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
)

func vpnSiteCmd(*cli.Options) *cobra.Command {
	return &cobra.Command{Use: "site VPN", Short: "Run a simulated customer site on a VPN connection (Linux only)", Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("vpn site needs Linux (network namespaces, strongSwan)")
		}}
}
