package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/gateway"
	"github.com/kube-rehearse/rehearse/harness/incluster"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/rehearsal"
	"github.com/kube-rehearse/rehearse/harness/safety"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios"
)

// outsideDependencyPort is where --outside-dependency's dependency listens
// on every node.
const outsideDependencyPort = 30095

// runFlags are `rehearse run`'s flags; options turns them into the
// facade's options.
type runFlags struct {
	cluster string
	workers int
	keep    bool

	existing  existingFlags
	allow     []string
	namespace string

	preset         string
	noHeaders      bool
	withDependency bool
	outsideDep     bool
	dnsPolicy      string

	manifests  string
	archives   []string
	deployment string
	service    string
	port       int

	scenario string
	set      []string

	rate           int
	clients        []string
	inClusterPods  int
	inClusterImage string
	gatewayDelay   time.Duration
	warmup         time.Duration
	baseline       time.Duration
	recovery       time.Duration
	checks         []string

	out   string
	quiet bool
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Rehearse: deploy the app, put it under load, disrupt the cluster, judge",
		Long: `run rehearses an application on a cluster: it deploys the app
(the rehearsal app in one of its presets, or your own manifests), waits until
it serves, runs the scenario under load from two kinds of client (a gateway
that routes to pods itself, and a client going through the Service), reverts
every change the scenario made, and judges what the clients saw.

The cluster is a local kind cluster (--cluster), used if it exists and
created otherwise (one control plane, --workers workers); a cluster this run
created is deleted at the end unless --keep. Or it is an existing cluster
(--kubeconfig, --context): the app goes into a namespace this run creates
and deletes, and only the client through the Service runs (its nodes'
addresses must be reachable from here). A scenario that disrupts more than
the app (a drain, an upgrade, a DNS fault, a node loss) runs on a cluster
rehearse did not create only if --allow-cluster or $` + safety.EnvVar + ` names it;
otherwise it is refused (exit 2) before anything is changed.

Status lines go to stderr (not with --quiet); the summary (loads, steps,
verdict, a diagnosis and a fix for each failed check) and one final line go
to stdout: "rehearsal passed", "rehearsal FAILED: N checks failed (...)" or
"CANNOT JUDGE: <why>". Results are written to --out/<run id>/: the run
record (run.json: the whole timeline and the verdict, for rehearse judge,
report, compare and trend), verdict.txt, report.html (charts of the
timeline), junit.xml (for CI test viewers) and summary.md (for a job
summary or a pull-request comment).

Every change the scenario makes is journaled in the cluster before it is
made. A first interrupt (Ctrl-C, SIGTERM) stops the load and reverts; the
observed part is still judged (exit 3). A second interrupt stops reverting:
what is left stays in the journal, and ` + "`rehearse restore`" + ` undoes it.

` + exitCodesShown,
		Example: `  rehearse run
  rehearse run --preset abrupt-shutdown
  rehearse run --scenario node-cordon --set hold=1m
  rehearse run --manifests ./deploy --image-archive app.tar --deployment shop --service shop --port 80
  rehearse run --context staging --allow-cluster staging --scenario node-drain`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, stdout, stderr)
		}),
	}
	f.register(cmd)
	return cmd
}

