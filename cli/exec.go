package cli

import (
	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/nic"
)

func execCmd(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "exec INSTANCE -- COMMAND [ARG...]",
		Short: "Run a command inside a TUN instance's network namespace (as root, on the machine of its host)",
		Long: `Run a command inside a TUN instance's network namespace: it sees the
instance's eth0, address and routes, as if logged in to the instance.
The command replaces this process: its stdio is yours and its exit code is
exec's. Run it as root on the machine whose host agent runs the instance
with --nic tun; the namespace is /run/netns/` + nic.NamespacePrefix + `INSTANCE-ID.

  openvpc exec web -- ip addr
  openvpc exec web -- curl -s http://10.0.1.5:8080/
  openvpc exec web -- bash`,
		Args: cobra.MinimumNArgs(2),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return errUsage("write the command after --, e.g. openvpc exec web -- ip addr")
			}
			r, err := cl.inst.GetInstance(cmd.Context(), call(&pb.GetInstanceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return execIn(r.Msg.Instance, args[1:])
		}),
	}
	return c
}

type errUsage string

func (e errUsage) Error() string { return string(e) }
