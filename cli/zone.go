package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var zoneHeader = []string{"ID", "NAME", "VPCS", "RECORDS"}

func zoneRow(z *pb.Zone) []string {
	return []string{z.Id, z.Name, strings.Join(z.VpcIds, ","), strconv.Itoa(len(z.Records))}
}

var zoneRecordHeader = []string{"NAME", "TYPE", "TTL", "VALUE"}

// printZone prints a zone: as JSON whole, as a table its records.
func printZone(cmd *cobra.Command, o *Options, z *pb.Zone) error {
	p := o.printer(cmd)
	if o.Output == "json" {
		return p.one(z, nil, nil)
	}
	if err := p.one(z, zoneHeader, zoneRow(z)); err != nil {
		return err
	}
	if len(z.Records) == 0 {
		return nil
	}
	var rows [][]string
	for _, r := range z.Records {
		rows = append(rows, []string{r.Name, r.Type, strconv.FormatUint(uint64(r.Ttl), 10), r.Value})
	}
	if _, err := cmd.OutOrStdout().Write([]byte("\n")); err != nil {
		return err
	}
	return p.table(zoneRecordHeader, rows)
}

func zoneCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "zone", Short: "Private hosted zones: DNS names the VPC resolver answers in the VPCs associated"}
	var wait bool
	var timeout time.Duration
	waitFlags := func(cmd *cobra.Command) {
		cmd.Flags().BoolVar(&wait, "wait", false, "return once every host in scope of the zone's VPCs answers the change")
		cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long --wait waits")
	}
	ms := func() uint32 { return uint32(min(timeout.Milliseconds(), 1<<31)) }

	var name string
	var vpcs []string
	create := &cobra.Command{
		Use:   "create --name corp.example --vpc V [--vpc V2…] [--wait]",
		Short: "Create a private hosted zone associated with VPCs",
		Args:  cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.zone.CreateZone(cmd.Context(), call(&pb.CreateZoneRequest{Name: name, Vpcs: vpcs, Wait: wait, TimeoutMs: ms()}))
			if err != nil {
				return err
			}
			return printZone(cmd, o, r.Msg.Zone)
		}),
	}
	create.Flags().StringVar(&name, "name", "", "the zone's domain, as corp.example (required)")
	create.Flags().StringArrayVar(&vpcs, "vpc", nil, "a VPC whose resolver answers the zone (name or id; repeat for more; at least one)")
	waitFlags(create)
	required(create, "name", "vpc")

	var filter string
	listCmd := &cobra.Command{
		Use: "list [--vpc VPC]", Short: "List private hosted zones", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.zone.ListZones(cmd.Context(), call(&pb.ListZonesRequest{Vpc: filter}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.Zones, zoneHeader, zoneRow)
		}),
	}
	listCmd.Flags().StringVar(&filter, "vpc", "", "only the zones associated with this VPC")
	get := &cobra.Command{
		Use: "get ZONE", Short: "Show a zone and its records", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.zone.GetZone(cmd.Context(), call(&pb.GetZoneRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return printZone(cmd, o, r.Msg.Zone)
		}),
	}
	del := &cobra.Command{
		Use: "delete ZONE [--wait]", Short: "Delete a zone and its records", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.zone.DeleteZone(cmd.Context(), call(&pb.DeleteZoneRequest{Ref: args[0], Wait: wait, TimeoutMs: ms()})); err != nil {
				return err
			}
			return done(cmd, o, "deleted zone "+args[0])
		}),
	}
	waitFlags(del)

	var vpc string
	assoc := &cobra.Command{
		Use: "associate ZONE --vpc V [--wait]", Short: "Associate a zone with one more VPC", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.zone.AssociateZone(cmd.Context(), call(&pb.AssociateZoneRequest{Ref: args[0], Vpc: vpc, Wait: wait, TimeoutMs: ms()}))
			if err != nil {
				return err
			}
			return printZone(cmd, o, r.Msg.Zone)
		}),
	}
	assoc.Flags().StringVar(&vpc, "vpc", "", "the VPC (name or id; required)")
	waitFlags(assoc)
	required(assoc, "vpc")
	disassoc := &cobra.Command{
		Use: "disassociate ZONE --vpc V [--wait]", Short: "End a zone's association with a VPC (not its last)", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.zone.DisassociateZone(cmd.Context(), call(&pb.DisassociateZoneRequest{Ref: args[0], Vpc: vpc, Wait: wait, TimeoutMs: ms()}))
			if err != nil {
				return err
			}
			return printZone(cmd, o, r.Msg.Zone)
		}),
	}
	disassoc.Flags().StringVar(&vpc, "vpc", "", "the VPC (name or id; required)")
	waitFlags(disassoc)
	required(disassoc, "vpc")

	record := &cobra.Command{Use: "record", Short: "A zone's records: A, AAAA, CNAME, TXT, SRV"}
	var rname, rtype, value string
	var ttl uint32
	add := &cobra.Command{
		Use:   "add ZONE --name www --type A|AAAA|CNAME|TXT|SRV --value V [--ttl 300] [--wait]",
		Short: "Add a record (another value of the same name and type adds to its set)",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.zone.AddZoneRecord(cmd.Context(), call(&pb.AddZoneRecordRequest{Ref: args[0], Name: rname, Type: rtype, Value: value, Ttl: ttl, Wait: wait, TimeoutMs: ms()}))
			if err != nil {
				return err
			}
			return printZone(cmd, o, r.Msg.Zone)
		}),
	}
	add.Flags().StringVar(&rname, "name", "", "relative to the zone (www), @ for its apex, or fully qualified ending in a dot (required)")
	add.Flags().StringVar(&rtype, "type", "", "A, AAAA, CNAME, TXT or SRV (required)")
	add.Flags().StringVar(&value, "value", "", `an address (A, AAAA), a name (CNAME), text (TXT), or "priority weight port target" (SRV) (required)`)
	add.Flags().Uint32Var(&ttl, "ttl", 300, "seconds")
	waitFlags(add)
	required(add, "name", "type", "value")
	rdel := &cobra.Command{
		Use: "delete ZONE --name www --type T [--wait]", Short: "Delete the records of a name and type", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.zone.DeleteZoneRecord(cmd.Context(), call(&pb.DeleteZoneRecordRequest{Ref: args[0], Name: rname, Type: rtype, Wait: wait, TimeoutMs: ms()}))
			if err != nil {
				return err
			}
			return printZone(cmd, o, r.Msg.Zone)
		}),
	}
	rdel.Flags().StringVar(&rname, "name", "", "the record's name, as for add (required)")
	rdel.Flags().StringVar(&rtype, "type", "", "A, AAAA, CNAME, TXT or SRV (required)")
	waitFlags(rdel)
	required(rdel, "name", "type")
	record.AddCommand(add, rdel)

	c.AddCommand(create, listCmd, get, del, assoc, disassoc, record)
	return c
}
