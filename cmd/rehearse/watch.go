package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/rehearsal"
	"github.com/kube-rehearse/rehearse/harness/upgrades"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// watchFlags are `rehearse watch`'s: run's (the cluster, the app, the
// clients, the output) without the scenario, and how long to watch.
type watchFlags struct {
	runFlags
	watchFor      time.Duration
	quietFor      time.Duration
	expectUpgrade bool
	stopAfter     int
}

// runOnly are run's flags that mean nothing to a watch, which performs
// nothing.
var runOnly = []string{"scenario", "set", "allow-cluster", "checks"}

func newWatchCmd(stdout, stderr io.Writer) *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Keep the app under load while the cluster upgrades itself, and judge every node-pool upgrade",
		Long: `watch deploys the app (as run does), keeps it under load from both kinds of
client and observes the cluster for --for, performing nothing. Clusters that
upgrade themselves (an AKS auto-upgrade channel, a planned maintenance
window, a Fleet update run, a colleague's az aks nodepool upgrade) are judged
all the same: each node-pool upgrade is found from the node changes it makes
(nodes added, cordoned, deleted, their kubelet replaced), and once its pool
has had no node change for --quiet-period with every node Ready and none cordoned,
it is judged as a rehearsal of its own: the --baseline before its first node
change is its baseline, its node changes its fault, the --recovery after its
last its recovery. Each gets its own results folder under --out and its own
summary line as soon as it is judged.

An upgrade under way when watching began has no baseline, and one still
under way when it ends has no end: both are reported as CANNOT JUDGE, never
passed. Nodes added alone (a scale-up) or a node that went NotReady and came
back are noted, not judged.

Nothing is disrupted, so no --allow-cluster is needed on a cluster rehearse
did not create; the namespace the watch made is deleted at its end. The load
stops by itself after --for.

Exit codes: 0 when every upgrade seen passed, or none happened (with
--expect-upgrade, none happening is 3); 1 when one failed; 3 when one could
not be judged, or the watch could not run or was interrupted; 2 for bad
input.`,
		Example: `  rehearse watch --context staging --for 2h --out nightly
  rehearse watch --cluster dev --for 30m --stop-after 1 --expect-upgrade
  # in a second terminal, an upgrade the watch did not start:
  rehearse perform --cluster dev --scenario node-image-upgrade --set variant=refresh`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			return f.watch(cmd, stdout, stderr)
		}),
	}
	f.register(cmd)
	fl := cmd.Flags()
	for _, name := range runOnly {
		_ = fl.MarkHidden(name)
	}
	// A watch's baseline and recovery are each upgrade's: longer than a
	// rehearsal's, since the upgrade's start is not chosen.
	setDuration(cmd, "baseline", &f.baseline, rehearsal.DefaultWatchBaseline, "load before each upgrade's first node change that is its baseline")
	setDuration(cmd, "recovery", &f.recovery, rehearsal.DefaultWatchRecovery, "load after each upgrade's last node change that is its recovery")
	fl.Lookup("cluster").DefValue, f.cluster = "rehearse-watch", "rehearse-watch"
	fl.DurationVar(&f.watchFor, "for", rehearsal.DefaultWatchFor, fmt.Sprintf("how long to watch (1m to %s); the load stops by itself then", rehearsal.MaxWatchFor))
	fl.DurationVar(&f.quietFor, "quiet-period", upgrades.DefaultQuiet, "a pool's upgrade is over after this long without a node change, every node Ready and none cordoned")
	fl.IntVar(&f.stopAfter, "stop-after", 0, "stop once this many upgrades were judged (0: watch for the whole --for)")
	fl.BoolVar(&f.expectUpgrade, "expect-upgrade", false, "exit 3 when no upgrade happened while watching (a maintenance window that should have upgraded)")
	return cmd
}

func setDuration(cmd *cobra.Command, name string, v *time.Duration, def time.Duration, usage string) {
	fl := cmd.Flags().Lookup(name)
	fl.DefValue, fl.Usage, *v = def.String(), usage, def
}

