package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/safety"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/scenarios"
)

func newPerformCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		name       string
		existing   existingFlags
		allow      []string
		scenario   string
		set        []string
		namespace  string
		deployment string
	)
	cmd := &cobra.Command{
		Use:   "perform",
		Short: "Carry out one scenario on a cluster with no app, load or verdict (an upgrade for `rehearse watch` to judge)",
		Long: `perform carries out one scenario of the catalogue (rehearse scenarios) on a
cluster as a rehearsal would, each change journaled before it is made and
everything undone at the end, but deploys nothing, sends no load and judges
nothing: it is the upgrade or the fault as it happens to a cluster nobody is
rehearsing. Run it beside ` + "`rehearse watch`" + ` to see a watch judge an upgrade
it did not start, or to reproduce an incident by hand.

The kind cluster (--cluster) must exist. On a cluster rehearse did not create
(--kubeconfig, --context), a scenario that disrupts it runs only when
--allow-cluster or $` + safety.EnvVar + ` names it. A scenario that acts on an app
(rolling-restart) needs --namespace and --deployment.

Exit codes: 0 when every step ran; 2 for bad input (nothing changed); 3 when
a step failed, the run was interrupted, or a change could not be undone (it
stays in the journal: rehearse restore).`,
		Example: `  rehearse perform --cluster rehearse-watch --scenario node-image-upgrade --set variant=refresh
  rehearse perform --cluster dev --scenario node-drain
  rehearse perform --context staging --allow-cluster staging --scenario rolling-restart --namespace shop --deployment web`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			var problems []string
			bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
			if err := existing.notWithCluster(cmd); err != nil {
				bad("%v", err)
			}
			var tgt *target.Existing
			if existing.chosen(cmd) {
				t, err := existing.connect()
				if err != nil {
					bad("%v", err)
				}
				tgt = t
			} else if err := checkName(name); err != nil {
				bad("%v", err)
			}
			allowed, err := allowList(allow)
			if err != nil {
				bad("%v", err)
			}
			settings, err := parseSettings(set)
			if err != nil {
				bad("%v", err)
			}
			if scenario == "" {
				bad("--scenario: give the scenario to carry out: one of %s (see: rehearse scenarios)", strings.Join(scenarios.Names(), ", "))
			} else if err := scenarios.CheckSettings(scenario, settings); err != nil {
				bad("--scenario/--set: %v (see: rehearse scenarios)", err)
			}
			if errs := validation.IsDNS1123Label(namespace); namespace != "" && len(errs) > 0 {
				bad("--namespace %q: %s", namespace, strings.Join(errs, "; "))
			}
			if (namespace == "") != (deployment == "") {
				bad("--namespace and --deployment name the app a scenario acts on: give both, or neither")
			}
			if len(problems) > 0 {
				return usageErrorf("perform: %s", strings.Join(problems, "\n  "))
			}

			in := notifyInterrupts(cmd.Context(), rehearsalInterrupts, stderr)
			defer in.stop()
			var t target.Target = tgt
			if tgt == nil {
				k, err := kindTarget(in.work, name)
				if err != nil {
					return err
				}
				t = k
			}
			began := time.Now()
			out, err := harness.Perform(in.work, t, harness.Scenario(scenario, settings), harness.PerformOptions{
				Allowed: allowed, Namespace: namespace, Deployment: deployment, Log: stderr, RevertContext: in.cleanup})
			if errors.Is(err, safety.ErrNotAllowed) {
				return usageError(err)
			}
			took := time.Since(began).Round(time.Second)
			switch {
			case err != nil && out.Err == nil:
				return err
			case out.Err != nil:
				fmt.Fprintf(stdout, "perform: %s: step %q failed after %s: %v\n", scenario, out.FailedStep, took, out.Err)
				if err != nil {
					fmt.Fprintf(stdout, "perform: also: %v\n", err)
				}
				return silentExit(exitCannotRun)
			}
			fmt.Fprintf(stdout, "perform: %s: %d %s done in %s\n", scenario, len(out.Steps), plural(len(out.Steps), "step", "steps"), took)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "cluster", "rehearse-run", "the kind cluster (it must exist)")
	existing.register(cmd)
	f.StringSliceVar(&allow, "allow-cluster", nil, "an existing cluster this may disrupt, by kubeconfig context (globs), API server address, or CONTEXT@SERVER; also $"+safety.EnvVar)
	f.StringVar(&scenario, "scenario", "", "what is done: "+strings.Join(scenarios.Names(), ", "))
	f.StringArrayVar(&set, "set", nil, "a setting of the scenario, key=value (repeatable; see: rehearse scenarios)")
	f.StringVar(&namespace, "namespace", "", "the app's namespace, for a scenario that acts on an app")
	f.StringVar(&deployment, "deployment", "", "the app's Deployment, for a scenario that acts on an app")
	_ = cmd.RegisterFlagCompletionFunc("scenario", completeScenarios)
	_ = cmd.RegisterFlagCompletionFunc("set", completeSettings)
	return cmd
}
