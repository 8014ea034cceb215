package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// Shell completion of resource names and ids, asked of the API as the
// user types (`openvpc completion bash` installs it). A server that does
// not answer in time completes nothing rather than hanging the shell.

// completeTimeout bounds one completion's API call.
const completeTimeout = 3 * time.Second

// named is one completion candidate: a name (or id) and what it is.
type named struct{ id, name, what string }

// lister fetches the candidates of one resource kind.
type lister func(ctx context.Context, cl *clients) ([]named, error)

// completer completes the first positional argument from fetch.
func completer(o *Options, fetch lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return candidates(cmd, o, fetch, toComplete)
	}
}

// flagCompleter completes a flag's value from fetch.
func flagCompleter(o *Options, fetch lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return candidates(cmd, o, fetch, toComplete)
	}
}

func candidates(cmd *cobra.Command, o *Options, fetch lister, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cl, err := o.clients()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError | cobra.ShellCompDirectiveNoFileComp
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	ns, err := fetch(ctx, cl)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError | cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, n := range ns {
		// Names first (what people type), ids too (what scripts have).
		if n.name != "" && strings.HasPrefix(n.name, prefix) {
			out = append(out, cobra.CompletionWithDesc(n.name, n.id+" "+n.what))
		}
		if strings.HasPrefix(n.id, prefix) {
			out = append(out, cobra.CompletionWithDesc(n.id, strings.TrimSpace(n.name+" "+n.what)))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func vpcs(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.vpc.ListVpcs(ctx, call(&pb.ListVpcsRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, v := range r.Msg.Vpcs {
		out = append(out, named{v.Id, v.Name, v.Cidr})
	}
	return out, nil
}

func subnets(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.vpc.ListSubnets(ctx, call(&pb.ListSubnetsRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, s := range r.Msg.Subnets {
		out = append(out, named{s.Id, s.Name, s.Cidr})
	}
	return out, nil
}

func routeTables(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.vpc.ListRouteTables(ctx, call(&pb.ListRouteTablesRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, t := range r.Msg.RouteTables {
		out = append(out, named{t.Id, t.Name, "in " + t.VpcId})
	}
	return out, nil
}

func instances(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.inst.ListInstances(ctx, call(&pb.ListInstancesRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, i := range r.Msg.Instances {
		if i.State != pb.InstanceState_INSTANCE_STATE_TERMINATED {
			out = append(out, named{i.Id, i.Name, i.PrivateIp})
		}
	}
	return out, nil
}

func peerings(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.vpc.ListPeerings(ctx, call(&pb.ListPeeringsRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, p := range r.Msg.Peerings {
		out = append(out, named{p.Id, p.Name, enum(p.State, "PEERING_STATE_")})
	}
	return out, nil
}

func igws(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.vpc.ListInternetGateways(ctx, call(&pb.ListInternetGatewaysRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, g := range r.Msg.InternetGateways {
		out = append(out, named{g.Id, g.Name, "internet gateway"})
	}
	return out, nil
}

func eips(ctx context.Context, cl *clients) ([]named, error) {
	r, err := cl.vpc.ListAddresses(ctx, call(&pb.ListAddressesRequest{}))
	if err != nil {
		return nil, err
	}
	var out []named
	for _, e := range r.Msg.Addresses {
		out = append(out, named{e.AllocationId, e.Name, e.PublicIp})
	}
	return out, nil
}

// targets are what a route may lead to: peerings and internet gateways.
func targets(ctx context.Context, cl *clients) ([]named, error) {
	p, err := peerings(ctx, cl)
	if err != nil {
		return nil, err
	}
	g, err := igws(ctx, cl)
	return append(p, g...), err
}

func hostsOf(r role) lister {
	return func(ctx context.Context, cl *clients) ([]named, error) {
		hs, err := r.list(ctx, cl)
		if err != nil {
			return nil, err
		}
		var out []named
		for _, h := range hs {
			out = append(out, named{h.Id, "", h.UnderlayAddress})
		}
		return out, nil
	}
}

func completeHosts(o *Options, r role) cobra.CompletionFunc { return completer(o, hostsOf(r)) }

// flagListers complete the flags that name resources, on every command.
var flagListers = map[string]lister{
	"vpc": vpcs, "peer-vpc": vpcs, "subnet": subnets, "route-table": routeTables,
	"instance": instances, "host": hostsOf(hostRole), "target": targets,
}

// argListers complete a command's first argument, by the noun of its
// group (vpc get RED, peering accept PCX, …).
var argListers = map[string]lister{
	"vpc": vpcs, "subnet": subnets, "route-table": routeTables, "instance": instances,
	"peering": peerings, "igw": igws, "eip": eips,
}

// addCompletion gives every command below root completion of the
// resources its arguments and flags name.
func addCompletion(o *Options, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, fetch := range flagListers {
			if c.LocalFlags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, flagCompleter(o, fetch))
			}
		}
		if p := c.Parent(); p != nil && c.ValidArgsFunction == nil && takesRef(c) {
			if fetch, ok := argListers[p.Name()]; ok {
				c.ValidArgsFunction = completer(o, fetch)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	// ping, trace, connect, forward, exec: their arguments are instances.
	for _, c := range root.Commands() {
		switch c.Name() {
		case "ping", "trace", "connect", "forward", "exec":
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return candidates(cmd, o, instances, toComplete)
			}
		}
	}
}

// takesRef says whether c's first argument names a resource: its usage
// says so with a placeholder (get VPC, accept PEERING).
func takesRef(c *cobra.Command) bool {
	f := strings.Fields(c.Use)
	return len(f) > 1 && f[1][0] >= 'A' && f[1][0] <= 'Z' && f[1] == strings.ToUpper(f[1])
}
