package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/internal/report"
)

// version overrides the module version of the build info; release and image builds set it with
// -ldflags "-X main.version=...", since a build from a checkout reports "(devel)".
var version string

// buildInfo is what `meshguard version` prints: enough to tell two binaries apart in a bug report.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
}

// readBuildInfo reads the module's build info; read is debug.ReadBuildInfo outside tests.
func readBuildInfo(read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: "(devel)"}
	if info, ok := read(); ok {
		b.GoVersion = info.GoVersion
		if v := info.Main.Version; v != "" {
			b.Version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		b.Version = version
	}
	return b
}

// buildInfoCollector is meshguard_build_info{version,revision,goversion} 1, on the webhook's and
// the checker's /metrics: dashboards and alerts can tell which build runs where.
func buildInfoCollector() prometheus.Collector {
	b := readBuildInfo(debug.ReadBuildInfo)
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshguard_build_info",
		Help: "A metric with a constant 1 labelled by the meshguard version, VCS revision and Go version it was built from.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	return g
}

func (b buildInfo) String() string {
	parts := []string{"meshguard " + b.Version}
	if b.Revision != "" {
		rev := "revision " + b.Revision
		if b.Modified {
			rev += " (modified)"
		}
		parts = append(parts, rev)
	}
	if b.GoVersion != "" {
		parts = append(parts, b.GoVersion)
	}
	return strings.Join(parts, ", ")
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo(debug.ReadBuildInfo)
			switch output {
			case "text", "":
				_, err := fmt.Fprintln(cmd.OutOrStdout(), b)
				return err
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			return usageError(report.UnknownFormat(output, "text", "json"))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// requireSubcommand makes a command group refuse what is not one of its subcommands: without
// it cobra prints the help and exits 0, so a typo in a CI script passes silently.
func requireSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return usageError(unknownCommand(cmd, args[0]))
}

func unknownCommand(parent *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, parent.CommandPath())
	if parent.SuggestionsMinimumDistance <= 0 {
		parent.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
	}
	if s := parent.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return fmt.Errorf("%s (see %s --help)", msg, parent.CommandPath())
}

// newHelpCmd replaces cobra's help command, which prints "Unknown help topic" and exits 0.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil {
				return usageError(unknownCommand(cmd.Root(), args[0]))
			}
			if len(rest) > 0 {
				return usageError(unknownCommand(target, rest[0]))
			}
			return target.Help()
		},
	}
}
