package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// synonyms are the verbs people type for ours: cobra suggests ours when
// it sees them ("vpc remove" → "did you mean delete?").
var synonyms = map[string][]string{
	"delete":    {"remove", "rm", "del", "destroy"},
	"remove":    {"delete", "rm", "del", "destroy"},
	"terminate": {"delete", "remove", "rm", "stop", "kill", "destroy"},
	"list":      {"ls", "show", "all"},
	"get":       {"show", "describe", "info", "inspect"},
	"create":    {"add", "new", "make"},
	"run":       {"start", "launch", "create"},
	"associate": {"set", "attach"},
}

// Finish is called once every command is under root: it makes the groups
// strict and adds completion of resource names.
func Finish(o *Options, root *cobra.Command) {
	strict(root)
	addCompletion(o, root)
	group(root)
}

// groups sort the top-level help by what a command is: a process that
// runs the cloud, a resource, or a way to look inside.
var groups = []struct {
	group    cobra.Group
	commands []string
}{
	{cobra.Group{ID: "run", Title: "Run the cloud (processes):"}, []string{"server", "up", "demo"}},
	{cobra.Group{ID: "res", Title: "Resources (list, get, create, delete, …):"},
		[]string{"vpc", "subnet", "route-table", "route", "instance", "peering", "igw", "eip", "cgw", "vgw", "vpn", "dx", "prefix-list", "flow-log", "zone", "host", "edge", "token"}},
	{cobra.Group{ID: "act", Title: "From inside an instance, and watching traffic:"},
		[]string{"ping", "trace", "connect", "forward", "exec", "flows", "events"}},
}

func group(root *cobra.Command) {
	for _, g := range groups {
		root.AddGroup(&g.group)
		for _, name := range g.commands {
			if c, _, err := root.Find([]string{name}); err == nil && c != root {
				c.GroupID = g.group.ID
			}
		}
	}
}

// strict makes every command group under root refuse what it does not
// know: cobra alone prints a group's help and exits 0 on `vpc remove red`,
// so a script never learns its command did nothing. A group run without
// arguments still prints its help.
func strict(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	for _, sub := range c.Commands() {
		sub.SuggestFor = append(sub.SuggestFor, synonyms[sub.Name()]...)
		strict(sub)
	}
	if c.Runnable() {
		return // a group that is also a command (host, edge) checks its own arguments
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return UnknownCommand(cmd, args[0])
	}
}

// UnknownCommand is the error for `PARENT name` when PARENT has no such
// subcommand, with cobra's suggestions.
func UnknownCommand(parent *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, parent.CommandPath())
	if parent.SuggestionsMinimumDistance <= 0 {
		parent.SuggestionsMinimumDistance = 2 // what cobra uses for the root's own suggestions
	}
	if s := slices.Compact(parent.SuggestionsFor(name)); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return fmt.Errorf("%s (see %s --help)", msg, parent.CommandPath())
}
