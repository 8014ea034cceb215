package cli

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

var instHeader = []string{"ID", "NAME", "STATE", "PRIVATE IP", "SUBNET", "HOST", "ENI", "MAC", "PUBLIC IP", "SECURITY GROUPS"}

func instRow(i *pb.Instance) []string {
	return []string{i.Id, i.Name, enum(i.State, "INSTANCE_STATE_"), i.PrivateIp, i.SubnetId, i.HostId, i.EniId, i.Mac, i.PublicIp, strings.Join(i.SecurityGroupIds, ",")}
}

func instanceCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "instance", Short: "Run, list, show and terminate instances"}
	var subnet, name, host, ip, imds, userData string
	var groups []string
	var ct conntrackFlags
	var wait bool
	var timeout time.Duration
	run := &cobra.Command{
		Use: "run --subnet SUBNET [--name N] [--host H] [--ip A] [--wait]", Short: "Run an instance with one network interface", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			req := &pb.RunInstanceRequest{Subnet: subnet, Name: name, Host: host, Ip: ip, SecurityGroups: groups, ImdsV1: imds}
			if cmd.Flags().Changed("user-data") {
				var err error
				if req.UserData, err = readUserData(userData); err != nil {
					return err
				}
			}
			if ct.changed(cmd) {
				var err error
				if req.Conntrack, err = ct.settings(cmd, nil); err != nil {
					return err
				}
			}
			r, err := cl.inst.RunInstance(cmd.Context(), call(req))
			if err != nil {
				return err
			}
			inst := r.Msg.Instance
			if wait {
				if inst, err = waitFor(cmd, cl, inst.Id, pb.InstanceState_INSTANCE_STATE_RUNNING, timeout); err != nil {
					return err
				}
			}
			return o.printer(cmd).one(inst, instHeader, instRow(inst))
		}),
	}
	run.Flags().StringVar(&subnet, "subnet", "", "subnet name or id (required)")
	run.Flags().StringVar(&name, "name", "", "unique name of the instance")
	run.Flags().StringVar(&host, "host", "", "host to place it on (default: the least-loaded host)")
	run.Flags().StringVar(&ip, "ip", "", "private address (default: the lowest free one)")
	run.Flags().StringVar(&imds, "imds-v1", "optional", "optional (metadata GETs without a token are answered) or required-token (IMDSv2 only)")
	run.Flags().StringSliceVar(&groups, "security-group", nil, "security groups of its network interface, names or ids (VPC/default for the default group), 1–5 (repeat or comma-separate; default: the VPC's default group)")
	run.Flags().StringVar(&userData, "user-data", "", "user data served at /latest/user-data (at most 16 KiB): @FILE or FILE reads that file, anything else is the text itself")
	ct.add(run)
	run.Flags().BoolVar(&wait, "wait", false, "return only once every host in scope can reach it (state running)")
	run.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long --wait waits")
	required(run, "subnet")

	var fvpc, fsubnet, fhost string
	listCmd := &cobra.Command{
		Use: "list [--vpc V] [--subnet S] [--host H]", Short: "List instances", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.inst.ListInstances(cmd.Context(), call(&pb.ListInstancesRequest{Vpc: fvpc, Subnet: fsubnet, Host: fhost}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Instances, instHeader, instRow)
		}),
	}
	listCmd.Flags().StringVar(&fvpc, "vpc", "", "only this VPC's instances")
	listCmd.Flags().StringVar(&fsubnet, "subnet", "", "only this subnet's instances")
	listCmd.Flags().StringVar(&fhost, "host", "", "only instances on this host")
	get := &cobra.Command{
		Use: "get INSTANCE", Short: "Show an instance", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.inst.GetInstance(cmd.Context(), call(&pb.GetInstanceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Instance, instHeader, instRow(r.Msg.Instance))
		}),
	}
	var twait bool
	var ttimeout time.Duration
	term := &cobra.Command{
		Use: "terminate INSTANCE [--wait]", Short: "Terminate an instance", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.inst.TerminateInstance(cmd.Context(), call(&pb.TerminateInstanceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			inst := r.Msg.Instance
			if twait {
				if inst, err = waitFor(cmd, cl, inst.Id, pb.InstanceState_INSTANCE_STATE_TERMINATED, ttimeout); err != nil {
					return err
				}
			}
			return o.printer(cmd).one(inst, instHeader, instRow(inst))
		}),
	}
	term.Flags().BoolVar(&twait, "wait", false, "return only once every host has dropped its mapping")
	term.Flags().DurationVar(&ttimeout, "timeout", 30*time.Second, "how long --wait waits")
	c.AddCommand(run, listCmd, get, term, modifyCmd(o))
	// What acts from inside an instance lives at the top (openvpc ping,
	// trace, connect, forward, exec); the old instance … spellings keep
	// working for scripts that have them.
	for _, old := range []*cobra.Command{connectCmd(o), forwardCmd(o), execCmd(o), pingCmd(o), traceCmd(o)} {
		old.Hidden = true
		c.AddCommand(old)
	}
	return c
}

