package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios"
)

func newScenariosCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the scenario kinds (rehearse run --scenario) and their settings (--set)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			for i, k := range scenarios.Kinds() {
				if i > 0 {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "%s\n  %s\n", k.Name, k.Summary)
				if k.Disrupts != "" {
					fmt.Fprintf(stdout, "  on a cluster rehearse did not create, needs --allow-cluster: it would %s\n", k.Disrupts)
				}
				keys := make([]string, 0, len(k.Settings))
				for key := range k.Settings {
					keys = append(keys, key)
				}
				sort.Strings(keys)
				for _, key := range keys {
					fmt.Fprintf(stdout, "  --set %s=...  %s\n", key, k.Settings[key])
				}
			}
			return nil
		},
	}
}

func newChecksCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "checks",
		Short: "List the verdict checks (rehearse run --checks)",
		Long: `checks lists the names --checks accepts. Without --checks a rehearsal judges
with its scenarios' own checks. Checks judged per client kind are reported as
<check>/gateway and <check>/service.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			for _, n := range verdict.CheckNames() {
				fmt.Fprintln(stdout, n)
			}
			return nil
		},
	}
}

// Shell completion of flag values. Each lists what the library accepts, so
// the shell never offers what validation would refuse.

func completePresets(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, p := range appspec.Presets() {
		out = append(out, string(p))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeScenarios(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return scenarios.Names(), cobra.ShellCompDirectiveNoFileComp
}

// completeSettings offers "key=" for each setting of the scenario given
// with --scenario (or the default one).
func completeSettings(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	name, _ := cmd.Flags().GetString("scenario")
	k, ok := scenarios.Lookup(name)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for key, help := range k.Settings {
		out = append(out, key+"=\t"+help)
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeList completes a comma-separated list: what is typed before the
// last comma is kept, and names already in the list are not offered again.
func completeList(names func() []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		prefix, seen := "", map[string]bool{}
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			prefix = toComplete[:i+1]
			for _, n := range strings.Split(toComplete[:i], ",") {
				seen[n] = true
			}
		}
		var out []string
		for _, n := range names() {
			if !seen[n] {
				out = append(out, prefix+n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}
