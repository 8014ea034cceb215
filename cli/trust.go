package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

func tokenCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Join tokens: how new hosts, edges and service nodes prove they may join"}
	var role, hostID string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --role host|edge|service [--ttl 1h] [--host-id ID]",
		Short: "Make a one-time join token for openvpc host/edge run or service s3 --join-token (it carries the CA's fingerprint)",
		Args:  cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			var r pb.HostRole
			switch role {
			case "host":
				r = pb.HostRole_HOST_ROLE_HOST
			case "edge":
				r = pb.HostRole_HOST_ROLE_EDGE
			case "service":
				r = pb.HostRole_HOST_ROLE_SERVICE
			default:
				return fmt.Errorf("--role %q: give host, edge or service", role)
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
	create.Flags().StringVar(&role, "role", "", "what joins with it: host, edge or service (a service node: reads its own service's catalog, nothing else) (required)")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token may be used (once)")
	create.Flags().StringVar(&hostID, "host-id", "", "the only id the token may join as (default: any id not taken)")
	required(create, "role")
	c.AddCommand(create)
	return c
}