func modifyCmd(o *Options) *cobra.Command {
	var groups []string
	var imds string
	var ct conntrackFlags
	c := &cobra.Command{
		Use:   "modify INSTANCE [--security-group SG[,SG…]] [--imds-v1 optional|required-token] [--tcp-established-timeout D] [--udp-timeout D] [--udp-stream-timeout D] [--other-timeout D]",
		Short: "Change an instance's security groups or connection-tracking timeouts; takes effect without a restart",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			req := &pb.ModifyInstanceRequest{Ref: args[0], SecurityGroups: groups, ImdsV1: imds}
			if ct.changed(cmd) {
				// Timeouts not given keep what the instance has.
				cur, err := cl.inst.GetInstance(cmd.Context(), call(&pb.GetInstanceRequest{Ref: args[0]}))
				if err != nil {
					return err
				}
				if req.Conntrack, err = ct.settings(cmd, cur.Msg.Instance.Conntrack); err != nil {
					return err
				}
			}
			if len(groups) == 0 && req.Conntrack == nil && imds == "" {
				return errors.New("nothing to change: give --security-group, --imds-v1 or a timeout (--tcp-established-timeout, --udp-timeout, --udp-stream-timeout, --other-timeout)")
			}
			r, err := cl.inst.ModifyInstance(cmd.Context(), call(req))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Instance, instHeader, instRow(r.Msg.Instance))
		}),
	}
	c.Flags().StringSliceVar(&groups, "security-group", nil, "the new security groups, names or ids, 1–5 (repeat or comma-separate)")
	c.Flags().StringVar(&imds, "imds-v1", "", "optional (metadata GETs without a token are answered) or required-token (IMDSv2 only)")
	ct.add(c)
	return c
}

// conntrackFlags set an ENI's connection-tracking timeouts.
type conntrackFlags struct {
	tcp, udp, udpStream, other time.Duration
}

var conntrackFlagNames = []string{"tcp-established-timeout", "udp-timeout", "udp-stream-timeout", "other-timeout"}

func (f *conntrackFlags) add(c *cobra.Command) {
	fs := c.Flags()
	fs.DurationVar(&f.tcp, "tcp-established-timeout", 0, "idle timeout of established TCP flows, 1m–120h (0: the default, 120h)")
	fs.DurationVar(&f.udp, "udp-timeout", 0, "idle timeout of UDP flows seen one way, 30s–1m (0: the default, 30s)")
	fs.DurationVar(&f.udpStream, "udp-stream-timeout", 0, "idle timeout of UDP flows seen both ways, 1m–3m (0: the default, 3m)")
	fs.DurationVar(&f.other, "other-timeout", 0, "idle timeout of other protocols' flows, 1m–10m (0: the default, 10m)")
}

