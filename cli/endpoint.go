package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

var endpointHeader = []string{"ID", "VPC", "SERVICE", "PREFIX-LIST", "ROUTE-TABLES", "POLICY"}

func endpointRow(e *pb.VpcEndpoint) []string {
	pol := "full access"
	if e.PolicyDocument != "" {
		pol = "custom"
	}
	return []string{e.Id, e.VpcId, e.ServiceName, e.PrefixListId, strings.Join(e.RouteTableIds, " "), pol}
}

var serviceHeader = []string{"NAME", "PREFIX-LIST", "CIDRS", "NODES"}

func serviceRow(s *pb.Service) []string {
	return []string{s.Name, s.PrefixListId, strings.Join(s.Cidrs, " "), strings.Join(s.NodeAddresses, " ")}
}

func (cl *clients) endpoints() openvpcv1connect.EndpointServiceClient {
	return openvpcv1connect.NewEndpointServiceClient(cl.conn.HTTP, cl.conn.URL)
}

// policyArg reads --policy: a JSON document, or @FILE for one in a file.
func policyArg(v string) (string, error) {
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--policy %s: %w", v, err)
		}
		return string(b), nil
	}
	return v, nil
}

func endpointCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "endpoint", Short: "Gateway endpoints (vpce-…): a VPC's private way to a service such as the object store"}
	var vpc, service, pol string
	var tables []string
	create := &cobra.Command{
		Use:   "create --vpc V --service NAME [--route-table R]… [--policy JSON|@FILE]",
		Short: "Create a gateway endpoint; each route table gets a route from the service's prefix list to it",
		Args:  cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			doc, err := policyArg(pol)
			if err != nil {
				return err
			}
			rts, err := mainTable(cmd, cl, vpc, tables)
			if err != nil {
				return err
			}
			r, err := cl.endpoints().CreateVpcEndpoint(cmd.Context(), call(&pb.CreateVpcEndpointRequest{Vpc: vpc, ServiceName: service, RouteTables: rts, PolicyDocument: doc}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Endpoint, endpointHeader, endpointRow(r.Msg.Endpoint))
		}),
	}
	create.Flags().StringVar(&vpc, "vpc", "", "the VPC, by name or id (required)")
	create.Flags().StringVar(&service, "service", "", "the service name, as openvpc service list shows it, e.g. com.openvpc.local.s3 (required)")
	create.Flags().StringArrayVar(&tables, "route-table", nil, "a route table of the VPC to route the service through the endpoint, or main for the VPC's main table (repeatable)")
	create.Flags().StringVar(&pol, "policy", "", "the endpoint policy (IAM-style JSON, or @FILE); default full access")
	required(create, "vpc", "service")

	var mpol string
	var add, remove []string
	modify := &cobra.Command{
		Use:   "modify ENDPOINT [--policy JSON|@FILE] [--add-route-table R]… [--remove-route-table R]…",
		Short: "Change the policy ('' restores full access) and the route tables, in one change",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			doc, err := policyArg(mpol)
			if err != nil {
				return err
			}
			if slices.Contains(add, "main") || slices.Contains(remove, "main") {
				e, err := cl.endpoints().GetVpcEndpoint(cmd.Context(), call(&pb.GetVpcEndpointRequest{Id: args[0]}))
				if err != nil {
					return err
				}
				if add, err = mainTable(cmd, cl, e.Msg.Endpoint.VpcId, add); err != nil {
					return err
				}
				if remove, err = mainTable(cmd, cl, e.Msg.Endpoint.VpcId, remove); err != nil {
					return err
				}
			}
			r, err := cl.endpoints().ModifyVpcEndpoint(cmd.Context(), call(&pb.ModifyVpcEndpointRequest{Id: args[0],
				SetPolicy: cmd.Flags().Changed("policy"), PolicyDocument: doc, AddRouteTables: add, RemoveRouteTables: remove}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Endpoint, endpointHeader, endpointRow(r.Msg.Endpoint))
		}),
	}
	modify.Flags().StringVar(&mpol, "policy", "", "the new endpoint policy (JSON or @FILE); '' for full access")
	modify.Flags().StringArrayVar(&add, "add-route-table", nil, "a route table to add, or main (repeatable)")
	modify.Flags().StringArrayVar(&remove, "remove-route-table", nil, "a route table to remove, or main (repeatable)")

	var lvpc string
	listCmd := &cobra.Command{
		Use: "list [--vpc V]", Short: "List gateway endpoints", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.endpoints().ListVpcEndpoints(cmd.Context(), call(&pb.ListVpcEndpointsRequest{Vpc: lvpc}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Endpoints, endpointHeader, endpointRow)
		}),
	}
	listCmd.Flags().StringVar(&lvpc, "vpc", "", "only this VPC's endpoints")
	get := &cobra.Command{
		Use: "get ENDPOINT", Short: "Show a gateway endpoint (-o json shows its policy)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.endpoints().GetVpcEndpoint(cmd.Context(), call(&pb.GetVpcEndpointRequest{Id: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Endpoint, endpointHeader, endpointRow(r.Msg.Endpoint))
		}),
	}
	del := &cobra.Command{
		Use: "delete ENDPOINT", Short: "Delete a gateway endpoint and its routes", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.endpoints().DeleteVpcEndpoint(cmd.Context(), call(&pb.DeleteVpcEndpointRequest{Id: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted endpoint "+args[0])
		}),
	}
	c.AddCommand(create, modify, listCmd, get, del)
	return c
}

func serviceCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "service", Short: "Services that gateway endpoints lead to"}
	listCmd := &cobra.Command{
		Use: "list", Short: "List registered services, with their prefix lists and nodes", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.endpoints().ListServices(cmd.Context(), call(&pb.ListServicesRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Services, serviceHeader, serviceRow)
		}),
	}
	var cidrs, nodes []string
	register := &cobra.Command{
		Use:   "register NAME --cidr CIDR... [--node ADDR...]",
		Short: "Register a service, or replace its addresses and nodes: what a service node started with a certificate (--join-token) needs first",
		Long: `Register a service that gateway endpoints lead to, or replace the addresses
and nodes of a registered one (its prefix list stays). --cidr are the service's
addresses, which instances reach through their endpoints; --node are the underlay
addresses of its service nodes, to which edges relay endpoint traffic. A service
node with a certificate of role service reads the catalog of a service only while
the service lists its address among --node; give every node each time.`,
		Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.endpoints().RegisterService(cmd.Context(), call(&pb.RegisterServiceRequest{Name: args[0], Cidrs: cidrs, NodeAddresses: nodes}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.Service, serviceHeader, serviceRow(r.Msg.Service))
		}),
	}
	register.Flags().StringSliceVar(&cidrs, "cidr", nil, "an address range the service answers on, e.g. 203.0.113.130/32 (repeat or comma-separate)")
	register.Flags().StringSliceVar(&nodes, "node", nil, "the underlay IPv4 address of a service node (repeat or comma-separate)")
	required(register, "cidr")
	c.AddCommand(listCmd, register)
	return c
}

// mainTable replaces "main" among route table references by the VPC's
// main route table.
func mainTable(cmd *cobra.Command, cl *clients, vpc string, refs []string) ([]string, error) {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r
		if r != "main" {
			continue
		}
		v, err := cl.vpc.GetVpc(cmd.Context(), call(&pb.GetVpcRequest{Ref: vpc}))
		if err != nil {
			return nil, err
		}
		out[i] = v.Msg.Vpc.MainRouteTableId
	}
	return out, nil
}
