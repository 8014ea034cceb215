package cli

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

func pingCmd(o *Options) *cobra.Command {
	var count int32
	var timeout time.Duration
	var source string
	c := &cobra.Command{
		Use:   "ping FROM TO",
		Short: "Send ICMP echo requests from inside instance FROM to TO (an address or an instance)",
		Args:  cobra.ExactArgs(2),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.inst.PingInstance(cmd.Context(), call(&pb.PingInstanceRequest{From: args[0], To: args[1], Count: count, TimeoutMs: timeout.Milliseconds(), Source: source}))
			if err != nil {
				return err
			}
			m := r.Msg
			// Like ping(8), no reply is a failure (exit 1), so scripts can
			// tell; a forged request its host dropped had no reply either.
			var failed error
			switch {
			case m.Verdict != "":
				failed = fmt.Errorf("no reply: %s's host dropped the echo requests (%s)", args[0], m.Verdict)
			case m.Received == 0:
				failed = fmt.Errorf("no reply from %s", m.ToIp)
			}
			if o.Output == "json" {
				if err := o.printer(cmd).one(m, nil, nil); err != nil {
					return err
				}
				return failed
			}
			w := cmd.OutOrStdout()
			if m.Verdict != "" {
				fmt.Fprintf(w, "sent %d echo requests %s → %s from inside %s: its host said %s\n", m.Sent, m.FromIp, m.ToIp, args[0], m.Verdict)
				if m.Verdict == "spoofed-source" {
					fmt.Fprintln(w, "dropped before the wire; see `openvpc events`")
				}
				return failed
			}
			fmt.Fprintf(w, "PING %s from %s\n", m.ToIp, m.FromIp)
			for _, us := range m.RttUs {
				fmt.Fprintf(w, "reply from %s: time=%.3f ms\n", m.ToIp, float64(us)/1000)
			}
			fmt.Fprintf(w, "%d sent, %d received, %d%% loss", m.Sent, m.Received, 100*(m.Sent-m.Received)/max(1, m.Sent))
			if len(m.RttUs) > 0 {
				fmt.Fprintf(w, ", rtt min/max %.3f/%.3f ms", float64(slices.Min(m.RttUs))/1000, float64(slices.Max(m.RttUs))/1000)
			}
			fmt.Fprintln(w)
			return failed
		}),
	}
	c.Flags().Int32VarP(&count, "count", "c", 3, "how many echo requests")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for each reply")
	c.Flags().StringVar(&source, "source", "", "send with this source address instead of the instance's (as an attacker would): watch it refused")
	return c
}

func connectCmd(o *Options) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "connect FROM TO:PORT",
		Short: "Open a TCP connection from inside instance FROM (TO is an address or an instance)",
		Args:  cobra.ExactArgs(2),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.inst.ConnectInstance(cmd.Context(), call(&pb.ConnectInstanceRequest{From: args[0], To: args[1], TimeoutMs: timeout.Milliseconds()}))
			if err != nil {
				return err
			}
			if o.Output == "json" {
				return o.printer(cmd).one(r.Msg, nil, nil)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "connected from %s to %s in %.3f ms\n", r.Msg.FromIp, r.Msg.To, float64(r.Msg.LatencyUs)/1000)
			return err
		}),
	}
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the connection")
	return c
}