func (f *watchFlags) watch(cmd *cobra.Command, stdout, stderr io.Writer) error {
	var problems []string
	for _, name := range runOnly {
		if cmd.Flags().Changed(name) {
			problems = append(problems, fmt.Sprintf("--%s is run's: a watch performs nothing and judges every upgrade with its own checks; drop it", name))
		}
	}
	if f.watchFor < time.Minute || f.watchFor > rehearsal.MaxWatchFor {
		problems = append(problems, fmt.Sprintf("--for %s: give 1m to %s", f.watchFor, rehearsal.MaxWatchFor))
	}
	if f.stopAfter < 0 {
		problems = append(problems, fmt.Sprintf("--stop-after %d: give 0 (watch the whole --for) or a count of upgrades", f.stopAfter))
	}
	if f.quietFor <= 0 {
		problems = append(problems, fmt.Sprintf("--quiet-period %s: give a positive duration (e.g. 1m)", f.quietFor))
	}
	// The scenario flags were refused above; run's checks of them would
	// only say it twice.
	f.scenario, f.set = "rolling-restart", nil
	opts, _, err := f.options(cmd, stderr)
	if err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "run: "))
	}
	if len(problems) > 0 {
		return usageErrorf("watch: %s", strings.Join(problems, "\n  "))
	}
	in := notifyInterrupts(cmd.Context(), rehearsalInterrupts, stderr)
	defer in.stop()
	r, err := harness.New(append(opts, harness.WithRevertContext(in.cleanup))...)
	if err != nil {
		return usageError(err)
	}
	results, werr := r.Watch(in.work, harness.WatchOptions{For: f.watchFor, Quiet: f.quietFor, StopAfter: f.stopAfter, Found: func(res *harness.Result) {
		fmt.Fprint(stdout, harness.Summary(res))
		line, _ := verdictLine(res.Report, "above")
		if res.Dir != "" {
			line += "; reports: " + res.Files.HTML
		}
		fmt.Fprintf(stdout, "%s: %s\n\n", res.Record.Scenarios[0].Name, line)
	}})
	closeErr := f.closeCluster(in.cleanup, r, stderr)
	line, code := concludeWatch(results, werr, in.work.Err() != nil, closeErr, f.watchFor, f.expectUpgrade)
	fmt.Fprintln(stdout, line)
	return silentExit(code)
}

// concludeWatch is a watch's final line and exit code: the worst of its
// upgrades' verdicts.
func concludeWatch(results []*harness.Result, werr error, interrupted bool, closeErr error, watched time.Duration, expect bool) (string, int) {
	count := map[verdict.Status]int{}
	for _, r := range results {
		count[r.Report.Outcome]++
	}
	judged := fmt.Sprintf("%d %s judged: %d passed, %d failed, %d cannot judge", len(results), plural(len(results), "upgrade", "upgrades"),
		count[verdict.Pass], count[verdict.Fail], count[verdict.CannotJudge])
	switch {
	case werr != nil && interrupted:
		return "CANNOT JUDGE: the watch was interrupted; " + judged, exitCannotRun
	case werr != nil:
		return fmt.Sprintf("CANNOT JUDGE: the watch could not run: %v; %s", werr, judged), exitCannotRun
	case closeErr != nil:
		return fmt.Sprintf("CANNOT JUDGE: %v; %s", closeErr, judged), exitCannotRun
	case count[verdict.Fail] > 0:
		return "watch FAILED: " + judged, exitFailed
	case count[verdict.CannotJudge] > 0:
		return "CANNOT JUDGE: " + judged, exitCannotRun
	case len(results) == 0 && expect:
		return fmt.Sprintf("CANNOT JUDGE: no node-pool upgrade happened in %s (--expect-upgrade)", watched), exitCannotRun
	case len(results) == 0:
		return fmt.Sprintf("nothing judged: no node-pool upgrade happened in %s", watched), exitPassed
	}
	return "watch passed: " + judged, exitPassed
}
