package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/bgp"
	"github.com/openvpc/openvpc/edge/dx"
)

// dxController is the edge's Direct Connect, nil without ports.
func dxController(id string, dxPorts []string, namespaces string, log *slog.Logger) (*dx.Controller, error) {
	if len(dxPorts) == 0 {
		return nil, nil
	}
	return dx.NewController(dx.ControllerConfig{EdgeID: id, Ports: dxPorts, Namespaces: namespaces, Logger: log})
}

// runEdge runs the edge node and, with Direct Connect ports, the
// controller serving their VIFs, until ctx ends or either fails.
func runEdge(ctx context.Context, n *edge.Node, ctl *dx.Controller) error {
	if ctl == nil {
		return n.Run(ctx)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.Run(ctx) })
	g.Go(func() error { return ctl.Run(ctx) })
	return g.Wait()
}

// bgpSpeakerCmd is the hidden `openvpc edge bgp-speaker`: one BGP session,
// run by an edge as its child inside a VIF's or tunnel's namespace,
// configured on stdin and reporting on stdout (edge/bgp).
func bgpSpeakerCmd() *cobra.Command {
	return &cobra.Command{
		Use: "bgp-speaker", Hidden: true, Args: cobra.NoArgs,
		Short: "A BGP speaker the edge runs as its child (configured on stdin)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			return bgp.ServeChild(ctx, os.Stdin, os.Stdout, log)
		},
	}
}
