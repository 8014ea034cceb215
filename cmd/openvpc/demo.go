package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/demo"
)

func demoCmd() *cobra.Command {
	var nicKind, output string
	var sites, inNetns bool
	var cfg demo.Config
	c := &cobra.Command{
		Use:   "demo [--step] [-o json] [--nic tun] [--sites=false]",
		Short: "Play the talk on a cloud of its own: red and yellow talk across hosts, green is refused twice, Blackfoot takes red to the internet",
		Long: `Build a small cloud in a temporary directory (3 hosts, 1 edge, a simulated internet),
create red and yellow (peered) and green VPCs with an instance each on different hosts,
and play the talk's scenes on real packets, showing what happened on the wire:

  1. red → yellow across hosts: delivered, and the encapsulated packet's layers
  2. green → yellow: refused, no route
  3. green forges its way in: the receiving host drops it and raises a security event
  4. the cache: every lookup local, a new instance's mapping on every host before it runs
  5. red reaches the internet through Blackfoot, as its Elastic IP
  6. red reaches the object store through a gateway endpoint
  7. red reaches an office through a site-to-site VPN (strongSwan as its gateway)
  8. red reaches a data centre over Direct Connect (FRR), the 802.1Q tag on the wire

Scenes 7 and 8 play as root with strongswan and frr installed: the demo then
moves itself into network and mount namespaces of its own, so every TUN,
veth, namespace and BPF program it makes goes with it; otherwise one line
says why they were left out.
Scenes 1–6 need no root; --nic tun uses Linux namespaces for the instances (as root).
The cloud and its directory are removed at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("output format %q is not known; use -o table or -o json", output)
			}
			kind, err := resolveNIC(nicKind, "netstack (userspace stacks) or tun (Linux namespaces, root)")
			if err != nil {
				return err
			}
			if kind == "none" {
				return errors.New("--nic none runs no instances; use netstack or tun")
			}
			cfg.Out, cfg.In, cfg.JSON, cfg.NIC = cmd.OutOrStdout(), cmd.InOrStdin(), output == "json", kind
			if !inNetns {
				switch why := demo.SitesMissing(); {
				case !sites:
					cfg.SitesWhy = "--sites=false"
				case why != "":
					cfg.SitesWhy = why
				default:
					return demoReexec(cmd.Context())
				}
			}
			if inNetns {
				if err := demoEnterNetns(); err != nil {
					return err
				}
				cfg.Sites = true
			}
			return demo.Run(cmd.Context(), cfg)
		},
	}
	c.Flags().BoolVar(&sites, "sites", true, "play scenes 7 and 8 (VPN, Direct Connect) where they can run: as root with strongswan and frr installed, in a network namespace of the demo's own")
	c.Flags().BoolVar(&inNetns, demoInNetns[2:], false, "internal: the demo already runs in its own network namespace")
	_ = c.Flags().MarkHidden(demoInNetns[2:])
	c.Flags().BoolVar(&cfg.Step, "step", false, "wait for Enter before each scene")
	c.Flags().StringVar(&nicKind, "nic", "netstack", "instances: netstack (userspace stacks, no root) or tun (Linux namespaces, root)")
	c.Flags().StringVarP(&output, "output", "o", "table", "table (the story, for people) or json (the scenes as data)")
	return c
}
