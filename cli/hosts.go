package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// Hosts and edges are one resource in the API (a Host with a role); the
// CLI shows them apart, as `host list|get|remove` and `edge list|get|remove`,
// next to the daemons `host run` and `edge run`.

var hostHeader = []string{"ID", "ROLE", "UNDERLAY", "STATUS", "INSTANCES", "ACKED REVISION", "LAG", "LAST SEEN"}

func hostRow(h *pb.Host) []string {
	status := "unreachable"
	if h.Reachable {
		status = "reachable"
	}
	if h.Unhealthy {
		status = "unhealthy" // an edge hosts no longer send flows to
	}
	return []string{h.Id, enum(h.Role, "HOST_ROLE_"), h.UnderlayAddress, status, strconv.FormatInt(h.Instances, 10),
		strconv.FormatInt(h.AckedRevision, 10), strconv.FormatInt(h.Lag, 10), ago(h.LastSeen)}
}

// role is what a host or edge command calls its resource.
type role struct {
	pb   pb.HostRole
	noun string // host, edge
}

var (
	hostRole = role{pb.HostRole_HOST_ROLE_HOST, "host"}
	edgeRole = role{pb.HostRole_HOST_ROLE_EDGE, "edge"}
)

// HostCommands are `openvpc host list|get|remove`, for the caller's host
// command (which also owns `host run`, the agent).
func HostCommands(o *Options) []*cobra.Command { return roleCommands(o, hostRole) }

// EdgeCommands are `openvpc edge list|get|remove`.
func EdgeCommands(o *Options) []*cobra.Command { return roleCommands(o, edgeRole) }

func roleCommands(o *Options, r role) []*cobra.Command {
	short := map[pb.HostRole]string{
		pb.HostRole_HOST_ROLE_HOST: "List hosts with their instances, acknowledged mapping revision and lag",
		pb.HostRole_HOST_ROLE_EDGE: "List edges with their health, acknowledged mapping revision and lag",
	}[r.pb]
	listC := &cobra.Command{
		Use: "list", Short: short, Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			hs, err := r.list(cmd.Context(), cl)
			if err != nil {
				return err
			}
			return list(o.printer(cmd), hs, hostHeader, hostRow)
		}),
	}
	get := &cobra.Command{
		Use: "get " + strings.ToUpper(r.noun), Short: "Show " + article(r.noun), Args: cobra.ExactArgs(1),
		ValidArgsFunction: completeHosts(o, r),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			h, err := r.get(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			return o.printer(cmd).one(h, hostHeader, hostRow(h))
		}),
	}
	return []*cobra.Command{listC, get, removeCmd(o, r)}
}

// list lists the hosts of role r.
func (r role) list(ctx context.Context, cl *clients) ([]*pb.Host, error) {
	resp, err := cl.inst.ListHosts(ctx, call(&pb.ListHostsRequest{}))
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(resp.Msg.Hosts, func(h *pb.Host) bool { return h.Role != r.pb }), nil
}

// get finds host id of role r, saying where to look if it has the other
// role.
func (r role) get(ctx context.Context, cl *clients, id string) (*pb.Host, error) {
	resp, err := cl.inst.ListHosts(ctx, call(&pb.ListHostsRequest{}))
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(resp.Msg.Hosts, func(h *pb.Host) bool { return h.Id == id })
	if i < 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no %s %q is registered (openvpc %s list shows them)", r.noun, id, r.noun))
	}
	if h := resp.Msg.Hosts[i]; h.Role != r.pb {
		return nil, connect.NewError(connect.CodeNotFound, &wrongRole{id: id, want: r.noun, is: enum(h.Role, "HOST_ROLE_")})
	}
	return resp.Msg.Hosts[i], nil
}

// wrongRole is asking `host` for an edge or `edge` for a host.
type wrongRole struct{ id, want, is string }

func (e *wrongRole) Error() string {
	return fmt.Sprintf("%s is not %s but %s: use openvpc %s", e.id, article(e.want), article(e.is), e.is)
}

// article puts a or an before a noun.
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiouAEIOU", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

func removeCmd(o *Options, r role) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "remove " + strings.ToUpper(r.noun) + " [--yes]",
		Short: "Remove " + article(r.noun) + ": revoke its certificates, terminate its instances, forget it everywhere",
		Long: `Remove ` + article(r.noun) + `. Its certificates are revoked at once, so it can no
longer call any server and its streams end; its instances are terminated, so
their mappings leave every cache; then its record goes, so every host and
edge drops its packets as unknown-sender. To bring it back, join it again
with a new token (delete its --cert-dir first).

When it still has instances, remove asks first on a terminal; scripts pass
--yes (without a terminal and without --yes it refuses).`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeHosts(o, r),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			id := args[0]
			h, err := r.get(cmd.Context(), cl, id)
			var other *wrongRole
			switch {
			case errors.As(err, &other):
				return err
			case err != nil && connect.CodeOf(err) != connect.CodeNotFound:
				return err
			case err == nil && h.Instances > 0 && !yes:
				if err := confirm(cmd, cl, r, h); err != nil {
					return err
				}
			}
			// Not registered: the server may still hold its certificates
			// (it joined and never registered); it says not_found when
			// there is nothing at all.
			resp, err := cl.trust.RemoveHost(cmd.Context(), call(&pb.RemoveHostRequest{HostId: id}))
			if err != nil {
				return err
			}
			if o.Output == "json" {
				return o.printer(cmd).one(resp.Msg, nil, nil)
			}
			msg := fmt.Sprintf("removed %s %s: %d certificate(s) revoked", r.noun, id, resp.Msg.Revoked)
			if len(resp.Msg.Terminated) > 0 {
				msg += ", terminated " + strings.Join(resp.Msg.Terminated, ", ")
			}
			return done(cmd, o, msg)
		}),
	}
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask, even when its instances will be terminated (for scripts)")
	return c
}

// confirm asks on the terminal whether to remove h and its instances; with
// no terminal to ask on, it refuses and names --yes.
func confirm(cmd *cobra.Command, cl *clients, r role, h *pb.Host) error {
	names := fmt.Sprintf("%d instance(s)", h.Instances)
	if resp, err := cl.inst.ListInstances(cmd.Context(), call(&pb.ListInstancesRequest{Host: h.Id})); err == nil {
		var ids []string
		for _, i := range resp.Msg.Instances {
			if i.State != pb.InstanceState_INSTANCE_STATE_TERMINATED {
				ids = append(ids, cmp.Or(i.Name, i.Id))
			}
		}
		if len(ids) > 0 {
			names += " (" + strings.Join(ids, ", ") + ")"
		}
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return fmt.Errorf("%s %s runs %s: removing it terminates them; pass --yes to remove it anyway", r.noun, h.Id, names)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s %s runs %s; removing it terminates them. Remove %s? [y/N] ", r.noun, h.Id, names, h.Id)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("%s %s was not removed", r.noun, h.Id)
}
