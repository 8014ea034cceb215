package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/node/forward"
)

func forwardCmd(o *Options) *cobra.Command {
	var listen, to string
	c := &cobra.Command{
		Use:   "forward INSTANCE --listen 127.0.0.1:PORT --to ADDR:PORT",
		Short: "Forward a local port through an instance: connections to --listen are made from inside the instance to --to",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			ctx := cmd.Context()
			ir, err := cl.inst.GetInstance(ctx, call(&pb.GetInstanceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			inst := ir.Msg.Instance
			host, port, err := net.SplitHostPort(to)
			if err != nil {
				return fmt.Errorf("--to %q: write it as ADDRESS:PORT or INSTANCE:PORT", to)
			}
			if net.ParseIP(host) == nil {
				tr, err := cl.inst.GetInstance(ctx, call(&pb.GetInstanceRequest{Ref: host}))
				if err != nil {
					return err
				}
				host = tr.Msg.Instance.PrivateIp
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "forwarding %s → %s:%s from inside %s (%s); Ctrl-C to stop\n", ln.Addr(), host, port, inst.Id, inst.PrivateIp)
			return Forward(ctx, ln, cl.conn, inst.Id, net.JoinHostPort(host, port), cmd.ErrOrStderr())
		}),
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local address to accept connections on")
	c.Flags().StringVar(&to, "to", "", "where the instance connects: ADDRESS:PORT or INSTANCE:PORT (required)")
	_ = c.MarkFlagRequired("to")
	return c
}

// Forward accepts connections on ln until ctx ends and carries each to
// `to`, dialed from inside instance inst: the server (reached as conn
// says) relays it to the instance's host agent. Why a connection could not
// be carried is written to log (nil: nowhere); the client itself only sees
// its connection closed, as with a refused port.
func Forward(ctx context.Context, ln net.Listener, conn *Conn, inst, to string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var tlsCfg *tls.Config
	if conn.TLS != nil {
		// The upgrade is HTTP/1.1: HTTP/2 has no hijacking.
		tlsCfg = conn.TLS.Clone()
		tlsCfg.NextProtos = []string{"http/1.1"}
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			up, err := forward.Dial(dctx, conn.URL, tlsCfg, conn.Token, url.Values{"instance": {inst}, "to": {to}})
			cancel()
			if err != nil {
				fmt.Fprintf(log, "openvpc: forward from %s to %s: %v\n", c.RemoteAddr(), to, err)
				return
			}
			defer up.Close()
			forward.Splice(c, c, up)
		}()
	}
}
