// Command openvpc is the one binary of openvpc: server, host agent, the
// all-in-one local cloud, and the client commands.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "openvpc",
		Short:         "openvpc: a VPC network built the way AWS builds its own",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	opts := cli.AddCommands(root)
	root.AddCommand(serverCmd(), hostCmd(opts), edgeCmd(opts), upCmd(), demoCmd())
	addServiceCommands(root, opts)
	if dx, _, err := root.Find([]string{"dx"}); err == nil && dx != root {
		dx.AddCommand(dxSiteCmd(opts)) // the simulated data centre needs the daemon side's packages
	}
	if v, _, err := root.Find([]string{"vpn"}); err == nil && v != root {
		v.AddCommand(vpnSiteCmd(opts)) // likewise the simulated customer site (edge/vpn's charon)
	}
	cli.Finish(opts, root)
	if err := root.ExecuteContext(ctx); err != nil {
		server, _ := root.PersistentFlags().GetString("server")
		fmt.Fprintln(os.Stderr, "openvpc:", cli.Explain(err, server))
		os.Exit(1)
	}
}

// logger builds the process logger for a --log-level flag.
func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q is not one of debug, info, warn, error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