// register adds run's flags (shared by `rehearse upgrade`) to cmd.
func (f *runFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "rehearse-run", "kind cluster: used if it exists, created (and deleted at the end) if not")
	fl.IntVar(&f.workers, "workers", 2, "workers of a cluster this run creates (0 to 20)")
	fl.BoolVar(&f.keep, "keep", false, "keep a cluster this run created (delete it with: rehearse cluster down --name NAME)")
	f.existing.register(cmd)
	fl.StringVar(&f.namespace, "namespace", "rehearsal", "the app's namespace (on a cluster rehearse did not create, deleted at the end if this run created it)")
	fl.StringSliceVar(&f.allow, "allow-cluster", nil, "an existing cluster this run may disrupt (drain, upgrade, DNS faults, node loss), by kubeconfig context (globs: staging-*), API server address, or CONTEXT@SERVER; also $"+safety.EnvVar)

	fl.StringVar(&f.preset, "preset", string(appspec.PresetWellBehaved), "the rehearsal app's variant: "+strings.Join(presetNames(), ", "))
	fl.BoolVar(&f.noHeaders, "no-headers", false, "the rehearsal app without its attribution headers (X-Pod-Name...), as a user's app: errors are attributed by correlation")
	fl.BoolVar(&f.withDependency, "with-dependency", false, "the rehearsal app calls a dependency (deployed beside it) by its cluster name on every request: for the DNS scenarios")
	fl.BoolVar(&f.outsideDep, "outside-dependency", false, "as --with-dependency, but the dependency is reached as a service outside the cluster: by the control plane node's name (the nodes' DNS knows it) on NodePort "+fmt.Sprint(outsideDependencyPort)+" (kind clusters)")
	fl.StringVar(&f.dnsPolicy, "dns-policy", "", "the rehearsal app's dnsPolicy: ClusterFirst (Kubernetes' default: the cluster's DNS) or Default (the resolver of the node each pod runs on)")

	fl.StringVar(&f.manifests, "manifests", "", "your own app instead of the rehearsal app: `PATH` of a YAML file, a directory of them, or a kustomize directory")
	fl.StringSliceVar(&f.archives, "image-archive", nil, "with --manifests: image archives (docker save, OCI tar) your manifests use, comma-separated; loaded into every node")
	fl.StringVar(&f.deployment, "deployment", "", "with --manifests: the Deployment the scenario disrupts")
	fl.StringVar(&f.service, "service", "", "with --manifests: the Service clients use")
	fl.IntVar(&f.port, "port", 80, "with --manifests: the Service port clients use")

	fl.StringVar(&f.scenario, "scenario", "rolling-restart", "what is done to the cluster: "+strings.Join(scenarios.Names(), ", ")+" (see: rehearse scenarios)")
	fl.StringArrayVar(&f.set, "set", nil, "a setting of the scenario, key=value (repeatable; see: rehearse scenarios)")

	fl.IntVar(&f.rate, "rate", rehearsal.DefaultRate, fmt.Sprintf("requests per second of each client kind (%d to %d)", load.MinRate, load.MaxRate))
	fl.StringSliceVar(&f.clients, "clients", []string{timeline.ClientGateway.String(), timeline.ClientService.String()},
		"client kinds under load, comma-separated: "+strings.Join(clientNames(), ", ")+" (in-cluster: generator pods in the app's namespace, for clusters this machine cannot reach)")
	fl.IntVar(&f.inClusterPods, "in-cluster-pods", 1, fmt.Sprintf("with --clients in-cluster: generator pods, sharing --rate (1 to %d)", incluster.MaxPods))
	fl.StringVar(&f.inClusterImage, "in-cluster-image", "", "with --clients in-cluster: the generator's image as the cluster pulls it (default: "+incluster.Image+", loaded into kind nodes by rehearse; for other clusters push `rehearse image load-generator`'s archive to your registry)")
	fl.DurationVar(&f.gatewayDelay, "gateway-delay", gateway.DefaultSyncDelay, "how late endpoint changes reach the gateway client, as in a real ingress controller")
	fl.DurationVar(&f.warmup, "warmup", rehearsal.DefaultWarmup, "longest wait for the load to be served cleanly before the baseline")
	fl.DurationVar(&f.baseline, "baseline", rehearsal.DefaultBaseline, "load before the scenario starts")
	fl.DurationVar(&f.recovery, "recovery", rehearsal.DefaultRecovery, "load after the scenario ends")
	fl.StringSliceVar(&f.checks, "checks", nil, "verdict checks, comma-separated (default: the scenario's own; see: rehearse checks)")

	fl.StringVar(&f.out, "out", "rehearsal-results", "results go to `DIR`/<run id>/ (run.json, report.html, junit.xml, summary.md, verdict.txt)")
	fl.BoolVar(&f.quiet, "quiet", false, "no status lines; only the summary and the final line")

	_ = cmd.MarkFlagFilename("manifests", "yaml", "yml", "json")
	_ = cmd.MarkFlagFilename("image-archive", "tar")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("preset", completePresets)
	_ = cmd.RegisterFlagCompletionFunc("scenario", completeScenarios)
	_ = cmd.RegisterFlagCompletionFunc("set", completeSettings)
	_ = cmd.RegisterFlagCompletionFunc("checks", completeList(verdict.CheckNames))
	_ = cmd.RegisterFlagCompletionFunc("clients", completeList(clientNames))
}

func presetNames() []string {
	var out []string
	for _, p := range appspec.Presets() {
		out = append(out, string(p))
	}
	return out
}

func clientNames() []string {
	var out []string
	for _, c := range timeline.ClientKinds() {
		out = append(out, c.String())
	}
	return out
}

