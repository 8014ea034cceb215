package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

func traceCmd(o *Options) *cobra.Command {
	var req pb.TraceInstanceRequest
	c := &cobra.Command{
		Use:   "trace FROM TO [--proto tcp|udp|icmp] [--port N] [--live]",
		Short: "Follow a packet from an instance hop by hop: every check on every host and edge, with its verdict",
		Long: `Follow a packet from instance FROM to TO (an address, or an instance's name or id).

By default the trace is logical, like ovn-trace: nothing is sent; the host of FROM
walks its egress story on its live cache (source check, route table and route,
router hop, mapping or edge, MTU, encapsulation), and the next host or edge walks
what it would do with the packet as it arrives. Each step shows what the cache said.

With --live a real packet is sent, carrying the Geneve TraceID option; every host
and edge that handles it reports the story it took and its verdict, with timings.`,
		Args: cobra.ExactArgs(2),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			req.From, req.To = args[0], args[1]
			r, err := cl.inst.TraceInstance(cmd.Context(), call(&req))
			if err != nil {
				return err
			}
			p := o.printer(cmd)
			if p.format == "json" {
				err = p.one(r.Msg, nil, nil)
			} else {
				err = printTrace(p, &req, r.Msg)
			}
			if err != nil {
				return err
			}
			return traceFailed(r.Msg)
		}),
	}
	c.Flags().StringVar(&req.Protocol, "proto", "tcp", "tcp, udp or icmp")
	c.Flags().Uint32Var(&req.Port, "port", 80, "destination port (tcp and udp)")
	c.Flags().BoolVar(&req.Live, "live", false, "send a real packet with the TraceID option and collect every hop's report")
	c.Flags().StringVar(&req.Source, "source", "", "forge the source address, as a compromised instance would")
	return c
}

func printTrace(p *printer, req *pb.TraceInstanceRequest, r *pb.TraceInstanceResponse) error {
	what := req.Protocol
	if req.Protocol != "icmp" {
		what = fmt.Sprintf("%s port %d", req.Protocol, req.Port)
	}
	mode := "on the live caches, nothing sent"
	if req.Live {
		mode = fmt.Sprintf("live, TraceID %#08x", r.TraceId)
	}
	fmt.Fprintf(p.w, "trace %s (%s) → %s, %s, %s\n\n", req.From, r.FromIp, r.ToIp, what, mode)
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	var start *pb.TraceHop
	for _, hop := range r.Hops {
		if req.Live {
			if start == nil {
				start = hop
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t+%dµs\n", hop.HostId, hop.Story, hop.Verdict, hop.Time.AsTime().Sub(start.Time.AsTime()).Microseconds())
			continue
		}
		fmt.Fprintf(p.w, "%s, %s → %s\n", hop.HostId, hop.Story, hop.Verdict)
		for _, s := range hop.Steps {
			mark := "✓"
			if !s.Pass {
				mark = "✗"
			}
			fmt.Fprintf(tw, "  %s %s\t%s\n", mark, s.Name, s.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Hops) == 0 {
		fmt.Fprintln(p.w, "no host reported the packet")
	}
	_, err := fmt.Fprintf(p.w, "\nverdict: %s\n", r.Verdict)
	return err
}

// traceFailed is the error of a trace whose packet did not arrive, so that
// `trace` exits non-zero as `ping` does: delivered to an instance,
// forwarded out of the edge to the internet, or answered by the host (the
// resolver, metadata) is success; any drop (or no report at all) is not.
func traceFailed(r *pb.TraceInstanceResponse) error {
	switch r.Verdict {
	case datapath.Delivered.String(), datapath.Forwarded.String(), datapath.ToHostService.String():
		return nil
	case "":
		return errors.New("the packet was not delivered: no host reported it")
	}
	return fmt.Errorf("the packet was not delivered: %s", r.Verdict)
}