func (f *conntrackFlags) changed(c *cobra.Command) bool {
	for _, n := range conntrackFlagNames {
		if c.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// settings are the timeouts given, over base (nil for none).
func (f *conntrackFlags) settings(c *cobra.Command, base *pb.ConntrackSettings) (*pb.ConntrackSettings, error) {
	out := &pb.ConntrackSettings{}
	if base != nil {
		out = proto.CloneOf(base)
	}
	fields := []*uint32{&out.TcpEstablishedSeconds, &out.UdpSeconds, &out.UdpStreamSeconds, &out.OtherSeconds}
	for i, d := range []time.Duration{f.tcp, f.udp, f.udpStream, f.other} {
		if !c.Flags().Changed(conntrackFlagNames[i]) {
			continue
		}
		if d < 0 || d%time.Second != 0 || d > math.MaxUint32*time.Second {
			return nil, fmt.Errorf("--%s %v: give whole seconds (e.g. 45s, 2m, 1h)", conntrackFlagNames[i], d)
		}
		*fields[i] = uint32(d / time.Second)
	}
	return out, nil
}

func waitFor(cmd *cobra.Command, cl *clients, id string, state pb.InstanceState, timeout time.Duration) (*pb.Instance, error) {
	r, err := cl.inst.WaitInstance(cmd.Context(), call(&pb.WaitInstanceRequest{Ref: id, State: state, TimeoutMs: timeout.Milliseconds()}))
	if err != nil {
		return nil, err
	}
	return r.Msg.Instance, nil
}

var peeringHeader = []string{"ID", "NAME", "REQUESTER VPC", "ACCEPTER VPC", "STATE"}

func peeringRow(p *pb.Peering) []string {
	return []string{p.Id, p.Name, p.RequesterVpcId, p.AccepterVpcId, enum(p.State, "PEERING_STATE_")}
}

func peeringCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "peering", Short: "Peer VPCs: create, accept, list, delete"}
	var vpc, peer, name string
	create := &cobra.Command{
		Use: "create --vpc A --peer-vpc B [--name N]", Short: "Request a peering (pending until accepted)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreatePeering(cmd.Context(), call(&pb.CreatePeeringRequest{Vpc: vpc, PeerVpc: peer, Name: name}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Peering, peeringHeader, peeringRow(r.Msg.Peering))
		}),
	}
	create.Flags().StringVar(&vpc, "vpc", "", "requester VPC (required)")
	create.Flags().StringVar(&peer, "peer-vpc", "", "accepter VPC (required)")
	create.Flags().StringVar(&name, "name", "", "unique name of the peering")
	required(create, "vpc", "peer-vpc")
	accept := &cobra.Command{
		Use: "accept PEERING", Short: "Accept a pending peering", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.AcceptPeering(cmd.Context(), call(&pb.AcceptPeeringRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Peering, peeringHeader, peeringRow(r.Msg.Peering))
		}),
	}
	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc V]", Short: "List peerings", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListPeerings(cmd.Context(), call(&pb.ListPeeringsRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Peerings, peeringHeader, peeringRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only peerings of this VPC")
	get := &cobra.Command{
		Use: "get PEERING", Short: "Show a peering", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetPeering(cmd.Context(), call(&pb.GetPeeringRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Peering, peeringHeader, peeringRow(r.Msg.Peering))
		}),
	}
	del := &cobra.Command{
		Use: "delete PEERING", Short: "Delete a peering (routes to it become blackholes)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeletePeering(cmd.Context(), call(&pb.DeletePeeringRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted peering "+args[0])
		}),
	}
	var remoteDNS string
	modify := &cobra.Command{
		Use: "modify PEERING --allow-remote-dns true|false", Short: "Change a peering's options: whether each VPC resolves the other's instance names", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			req := &pb.ModifyPeeringRequest{Ref: args[0]}
			if cmd.Flags().Changed("allow-remote-dns") {
				on, err := strconv.ParseBool(remoteDNS)
				if err != nil {
					return fmt.Errorf("--allow-remote-dns: %q is neither true nor false", remoteDNS)
				}
				req.AllowRemoteDns = &on
			}
			r, err := cl.vpc.ModifyPeering(cmd.Context(), call(req))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Peering, peeringHeader, peeringRow(r.Msg.Peering))
		}),
	}
	modify.Flags().StringVar(&remoteDNS, "allow-remote-dns", "", "true or false: while the peering is active, each VPC's resolver answers the other's instance names and PTRs (AWS's AllowDnsResolutionFromRemoteVpc; off by default)")
	c.AddCommand(create, accept, listCmd, get, modify, del)
	return c
}

