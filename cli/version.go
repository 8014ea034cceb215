package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// BuildInfo is what `openvpc version` says: the module version (a tag,
// or "(devel)" for a build from a work tree), the commit it was built
// from and whether the tree had changes, and the Go that built it. The Go
// toolchain records all of it in the binary.
type BuildInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Time     string `json:"commitTime"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// Build reads the binary's build information.
func Build() BuildInfo {
	b := BuildInfo{Version: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version = info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line of `openvpc --version`.
func (b BuildInfo) String() string {
	commit := b.Commit
	switch {
	case commit == "":
		commit = "unknown (built with -buildvcs=false, or outside a git work tree)"
	case b.Modified:
		commit += " (modified)"
	}
	return fmt.Sprintf("%s, commit %s, %s %s", b.Version, commit, b.Go, b.Platform)
}

func versionCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Show openvpc's version, the commit it was built from and the Go that built it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := Build()
			if o.Output == "json" {
				j, err := json.MarshalIndent(b, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", j)
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "openvpc %s\n", b)
			return err
		},
	}
}
