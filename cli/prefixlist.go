package cli

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

var prefixListHeader = []string{"ID", "NAME", "MAX-ENTRIES", "VERSION", "ENTRIES"}

func prefixListRow(pl *pb.PrefixList) []string {
	es := make([]string, len(pl.Entries))
	for i, e := range pl.Entries {
		es[i] = e.Cidr
		if e.Description != "" {
			es[i] += "(" + e.Description + ")"
		}
	}
	return []string{pl.Id, pl.Name, strconv.Itoa(int(pl.MaxEntries)), strconv.FormatUint(pl.Version, 10), strings.Join(es, " ")}
}

// entryFlags parses CIDR[,description] as the user writes an entry.
func entryFlags(vals []string) []*pb.PrefixListEntry {
	out := make([]*pb.PrefixListEntry, len(vals))
	for i, v := range vals {
		cidr, desc, _ := strings.Cut(v, ",")
		out[i] = &pb.PrefixListEntry{Cidr: cidr, Description: desc}
	}
	return out
}

func prefixListCmd(o *Options) *cobra.Command {
	c := &cobra.Command{Use: "prefix-list", Short: "Prefix lists: named sets of CIDRs that security group rules name (sg authorize --prefix-list)"}
	var name string
	var maxEntries uint32
	var entries []string
	create := &cobra.Command{
		Use:   "create --name N --max-entries M [--entry CIDR[,description]]…",
		Short: "Create a prefix list of at most M IPv4 CIDRs",
		Args:  cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.CreatePrefixList(cmd.Context(), call(&pb.CreatePrefixListRequest{Name: name, MaxEntries: maxEntries, Entries: entryFlags(entries)}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.PrefixList, prefixListHeader, prefixListRow(r.Msg.PrefixList))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "unique name of the list (required)")
	create.Flags().Uint32Var(&maxEntries, "max-entries", 0, "the most entries the list may hold, 1–1000; a rule naming the list counts as this many rules of its group (required)")
	create.Flags().StringArrayVar(&entries, "entry", nil, "an entry, CIDR[,description] (repeatable)")
	required(create, "name", "max-entries")

	var add, remove []string
	modify := &cobra.Command{
		Use:   "modify PREFIX-LIST [--add-entry CIDR[,description]]… [--remove-entry CIDR]…",
		Short: "Add and remove entries in one change; every rule naming the list follows at once",
		Args:  cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.ModifyPrefixList(cmd.Context(), call(&pb.ModifyPrefixListRequest{Ref: args[0], AddEntries: entryFlags(add), RemoveCidrs: remove}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.PrefixList, prefixListHeader, prefixListRow(r.Msg.PrefixList))
		}),
	}
	modify.Flags().StringArrayVar(&add, "add-entry", nil, "an entry to add, CIDR[,description] (repeatable)")
	modify.Flags().StringArrayVar(&remove, "remove-entry", nil, "the CIDR of an entry to remove (repeatable)")

	listCmd := &cobra.Command{
		Use: "list", Short: "List prefix lists", Args: cobra.NoArgs,
		RunE: action(o, func(cmd *cobra.Command, cl *clients, _ []string) error {
			r, err := cl.vpc.ListPrefixLists(cmd.Context(), call(&pb.ListPrefixListsRequest{}))
			if err != nil {
				return err
			}
			return list(o.printer(cmd), r.Msg.PrefixLists, prefixListHeader, prefixListRow)
		}),
	}
	get := &cobra.Command{
		Use: "get PREFIX-LIST", Short: "Show a prefix list", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			r, err := cl.vpc.GetPrefixList(cmd.Context(), call(&pb.GetPrefixListRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			return o.printer(cmd).one(r.Msg.PrefixList, prefixListHeader, prefixListRow(r.Msg.PrefixList))
		}),
	}
	del := &cobra.Command{
		Use: "delete PREFIX-LIST", Short: "Delete a prefix list that no security group rule names", Args: cobra.ExactArgs(1),
		RunE: action(o, func(cmd *cobra.Command, cl *clients, args []string) error {
			if _, err := cl.vpc.DeletePrefixList(cmd.Context(), call(&pb.DeletePrefixListRequest{Ref: args[0]})); err != nil {
				return err
			}
			return done(cmd, o, "deleted prefix list "+args[0])
		}),
	}
	c.AddCommand(create, modify, listCmd, get, del)
	return c
}
