package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

func tokenCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Join tokens: how new hosts and edges prove they may join"}
	var role, hostID string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --role host|edge [--ttl 1h] [--host-id ID]",
		Short: "Make a one-time join token for openvpc host/edge --join-token (it carries the CA's fingerprint)",
		Args:  cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			var r pb.HostRole
			switch role {
			case "host":
				r = pb.HostRole_HOST_ROLE_HOST
			case "edge":
				r = pb.HostRole_HOST_ROLE_EDGE
			default:
				return fmt.Errorf("--role %q: give host or edge", role)
			}
			resp, err := cl.trust.CreateJoinToken(cmd.Context(), call(&pb.CreateJoinTokenRequest{Role: r, TtlSeconds: int64(ttl / time.Second), HostId: hostID}))
			if err != nil {
				return err
			}
			if o.Output == "json" {
				return o.printer(cmd).one(resp.Msg, nil, nil)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), resp.Msg.Token)
			return err
		}),
	}
	create.Flags().StringVar(&role, "role", "", "what joins with it: host or edge (required)")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token may be used (once)")
	create.Flags().StringVar(&hostID, "host-id", "", "the only id the token may join as (default: any id not taken)")
	required(create, "role")
	c.AddCommand(create)
	return c
}

// HostRemove is `openvpc host remove`, given to the caller's host command
// as HostList is.
func HostRemove(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "remove HOST",
		Short: "Remove a host or edge: revoke its certificates, terminate its instances, forget it everywhere",
		Long: `Remove a host or edge. Its certificates are revoked at once, so it can no
longer call any server and its streams end; its instances are terminated, so
their mappings leave every cache; then its record goes, so every host and
edge drops its packets as unknown-sender. To bring it back, join it again
with a new token (delete its --cert-dir first).`,
		Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.trust.RemoveHost(cmd.Context(), call(&pb.RemoveHostRequest{HostId: args[0]}))
			if err != nil {
				return err
			}
			if o.Output == "json" {
				return o.printer(cmd).one(r.Msg, nil, nil)
			}
			msg := fmt.Sprintf("removed host %s: %d certificate(s) revoked", args[0], r.Msg.Revoked)
			if len(r.Msg.Terminated) > 0 {
				msg += ", terminated " + strings.Join(r.Msg.Terminated, ", ")
			}
			return done(cmd, o, msg)
		}),
	}
}