// options checks every flag (every problem at once) and returns the
// facade's options and the scenario. Nothing is contacted.
func (f *runFlags) options(cmd *cobra.Command, stderr io.Writer) ([]harness.Option, harness.Planned, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	changed := cmd.Flags().Changed

	// The cluster is validated again by harness.New; here so that its
	// problems are listed with the others.
	existing := f.existing.chosen(cmd)
	var tgt *target.Existing
	if existing {
		for _, name := range []string{"cluster", "workers", "keep"} {
			if changed(name) {
				bad("--%s is for a local kind cluster: drop it with --kubeconfig or --context (an existing cluster)", name)
			}
		}
		t, err := f.existing.connect()
		if err != nil {
			bad("%v", err)
		}
		tgt = t
	} else {
		problems = append(problems, clusterProblems(cluster.Config{Name: f.cluster, Workers: f.workers})...)
	}
	allowed, err := allowList(f.allow)
	if err != nil {
		bad("%v", err)
	}

	var app harness.App
	if f.manifests == "" {
		for _, name := range []string{"image-archive", "deployment", "service", "port"} {
			if changed(name) {
				bad("--%s is for your own app: give --manifests too (or drop --%s to rehearse the rehearsal app)", name, name)
			}
		}
		spec, err := appspec.PresetSpec(appspec.Preset(f.preset), appspec.Image)
		if err != nil {
			bad("--preset %q is not a preset: use one of %s", f.preset, strings.Join(presetNames(), ", "))
		} else {
			if f.noHeaders {
				spec = spec.WithoutAttributionHeaders()
			}
			switch {
			case f.withDependency && f.outsideDep:
				bad("--with-dependency and --outside-dependency both add the dependency: give one")
			case f.outsideDep && existing:
				bad("--outside-dependency needs a kind cluster rehearse can name a node of: drop it with --kubeconfig or --context")
			case f.outsideDep:
				// A rooted name: one query, no search domains.
				spec = spec.WithOutsideDependency(f.cluster+"-control-plane.", outsideDependencyPort)
			case f.withDependency:
				spec = spec.WithDependency()
			}
			switch corev1.DNSPolicy(f.dnsPolicy) {
			case "", corev1.DNSClusterFirst, corev1.DNSDefault:
				spec.DNSPolicy = corev1.DNSPolicy(f.dnsPolicy)
			default:
				bad("--dns-policy %q: use ClusterFirst or Default", f.dnsPolicy)
			}
			app = harness.RehearsalApp(spec)
		}
	} else {
		if changed("preset") || f.noHeaders || f.withDependency || f.outsideDep || changed("dns-policy") {
			bad("--preset, --no-headers, --with-dependency, --outside-dependency and --dns-policy choose the rehearsal app: drop them with --manifests (your own app)")
		}
		if _, err := os.Stat(f.manifests); err != nil {
			bad("--manifests %s: %v: give a YAML file, a directory of them, or a kustomize directory", f.manifests, errors.Unwrap(err))
		}
		if f.deployment == "" {
			bad("--manifests needs --deployment: the Deployment the scenario disrupts")
		}
		if f.service == "" {
			bad("--manifests needs --service: the Service clients use (and --port if not 80)")
		}
		if f.port < 1 || f.port > 65535 {
			bad("--port %d: give the Service's port (1 to 65535)", f.port)
		}
		for _, a := range f.archives {
			if _, err := os.Stat(a); err != nil {
				bad("--image-archive %s: %v: give an archive made by `docker save -o app.tar image:tag`", a, errors.Unwrap(err))
			}
		}
		app = harness.Manifests(f.manifests, f.deployment, f.service, int32(f.port), f.archives...)
	}

	if errs := validation.IsDNS1123Label(f.namespace); len(errs) > 0 {
		bad("--namespace %q: %s", f.namespace, strings.Join(errs, "; "))
	}
	app.Namespace = f.namespace

	settings, err := parseSettings(f.set)
	if err != nil {
		bad("%v", err)
	}
	if err := scenarios.CheckSettings(f.scenario, settings); err != nil {
		flag := "--set"
		if _, known := scenarios.Lookup(f.scenario); !known {
			flag = "--scenario"
		}
		bad("%s: %v (see: rehearse scenarios)", flag, err)
	}

	if f.rate < load.MinRate || f.rate > load.MaxRate {
		bad("--rate %d: use %d to %d requests per second per client kind", f.rate, load.MinRate, load.MaxRate)
	}
	gateway, service, inCluster := false, false, false
	clients := f.clients
	if existing && !changed("clients") {
		// An existing cluster's pod addresses are not routed here: only the
		// client through the Service can reach the app.
		clients = []string{timeline.ClientService.String()}
	}
	for _, c := range clients {
		switch k, err := timeline.ParseClientKind(strings.TrimSpace(c)); {
		case err == nil && k == timeline.ClientGateway:
			gateway = true
		case err == nil && k == timeline.ClientService:
			service = true
		case err == nil && k == timeline.ClientInCluster:
			inCluster = true
		default:
			bad("--clients: %q is not a client kind: use %s", c, strings.Join(clientNames(), ", "))
		}
	}
	if len(f.clients) == 0 {
		bad("--clients is empty: use %s", strings.Join(clientNames(), ", "))
	}
	if existing && gateway {
		bad("--clients %s: the gateway client needs pod addresses routed to this machine, which an existing cluster does not offer: use --clients %s",
			timeline.ClientGateway, timeline.ClientService)
	}
	if !inCluster && (changed("in-cluster-pods") || changed("in-cluster-image")) {
		bad("--in-cluster-pods and --in-cluster-image are for the in-cluster client: add --clients %s", timeline.ClientInCluster)
	}
	if f.inClusterPods < 1 || f.inClusterPods > incluster.MaxPods {
		bad("--in-cluster-pods %d: use 1 to %d", f.inClusterPods, incluster.MaxPods)
	} else if inCluster && f.rate < f.inClusterPods {
		bad("--rate %d over --in-cluster-pods %d: give each pod at least 1 request per second", f.rate, f.inClusterPods)
	}
	// Zero is refused rather than passed on: the library reads it as "the
	// default", which is not what someone typing 0 means.
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"gateway-delay", f.gatewayDelay}, {"warmup", f.warmup}, {"baseline", f.baseline}, {"recovery", f.recovery}} {
		if d.v <= 0 {
			bad("--%s %s: give a positive duration (e.g. 5s)", d.flag, d.v)
		}
	}
	if len(f.checks) > 0 {
		if err := verdict.ValidateChecks(f.checks); err != nil {
			bad("--checks: %v (see: rehearse checks)", err)
		}
	}
	if fi, err := os.Stat(f.out); err == nil && !fi.IsDir() {
		bad("--out %s is a file: give a directory (created if missing)", f.out)
	}
	if len(problems) > 0 {
		return nil, harness.Planned{}, usageErrorf("run: %s", strings.Join(problems, "\n  "))
	}

	log := stderr
	if f.quiet {
		log = io.Discard
	}
	opts := []harness.Option{
		harness.WithAllowed(allowed),
		harness.WithApp(app),
		harness.WithRate(f.rate),
		harness.WithClients(gateway, service),
		harness.WithGatewayDelay(f.gatewayDelay),
		harness.WithPhases(f.warmup, f.baseline, f.recovery),
		harness.WithOutput(f.out),
		harness.WithLog(log),
	}
	if inCluster {
		opts = append(opts, harness.WithInClusterLoad(f.inClusterPods, f.inClusterImage))
	}
	if existing {
		opts = append(opts, harness.WithTarget(tgt))
	} else {
		opts = append(opts, harness.WithKindCluster(f.cluster, f.workers))
	}
	if f.keep {
		opts = append(opts, harness.WithKeepCluster())
	}
	if len(f.checks) > 0 {
		opts = append(opts, harness.WithChecks(f.checks...))
	}
	return opts, harness.Scenario(f.scenario, settings), nil
}

