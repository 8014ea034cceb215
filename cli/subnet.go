package cli

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var subnetHeader = []string{"ID", "NAME", "VPC", "CIDR", "GATEWAY", "ROUTE TABLE", "NETWORK ACL"}

func subnetRow(s *pb.Subnet) []string {
	return []string{s.Id, s.Name, s.VpcId, s.Cidr, s.Gateway, s.RouteTableId, s.NetworkAclId}
}

func subnetCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "subnet", Short: "Create, list, show and delete subnets"}
	var vpc, cidr, name, rtb string
	create := &cobra.Command{
		Use: "create --vpc VPC --cidr CIDR [--name NAME]", Short: "Create a subnet inside a VPC", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreateSubnet(cmd.Context(), call(&pb.CreateSubnetRequest{Vpc: vpc, Cidr: cidr, Name: name, RouteTable: rtb}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Subnet, subnetHeader, subnetRow(r.Msg.Subnet))
		}),
	}
	create.Flags().StringVar(&vpc, "vpc", "", "VPC name or id (required)")
	create.Flags().StringVar(&cidr, "cidr", "", "IPv4 CIDR inside the VPC's, e.g. 10.0.1.0/24 (required)")
	create.Flags().StringVar(&name, "name", "", "unique name of the subnet")
	create.Flags().StringVar(&rtb, "route-table", "", "route table to associate (default: the VPC's main one)")
	required(create, "vpc", "cidr")

	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc VPC]", Short: "List subnets", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListSubnets(cmd.Context(), call(&pb.ListSubnetsRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Subnets, subnetHeader, subnetRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only this VPC's subnets")
	get := &cobra.Command{
		Use: "get SUBNET", Short: "Show a subnet", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetSubnet(cmd.Context(), call(&pb.GetSubnetRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Subnet, subnetHeader, subnetRow(r.Msg.Subnet))
		}),
	}
	del := &cobra.Command{
		Use: "delete SUBNET", Short: "Delete a subnet with no instances", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteSubnet(cmd.Context(), call(&pb.DeleteSubnetRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted subnet "+args[0])
		}),
	}
	c.AddCommand(create, listCmd, get, del)
	return c
}

var rtbHeader = []string{"ID", "NAME", "VPC", "MAIN", "ROUTES"}

func rtbRow(r *pb.RouteTable) []string {
	routes := make([]string, len(r.Routes))
	for i, rt := range r.Routes {
		routes[i] = rt.DestinationCidr + "→" + rt.Target
		if o := rt.Origin; o > pb.RouteOrigin_ROUTE_ORIGIN_STATIC {
			routes[i] += "(" + enum(o, "ROUTE_ORIGIN_") + ")"
		}
		switch rt.State {
		case pb.RouteState_ROUTE_STATE_BLACKHOLE:
			routes[i] += "(blackhole)"
		case pb.RouteState_ROUTE_STATE_INACTIVE:
			routes[i] += "(inactive: " + rt.InactiveReason + ")"
		}
	}
	main := "no"
	if r.Main {
		main = "yes"
	}
	if len(r.PropagatingVgws) > 0 {
		routes = append(routes, "[propagating from "+strings.Join(r.PropagatingVgws, ",")+"]")
	}
	return []string{r.Id, r.Name, r.VpcId, main, strings.Join(routes, " ")}
}

func routeTableCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "route-table", Short: "Create, list, show and delete route tables"}
	var vpc, name string
	create := &cobra.Command{
		Use: "create --vpc VPC [--name NAME]", Short: "Create an extra route table in a VPC", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreateRouteTable(cmd.Context(), call(&pb.CreateRouteTableRequest{Vpc: vpc, Name: name}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.RouteTable, rtbHeader, rtbRow(r.Msg.RouteTable))
		}),
	}
	create.Flags().StringVar(&vpc, "vpc", "", "VPC name or id (required)")
	create.Flags().StringVar(&name, "name", "", "unique name of the route table")
	required(create, "vpc")

	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc VPC]", Short: "List route tables and their routes", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListRouteTables(cmd.Context(), call(&pb.ListRouteTablesRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.RouteTables, rtbHeader, rtbRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only this VPC's route tables")
	get := &cobra.Command{
		Use: "get ROUTE-TABLE", Short: "Show a route table", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetRouteTable(cmd.Context(), call(&pb.GetRouteTableRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.RouteTable, rtbHeader, rtbRow(r.Msg.RouteTable))
		}),
	}
	del := &cobra.Command{
		Use: "delete ROUTE-TABLE", Short: "Delete a route table no subnet uses", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeleteRouteTable(cmd.Context(), call(&pb.DeleteRouteTableRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted route table "+args[0])
		}),
	}
	var asubnet string
	assoc := &cobra.Command{
		Use: "associate ROUTE-TABLE --subnet SUBNET", Short: "Make a subnet use this route table of its VPC (instead of the one it has)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.AssociateRouteTable(cmd.Context(), call(&pb.AssociateRouteTableRequest{Subnet: asubnet, RouteTable: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Subnet, subnetHeader, subnetRow(r.Msg.Subnet))
		}),
	}
	assoc.Flags().StringVar(&asubnet, "subnet", "", "subnet name or id (required)")
	required(assoc, "subnet")
	c.AddCommand(create, listCmd, get, del, assoc, propagationCmd(o))
	return c
}

func routeCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "route", Short: "List, add and remove routes"}
	var rtb, vpc, dest, target string
	create := &cobra.Command{
		Use: "create (--route-table R | --vpc V) --dest CIDR --target T", Short: "Add a route (target: an active peering pcx-… or the VPC's internet gateway igw-…)", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			id, err := whichTable(cmd, cl, rtb, vpc)
			if err != nil {
				return err
			}
			r, err := cl.vpc.CreateRoute(cmd.Context(), call(&pb.CreateRouteRequest{RouteTable: id, DestinationCidr: dest, Target: target}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.RouteTable, rtbHeader, rtbRow(r.Msg.RouteTable))
		}),
	}
	tableFlags(create, &rtb, &vpc)
	create.Flags().StringVar(&dest, "dest", "", "destination CIDR, e.g. 0.0.0.0/0 (required)")
	create.Flags().StringVar(&target, "target", "", "target: a peering (pcx-…) or internet gateway (igw-…), by id or name (required)")
	required(create, "dest", "target")
	var drtb, dvpc, ddest string
	del := &cobra.Command{
		Use: "delete (--route-table R | --vpc V) --dest CIDR", Short: "Remove a route", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			id, err := whichTable(cmd, cl, drtb, dvpc)
			if err != nil {
				return err
			}
			r, err := cl.vpc.DeleteRoute(cmd.Context(), call(&pb.DeleteRouteRequest{RouteTable: id, DestinationCidr: ddest}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.RouteTable, rtbHeader, rtbRow(r.Msg.RouteTable))
		}),
	}
	tableFlags(del, &drtb, &dvpc)
	del.Flags().StringVar(&ddest, "dest", "", "destination CIDR of the route (required)")
	required(del, "dest")
	var lrtb, lvpc string
	listCmd := &cobra.Command{
		Use: "list [--route-table R | --vpc V]", Short: "List routes, one a line, with their table and state", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			var tables []*pb.RouteTable
			switch {
			case lrtb != "" && lvpc != "":
				return errors.New("give --route-table or --vpc, not both")
			case lrtb != "":
				r, err := cl.vpc.GetRouteTable(cmd.Context(), call(&pb.GetRouteTableRequest{Ref: lrtb}))
				if err != nil {
					return err
				}
				tables = []*pb.RouteTable{r.Msg.RouteTable}
			default:
				r, err := cl.vpc.ListRouteTables(cmd.Context(), call(&pb.ListRouteTablesRequest{Vpc: lvpc}))
				if err != nil {
					return err
				}
				tables = r.Msg.RouteTables
			}
			return printRoutes(o.printer(cmd), tables)
		}),
	}
	listCmd.Flags().StringVar(&lrtb, "route-table", "", "only this route table's routes")
	listCmd.Flags().StringVar(&lvpc, "vpc", "", "only the routes of this VPC's route tables")
	c.AddCommand(create, del, listCmd)
	return c
}

var routeHeader = []string{"ROUTE TABLE", "VPC", "DESTINATION", "TARGET", "STATE"}

// printRoutes prints the routes of tables one a line; as JSON, an array of
// routes, each with its table's and VPC's ids (routeTableId, vpcId).
func printRoutes(p *printer, tables []*pb.RouteTable) error {
	var rows [][]string
	parts := []json.RawMessage{}
	for _, t := range tables {
		for _, r := range t.Routes {
			rows = append(rows, []string{t.Id, t.VpcId, r.DestinationCidr, r.Target, enum(r.State, "ROUTE_STATE_")})
			b, err := marshalJSON(r)
			if err != nil {
				return err
			}
			head, _ := json.Marshal(map[string]string{"routeTableId": t.Id, "vpcId": t.VpcId})
			parts = append(parts, append(append(head[:len(head)-1:len(head)-1], ','), b[1:]...))
		}
	}
	if p.format == "json" {
		b, err := json.Marshal(parts)
		if err != nil {
			return err
		}
		return p.indent(b)
	}
	return p.table(routeHeader, rows)
}

// tableFlags are how route commands name a route table: --route-table,
// or --vpc for the VPC's main one.
func tableFlags(c *cobra.Command, rtb, vpc *string) {
	c.Flags().StringVar(rtb, "route-table", "", "route table name or id")
	c.Flags().StringVar(vpc, "vpc", "", "instead of --route-table: the main route table of this VPC")
}

// whichTable resolves --route-table or --vpc to a route table reference.
func whichTable(cmd *cobra.Command, cl *clients, rtb, vpc string) (string, error) {
	switch {
	case rtb == "" && vpc == "":
		return "", errors.New("say which route table: --route-table R, or --vpc V for the VPC's main one")
	case rtb != "" && vpc != "":
		return "", errors.New("give --route-table or --vpc, not both")
	case vpc != "":
		v, err := cl.vpc.GetVpc(cmd.Context(), call(&pb.GetVpcRequest{Ref: vpc}))
		if err != nil {
			return "", err
		}
		return v.Msg.Vpc.MainRouteTableId, nil
	}
	return rtb, nil
}