// Events are aggregated: COUNT occurrences between FIRST SEEN and LAST
// SEEN (the server's clock); "(other sources)" marks the record standing
// for the sources beyond those the server keeps per host and reason.
var eventHeader = []string{"FIRST SEEN", "LAST SEEN", "COUNT", "HOST", "REASON", "OUTER SRC", "INNER SRC", "INNER DST", "CLAIMED VNI", "DETAIL"}

func eventRow(e *pb.SecurityEvent) []string {
	vni := ""
	if e.ClaimedVni != 0 {
		vni = strconv.FormatUint(uint64(e.ClaimedVni), 10)
	}
	first, last := e.FirstSeen, e.LastSeen
	if last == nil { // a server from before aggregation
		first, last = e.Time, e.Time
	}
	count := strconv.FormatInt(e.Count, 10)
	if e.OtherSources {
		count += " (other sources)"
	}
	reason := e.Reason
	if e.Operational {
		reason += " (operational)" // not an attack: something an operator must look at
	}
	return []string{first.AsTime().Local().Format(time.DateTime), last.AsTime().Local().Format(time.DateTime), count,
		e.HostId, reason, e.OuterSrc, e.InnerSrc, e.InnerDst, vni, e.Detail}
}

func eventsCmd(o *Options) *cobra.Command {
	var follow bool
	var limit int32
	c := &cobra.Command{
		Use: "events [--follow]", Short: "Show security events (checks that indicate an attack) and operational ones (a VPN tunnel down)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.inst.ListEvents(cmd.Context(), call(&pb.ListEventsRequest{Limit: limit}))
			if err != nil {
				return err
			}
			p := o.printer(cmd)
			if !follow {
				return list(p, r.Msg.Events, eventHeader, eventRow)
			}
			stream, err := cl.inst.WatchEvents(cmd.Context(), call(&pb.WatchEventsRequest{}))
			if err != nil {
				return err
			}
			for _, e := range r.Msg.Events {
				if err := p.event(e); err != nil {
					return err
				}
			}
			for stream.Receive() {
				if err := p.event(stream.Msg().Event); err != nil {
					return err
				}
			}
			return stream.Err()
		}),
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they happen")
	c.Flags().Int32Var(&limit, "limit", 100, "how many of the newest events to show")
	return c
}

// event prints one followed event: a JSON object per line, or a table row.
func (p *printer) event(e *pb.SecurityEvent) error {
	if p.format == "json" {
		b, err := marshalJSON(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	return p.table(eventHeader, [][]string{eventRow(e)})
}

// readUserData is --user-data: @FILE reads FILE (which must exist); a
// value naming an existing regular file reads it; anything else is the
// text itself. More than model.MaxUserData bytes is refused here, as the
// server would.
func readUserData(v string) ([]byte, error) {
	var b []byte
	if path, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("--user-data: %w", err)
		}
	} else if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
		if b, err = os.ReadFile(v); err != nil {
			return nil, fmt.Errorf("--user-data: %w", err)
		}
	} else {
		b = []byte(v)
	}
	if len(b) > model.MaxUserData {
		return nil, fmt.Errorf("--user-data: %d bytes; at most %d (16 KiB, as AWS)", len(b), model.MaxUserData)
	}
	return b, nil
}