func (f *runFlags) run(cmd *cobra.Command, stdout, stderr io.Writer) error {
	opts, scenario, err := f.options(cmd, stderr)
	if err != nil {
		return err
	}
	in := notifyInterrupts(cmd.Context(), rehearsalInterrupts, stderr)
	defer in.stop()
	r, err := harness.New(append(opts, harness.WithRevertContext(in.cleanup))...)
	if err != nil {
		return usageError(err) // New contacts nothing: its complaints are about the flags
	}
	res, runErr := r.Rehearse(in.work, scenario)
	if errors.Is(runErr, safety.ErrNotAllowed) {
		return usageError(runErr) // refused before anything was changed
	}
	closeErr := f.closeCluster(in.cleanup, r, stderr)

	if res != nil && res.Report.Outcome != "" {
		fmt.Fprint(stdout, harness.Summary(res))
	}
	if res != nil && res.Dir != "" {
		fmt.Fprintf(stdout, "reports: %s (open in a browser), %s (CI test results), %s (job summary), %s (the run record: rehearse judge|report|compare)\n",
			res.Files.HTML, res.Files.JUnit, res.Files.Markdown, res.Files.Record)
	}
	line, code := conclude(res, runErr, in.work.Err() != nil, closeErr)
	fmt.Fprintln(stdout, line)
	return silentExit(code)
}

