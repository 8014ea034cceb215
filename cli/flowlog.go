package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var flowLogHeader = []string{"ID", "NAME", "VPC", "RESOURCE", "TRAFFIC", "DESTINATION", "INTERVAL"}

func flowLogRow(fl *pb.FlowLog) []string {
	resource := fl.VpcId
	switch {
	case fl.InstanceId != "":
		resource = fl.InstanceId + " (" + fl.EniId + ")"
	case fl.SubnetId != "":
		resource = fl.SubnetId
	}
	return []string{fl.Id, fl.Name, fl.VpcId, resource, enum(fl.TrafficType, "FLOW_LOG_TRAFFIC_TYPE_"), fl.Destination,
		(time.Duration(fl.IntervalSeconds) * time.Second).String()}
}

func flowLogCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "flow-log", Short: "Flow logs: the firewall's decisions per flow, in AWS's format (version 2)"}
	var inst, subnet, vpc, traffic, dest, name string
	var interval time.Duration
	create := &cobra.Command{
		Use:   "create (--instance I | --subnet S | --vpc V) --traffic-type accept|reject|all --destination file:PATH [--interval 60s]",
		Short: "Capture the flows of an instance, a subnet or a VPC into a file on each host",
		Args:  cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			secs := interval / time.Second
			if interval%time.Second != 0 || secs < 1 {
				return fmt.Errorf("--interval %v: give whole seconds, 1s to 10m", interval)
			}
			r, err := cl.vpc.CreateFlowLog(cmd.Context(), call(&pb.CreateFlowLogRequest{
				Instance: inst, Subnet: subnet, Vpc: vpc, TrafficType: traffic, Destination: dest,
				IntervalSeconds: uint32(min(secs, 1<<31)), Name: name,
			}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.FlowLog, flowLogHeader, flowLogRow(r.Msg.FlowLog))
		}),
	}
	create.Flags().StringVar(&inst, "instance", "", "capture this instance's ENI (name or id)")
	create.Flags().StringVar(&subnet, "subnet", "", "capture the ENIs of this subnet (name or id)")
	create.Flags().StringVar(&vpc, "vpc", "", "capture every ENI of this VPC (name or id)")
	create.Flags().StringVar(&traffic, "traffic-type", "", "accept, reject or all (required)")
	create.Flags().StringVar(&dest, "destination", "", "file:/absolute/path, appended to by each host for its own ENIs (required)")
	create.Flags().DurationVar(&interval, "interval", 60*time.Second, "aggregation window, 1s to 10m (AWS: 60s or 10m; 1s is for tests)")
	create.Flags().StringVar(&name, "name", "", "unique name of the flow log")
	required(create, "traffic-type", "destination")

	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc VPC]", Short: "List flow logs", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListFlowLogs(cmd.Context(), call(&pb.ListFlowLogsRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.FlowLogs, flowLogHeader, flowLogRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only this VPC's flow logs")
	get := &cobra.Command{
		Use: "get FLOW-LOG", Short: "Show a flow log", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetFlowLog(cmd.Context(), call(&pb.GetFlowLogRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.FlowLog, flowLogHeader, flowLogRow(r.Msg.FlowLog))
		}),
	}
	del := &cobra.Command{
		Use: "delete FLOW-LOG", Short: "Delete a flow log: hosts stop writing it (the file stays)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteFlowLog(cmd.Context(), call(&pb.DeleteFlowLogRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted flow log "+args[0])
		}),
	}
	c.AddCommand(create, listCmd, get, del)
	return c
}
