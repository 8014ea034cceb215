package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var flowHeader = []string{"LAST SEEN", "HOST", "DIR", "VNI", "PROTO", "SOURCE", "DESTINATION", "VERDICT", "PACKETS", "BYTES"}

func endpoint(ip string, port uint32, proto string) string {
	if proto == "tcp" || proto == "udp" {
		return ip + ":" + strconv.FormatUint(uint64(port), 10)
	}
	return ip
}

func flowRow(f *pb.FlowRecord) []string {
	return []string{f.LastSeen.AsTime().Local().Format(time.TimeOnly), f.HostId, f.Direction, strconv.FormatUint(uint64(f.Vni), 10), f.Protocol,
		endpoint(f.Src, f.SrcPort, f.Protocol), endpoint(f.Dst, f.DstPort, f.Protocol), f.Verdict,
		strconv.FormatUint(f.Packets, 10), strconv.FormatUint(f.Bytes, 10)}
}

// flowID names a flow record across polls.
func flowID(f *pb.FlowRecord) string {
	return fmt.Sprintf("%s/%s/%d/%s/%s:%d/%s:%d", f.HostId, f.Direction, f.Vni, f.Protocol, f.Src, f.SrcPort, f.Dst, f.DstPort)
}

func flowsCmd(o *Options) *cobra.Command {
	var follow bool
	var req pb.ListFlowsRequest
	c := &cobra.Command{
		Use:   "flows [--instance I] [--verdict V] [--host H] [--follow]",
		Short: "Show flow records: what every host and edge did with each flow (5-tuple, VPC, verdict, packets, bytes)",
		Long: `Show flow records, like hubble observe: per host or edge, direction and flow
(VPC, protocol, source, destination), the verdict of its latest packet and how many
packets and bytes it had. --verdict takes a verdict's name (no-route, spoofed-source,
…), dropped (any drop) or passed. --follow prints records as they change.`,
		Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			p := o.printer(cmd)
			r, err := cl.inst.ListFlows(cmd.Context(), call(&req))
			if err != nil {
				return err
			}
			warn := func(r *pb.ListFlowsResponse) {
				if len(r.Unreachable) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "openvpc: no flow records from %s (their agents did not answer)\n", strings.Join(r.Unreachable, ", "))
				}
			}
			warn(r.Msg)
			if !follow {
				return list(p, r.Msg.Flows, flowHeader, flowRow)
			}
			// Follow by polling: print what is new or changed since the
			// last look, oldest first, as a log would.
			seen := map[string]int64{}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for first := true; ; first = false {
				var rows [][]string
				for i := len(r.Msg.Flows) - 1; i >= 0; i-- {
					f := r.Msg.Flows[i]
					id, last := flowID(f), f.LastSeen.AsTime().UnixNano()
					if seen[id] == last {
						continue
					}
					seen[id] = last
					if p.format == "json" {
						if err := p.lineJSON(f); err != nil {
							return err
						}
						continue
					}
					rows = append(rows, flowRow(f))
				}
				if len(rows) > 0 || first && p.format != "json" {
					if err := p.rows(flowHeader, rows, first); err != nil {
						return err
					}
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-t.C:
				}
				if r, err = cl.inst.ListFlows(cmd.Context(), call(&req)); err != nil {
					return err
				}
				warn(r.Msg)
			}
		}),
	}
	c.Flags().StringVar(&req.Instance, "instance", "", "only flows from or to this instance (name or id)")
	c.Flags().StringVar(&req.Verdict, "verdict", "", "only flows with this verdict: a name (e.g. no-route), dropped or passed")
	c.Flags().StringVar(&req.Host, "host", "", "only the records of this host or edge")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing flows as they change")
	return c
}