// closeCluster deletes a cluster the run created, unless kept, or unless a
// second interrupt asked to stop cleaning up.
func (f *runFlags) closeCluster(ctx context.Context, r *harness.Rehearser, stderr io.Writer) error {
	if ctx.Err() != nil {
		if !f.keep {
			fmt.Fprintf(stderr, "cluster %s not deleted (interrupted twice); if this run created it: rehearse cluster down --name %s\n", f.cluster, f.cluster)
		}
		return nil
	}
	if err := r.Close(ctx); err != nil {
		return fmt.Errorf("deleting cluster %s: %w (retry with: rehearse cluster down --name %s)", f.cluster, err, f.cluster)
	}
	return nil
}

// conclude is the final line and exit code of a rehearsal. The verdict
// decides, except that a rehearsal that did not run to the end is not
// judged complete (3), and a run that left a change it could not undo
// never passes (3): the cluster is not as it was.
func conclude(res *harness.Result, runErr error, interrupted bool, closeErr error) (string, int) {
	if runErr != nil {
		judged := ""
		if res != nil && res.Report.Outcome != "" {
			judged = "; what was observed until then is judged above"
		}
		if interrupted {
			return "CANNOT JUDGE: interrupted before the rehearsal ended" + judged, exitCannotRun
		}
		return fmt.Sprintf("CANNOT JUDGE: the rehearsal could not run: %v%s", runErr, judged), exitCannotRun
	}
	var undone []string
	if res.RevertErr != nil {
		undone = append(undone, fmt.Sprintf("a change could not be reverted (%v): run `rehearse restore`", res.RevertErr))
	}
	if closeErr != nil {
		undone = append(undone, closeErr.Error())
	}
	if res.Report.Outcome == verdict.Pass && len(undone) > 0 {
		return "CANNOT JUDGE: the verdict passed, but " + strings.Join(undone, "; "), exitCannotRun
	}
	where := "above"
	if res.Dir != "" {
		where = "above and " + res.Dir
	}
	line, code := verdictLine(res.Report, where)
	if code == exitFailed && len(undone) > 0 {
		line += "; also " + strings.Join(undone, "; ")
	}
	return line, code
}

// verdictLine is the final line and exit code of a verdict; where says
// where its explanation is.
func verdictLine(rep verdict.Report, where string) (string, int) {
	switch rep.Outcome {
	case verdict.Pass:
		return "rehearsal passed", exitPassed
	case verdict.Fail:
		n := len(rep.Failed())
		return fmt.Sprintf("rehearsal FAILED: %d %s failed (see %s)", n, plural(n, "check", "checks"), where), exitFailed
	}
	why := rep.Reason
	if why == "" {
		var names []string
		for _, c := range rep.Unjudged() {
			names = append(names, c.Name)
		}
		why = "no verdict"
		if len(names) > 0 {
			why = "these checks could not judge: " + strings.Join(names, ", ")
		}
	}
	return "CANNOT JUDGE: " + why, exitCannotRun
}

// allowList reads --allow-cluster and $REHEARSE_ALLOW_CLUSTERS together.
func allowList(flags []string) (safety.AllowList, error) {
	allowed, err := safety.Parse(flags...)
	if err != nil {
		return allowed, fmt.Errorf("--allow-cluster: %w", err)
	}
	env, err := safety.FromEnv()
	if err != nil {
		return allowed, fmt.Errorf("$%s: %w", safety.EnvVar, err)
	}
	return allowed.Merge(env), nil
}

// parseSettings reads --set key=value flags (every problem at once).
func parseSettings(set []string) (map[string]string, error) {
	settings := map[string]string{}
	var problems []string
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			problems = append(problems, fmt.Sprintf("--set %q: write key=value (see: rehearse scenarios)", kv))
		case settings[k] != v && hasKey(settings, k):
			problems = append(problems, fmt.Sprintf("--set %s given twice (%q and %q): give it once", k, settings[k], v))
		default:
			settings[k] = v
		}
	}
	if len(problems) > 0 {
		return settings, errors.New(strings.Join(problems, "\n  "))
	}
	return settings, nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
