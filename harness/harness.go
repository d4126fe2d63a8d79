// Package harness is the one entry point of the rehearsal library: the
// command line, the project's suites and users' own `go test` modules all
// rehearse through it.
//
//	r, err := harness.New(harness.WithKindCluster("rehearse-shop", 2), harness.WithApp(harness.Preset("well-behaved")))
//	res, err := r.Rehearse(ctx, harness.RollingRestart())
//	// res.Report.Outcome is pass, fail or cannot judge
//
// Rehearse restores what earlier runs left (their journals), deploys the
// app, waits until it serves, rehearses the scenarios under load (package
// rehearsal), reverts every journaled change, judges (package verdict) and
// writes the results.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/clientlog"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/deploy"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/incluster"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/rehearsal"
	"github.com/kube-rehearse/rehearse/harness/safety"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/scenarios"
)

// App is the application a rehearsal deploys: the rehearsal app (a preset
// or a spec), or the user's own manifests and image archives.
type App struct {
	Spec *appspec.Spec // the rehearsal app

	Manifests  string   // a YAML file, a directory of them, or a kustomize directory
	Archives   []string // image archives the manifests use (docker save, OCI tar)
	Deployment string   // the Deployment scenarios restart
	Service    string   // the Service clients use
	Port       int32    // its port

	Namespace string // where it goes (default "rehearsal")
	Path      string // the path clients request (default "/")

	err error // a problem found when the App was made (an unknown preset), reported by New
}

// Preset is the rehearsal app in one of its presets (appspec.Presets).
func Preset(name string) App {
	spec, err := appspec.PresetSpec(appspec.Preset(name), appspec.Image)
	if err != nil {
		return App{err: err}
	}
	return App{Spec: &spec}
}

// RehearsalApp is the rehearsal app with a spec of the caller's.
func RehearsalApp(spec appspec.Spec) App { return App{Spec: &spec} }

// Manifests is the user's own application: its manifests, the images they
// use (as archives, since there may be no registry), the Deployment to
// disrupt and the Service (and port) clients use.
func Manifests(path, deployment, service string, port int32, archives ...string) App {
	return App{Manifests: path, Archives: archives, Deployment: deployment, Service: service, Port: port}
}

func (a App) validate() error {
	var errs []error
	switch {
	case a.err != nil:
		errs = append(errs, a.err)
	case a.Spec != nil && a.Manifests != "":
		errs = append(errs, errors.New("give either the rehearsal app or manifests, not both"))
	case a.Spec != nil:
		if err := a.Spec.Validate(); err != nil {
			errs = append(errs, err)
		}
	case a.Manifests != "":
		if _, err := os.Stat(a.Manifests); err != nil {
			errs = append(errs, fmt.Errorf("manifests %s: %v", a.Manifests, err))
		}
		if a.Deployment == "" || a.Service == "" || a.Port == 0 {
			errs = append(errs, errors.New("manifests need the Deployment to disrupt and the Service and port clients use"))
		}
		for _, ar := range a.Archives {
			if _, err := os.Stat(ar); err != nil {
				errs = append(errs, fmt.Errorf("image archive %s: %v", ar, err))
			}
		}
	default:
		errs = append(errs, errors.New("no application: use harness.Preset, harness.RehearsalApp or harness.Manifests"))
	}
	return errors.Join(errs...)
}

// Option configures a Rehearser, in the style of kind's cluster.Provider.
type Option func(*Rehearser)

// WithTarget rehearses on a cluster the caller prepared.
func WithTarget(t target.Target) Option { return func(r *Rehearser) { r.target = t } }

// WithAllowed allows disrupting clusters the harness did not create (see
// package safety: a context name, an API server address, or both). Without
// it, a rehearsal that would drain, upgrade or break anything beyond its
// own namespace on such a cluster is refused before anything is changed.
func WithAllowed(a safety.AllowList) Option { return func(r *Rehearser) { r.allowed = a } }

// WithKindCluster rehearses on the local kind cluster of that name: used if
// it exists, created (one control plane, workers workers, the "from"
// Kubernetes version) if not. A cluster it created is deleted by Close,
// unless WithKeepCluster.
func WithKindCluster(name string, workers int) Option {
	return func(r *Rehearser) { r.kindName, r.kindWorkers = name, workers }
}

// WithKeepCluster keeps a cluster the Rehearser created when it closes.
func WithKeepCluster() Option { return func(r *Rehearser) { r.keep = true } }

// WithApp sets the application.
func WithApp(a App) Option { return func(r *Rehearser) { r.app = a } }

// WithRate sets each client's requests per second (default 100).
func WithRate(perClient int) Option { return func(r *Rehearser) { r.plan.Rate = perClient } }

// WithClients chooses the client kinds (default both).
func WithClients(gateway, service bool) Option {
	return func(r *Rehearser) { r.gateway, r.service = gateway, service }
}

// WithInClusterLoad runs the in-cluster client too: pods generator pods in
// the app's namespace sending, together, the rate of a client to the
// Service's cluster address (package incluster). For clusters whose nodes
// this machine cannot reach, or rates it cannot send. image is the
// generator's image as the cluster can pull it ("" for incluster.Image,
// which the harness loads into kind's nodes itself).
func WithInClusterLoad(pods int, image string) Option {
	return func(r *Rehearser) { r.inClusterPods, r.inClusterImage = pods, image }
}

// WithGatewayDelay sets how late endpoint changes reach the gateway client
// (default 1 s).
func WithGatewayDelay(d time.Duration) Option { return func(r *Rehearser) { r.plan.GatewayDelay = d } }

// WithPhases sets the longest warm-up and the baseline and recovery lengths.
func WithPhases(warmup, baseline, recovery time.Duration) Option {
	return func(r *Rehearser) { r.plan.Warmup, r.plan.Baseline, r.plan.Recovery = warmup, baseline, recovery }
}

// WithThresholds sets the limits verdicts judge against.
func WithThresholds(th verdict.Thresholds) Option {
	return func(r *Rehearser) { r.plan.Thresholds = &th }
}

// WithChecks chooses the verdict checks (default: each scenario's own).
func WithChecks(names ...string) Option { return func(r *Rehearser) { r.plan.Checks = names } }

// WithOutput writes each rehearsal's results to a directory, one folder
// per run: the run record (run.json, with the whole timeline), verdict.txt,
// report.html, junit.xml, summary.md (default: none written).
func WithOutput(dir string) Option { return func(r *Rehearser) { r.out = dir } }

// WithLog sends status lines to w (default: none).
func WithLog(w io.Writer) Option { return func(r *Rehearser) { r.log = w } }

// WithName names what is rehearsed in words that stay the same from one run
// to the next ("checkout/surge-upgrade"), so that nightly runs can be
// compared (default: the app and the scenarios).
func WithName(name string) Option { return func(r *Rehearser) { r.name = name } }

// WithRevertContext sets the context reverts run under: it should outlive
// the rehearsal's (a first Ctrl-C ends the rehearsal and reverting must
// still happen; a second one may end this context).
func WithRevertContext(ctx context.Context) Option {
	return func(r *Rehearser) { r.plan.RevertContext = ctx }
}

// Rehearser rehearses an application on one cluster.
type Rehearser struct {
	target      target.Target
	kindName    string
	kindWorkers int
	created     *cluster.Cluster
	keep        bool
	allowed     safety.AllowList

	app              App
	name             string
	inClusterPods    int
	inClusterImage   string
	generatorLoaded  bool
	gateway, service bool
	out              string
	log              io.Writer
	plan             rehearsal.Plan
	imagesLoaded     bool
}

// New checks the options (every problem at once) and returns a Rehearser.
// Nothing is created or contacted until Rehearse.
func New(opts ...Option) (*Rehearser, error) {
	r := &Rehearser{gateway: true, service: true}
	for _, o := range opts {
		o(r)
	}
	if r.log == nil {
		r.log = io.Discard
	}
	var errs []error
	if err := r.app.validate(); err != nil {
		errs = append(errs, err)
	}
	if r.target == nil && r.kindName == "" {
		errs = append(errs, errors.New("no cluster: use harness.WithKindCluster(name, workers) or harness.WithTarget"))
	}
	if r.kindName != "" {
		if err := (cluster.Config{Name: r.kindName, Image: "x", Workers: r.kindWorkers}).Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if !r.gateway && !r.service && r.inClusterPods == 0 {
		errs = append(errs, errors.New("no client: run the gateway client, the service client, the in-cluster client, or several"))
	}
	if r.inClusterPods < 0 || r.inClusterPods > incluster.MaxPods {
		errs = append(errs, fmt.Errorf("in-cluster load pods %d: use 1 to %d", r.inClusterPods, incluster.MaxPods))
	}
	if r.plan.Rate != 0 && (r.plan.Rate < load.MinRate || r.plan.Rate > load.MaxRate) {
		errs = append(errs, fmt.Errorf("rate %d per client: use %d to %d", r.plan.Rate, load.MinRate, load.MaxRate))
	}
	if len(r.plan.Checks) > 0 {
		if err := verdict.ValidateChecks(r.plan.Checks); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	return r, nil
}

// Target returns the cluster, creating the kind cluster if it is missing.
func (r *Rehearser) Target(ctx context.Context) (target.Target, error) {
	if r.target != nil {
		return r.target, nil
	}
	c, created, err := KindCluster(ctx, r.kindName, r.kindWorkers, r.log)
	if err != nil {
		return nil, err
	}
	if created {
		r.created = c
	}
	r.target = target.NewKind(c, true)
	return r.target, nil
}

// KindCluster connects to the kind cluster of that name, or creates it
// (Docker engine and node image prepared on the way) when it does not
// exist; created says which.
func KindCluster(ctx context.Context, name string, workers int, log io.Writer) (c *cluster.Cluster, created bool, err error) {
	if err := engine.Ensure(ctx, engine.Options{Out: log}); err != nil {
		return nil, false, err
	}
	c = cluster.New(cluster.Config{Name: name, Workers: workers})
	if ok, err := c.Exists(); err != nil {
		return nil, false, err
	} else if ok {
		return c, false, c.Connect(ctx)
	}
	from, _ := nodeimage.Versions()
	img, err := nodeimage.Image(ctx, nodeimage.Options{Version: from, Out: log})
	if err != nil {
		return nil, false, err
	}
	c = cluster.New(cluster.Config{Name: name, Image: img.Image, Workers: workers})
	start := time.Now()
	if err := c.Create(ctx); err != nil {
		_ = c.Delete(context.WithoutCancel(ctx))
		return nil, false, err
	}
	fmt.Fprintf(log, "cluster %s: %d nodes Ready in %s (node image %s)\n", name, workers+1, time.Since(start).Round(time.Second), img.Image)
	return c, true, nil
}

// Close deletes the kind cluster this Rehearser created (unless kept).
func (r *Rehearser) Close(ctx context.Context) error {
	if r.created == nil || r.keep {
		return nil
	}
	c := r.created
	r.created, r.target = nil, nil
	return c.Delete(ctx)
}

// Planned is a scenario to rehearse, built once the app is deployed (it
// may need the app's Deployment, or the cluster's nodes). Its kind is known
// before: whether it may disrupt the cluster is decided before anything is
// changed.
type Planned struct {
	kind  string
	build func(ctx context.Context, env scenarios.Env) (scenario.Scenario, error)
}

// Scenario is a scenario from the catalogue (package scenarios) by kind and
// settings.
func Scenario(kind string, settings map[string]string) Planned {
	return Planned{kind: kind, build: func(ctx context.Context, env scenarios.Env) (scenario.Scenario, error) {
		return scenarios.Build(ctx, kind, settings, env)
	}}
}

// RollingRestart restarts the app's Deployment.
func RollingRestart() Planned { return Scenario("rolling-restart", nil) }

// Fixed is a scenario built by the caller. Unless its kind is one of the
// catalogue's, it counts as disrupting the cluster.
func Fixed(s scenario.Scenario) Planned {
	return Planned{kind: s.Kind, build: func(context.Context, scenarios.Env) (scenario.Scenario, error) { return s, nil }}
}

// Result is a rehearsal's outcome.
type Result struct {
	Run      string
	Report   verdict.Report
	Timeline *timeline.Timeline
	Loads    map[timeline.ClientKind]load.Summary
	Outcomes []scenario.Outcome
	Deployed deploy.Deployed
	// ClientLog is what client-go logged during the rehearsal (watch
	// errors while the API server was away, throttling), kept out of the
	// output; written as client-go.log.
	ClientLog []byte
	// Record is the run record every report is rendered from (package
	// reports): the timeline, the verdict and what was rehearsed where.
	Record *record.Record
	// Dir is where the results were written ("" when not).
	Dir string
	// Files are the results written there.
	Files reports.Files
	// RevertErr: an undo failed; the journal keeps it for `rehearse restore`.
	RevertErr error
}

// Rehearse deploys the app and rehearses the scenarios. The error is for a
// rehearsal that could not run (or was interrupted): the result then holds
// what was observed and judged until then, if anything.
func (r *Rehearser) Rehearse(ctx context.Context, builds ...Planned) (*Result, error) {
	if len(builds) == 0 {
		return nil, errors.New("harness: no scenario to rehearse: give one, e.g. harness.RollingRestart()")
	}
	tgt, err := r.Target(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.mayDisrupt(tgt, builds); err != nil {
		return nil, err
	}
	client := tgt.Client()
	if rep, err := journal.Restore(ctx, client, scenarios.Undos(tgt)); err != nil {
		return nil, fmt.Errorf("undoing what earlier runs left: %w (see `rehearse restore`)", err)
	} else if len(rep.Journals) > 0 {
		fmt.Fprintf(r.log, "restored what earlier runs left:\n%s", rep)
	}

	plan, dep, done, err := r.setUp(ctx, tgt)
	defer done()
	if err != nil {
		return nil, err
	}
	res := &Result{Run: newRunID(), Deployed: dep}
	env := scenarios.Env{Target: tgt, Namespace: dep.Target.Namespace, Deployment: dep.Deployment}
	var scs []scenario.Scenario
	for _, b := range builds {
		s, err := b.build(ctx, env)
		if err != nil {
			return nil, err
		}
		scs = append(scs, s)
	}
	plan.Scenarios, plan.Undos = scs, scenarios.Undos(tgt)
	j, err := journal.Open(ctx, client, res.Run)
	if err != nil {
		return nil, err
	}
	plan.Journal = j
	rec := r.newRecord(ctx, res.Run, tgt, dep, plan, scs)
	fmt.Fprintf(r.log, "rehearsal %s on %s: %s under %d requests/s per client\n", res.Run, tgt.Name(),
		dep.Target.Namespace+"/"+dep.Deployment, rateOr(plan.Rate))
	logs := clientlog.Start()
	out, runErr := rehearsal.Run(ctx, plan)
	res.ClientLog = logs.Stop()
	if cerr := j.Close(context.WithoutCancel(ctx)); cerr != nil && runErr == nil && out.RevertErr == nil {
		out.RevertErr = cerr
	}
	res.Report, res.Timeline, res.Loads, res.Outcomes, res.RevertErr = out.Report, out.Timeline, out.Loads, out.Outcomes, out.RevertErr
	if res.Timeline != nil {
		res.Timeline.SetMeta("app", dep.Target.Namespace+"/"+dep.Deployment)
		res.Record = r.finishRecord(context.WithoutCancel(ctx), rec, tgt, res, out.Checks, runErr)
		if r.out != "" {
			dir := filepath.Join(r.out, res.Run)
			if werr := Write(dir, res); werr != nil && runErr == nil {
				runErr = werr
			} else if werr == nil {
				res.Dir = dir
			}
		}
	}
	return res, runErr
}

// mayDisrupt refuses scenarios that would disrupt a cluster the harness
// did not create and the allow-list does not name, before anything is
// changed (the undoing of what earlier runs left included).
func (r *Rehearser) mayDisrupt(tgt target.Target, builds []Planned) error {
	return mayDisrupt(r.allowed, tgt, builds)
}

func mayDisrupt(allowed safety.AllowList, tgt target.Target, builds []Planned) error {
	var what []string
	for _, b := range builds {
		if d := scenarios.Disruption(b.kind); d != "" && !slices.Contains(what, d) {
			what = append(what, d)
		}
	}
	return allowed.Check(safety.Cluster{Context: tgt.Context(), Server: tgt.RESTConfig().Host, Owned: tgt.Owned()}, what)
}

// setUp deploys the app and readies the clients: the plan of a rehearsal
// or a watch, without its scenarios. done undoes what it arranged (the
// pods' routes, the namespaces a run made on a cluster that is not ours);
// it is to be called whether or not err is nil.
func (r *Rehearser) setUp(ctx context.Context, tgt target.Target) (plan rehearsal.Plan, dep deploy.Deployed, done func(), err error) {
	var undo []func()
	done = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	client := tgt.Client()
	// On a cluster that is not ours, the namespaces this run creates (the
	// app's, the journal's) go with the run: staging is left as it was
	// found. The journal's goes only if no journal is left in it (a change
	// not undone, another run's).
	if !tgt.Owned() {
		if ns := r.namespace(); !namespaceExists(ctx, client, ns) {
			undo = append(undo, func() { r.removeNamespace(context.WithoutCancel(ctx), client, ns) })
		}
		if !namespaceExists(ctx, client, journal.Namespace) {
			undo = append(undo, func() {
				ctx := context.WithoutCancel(ctx)
				if !namespaceExists(ctx, client, journal.Namespace) {
					return
				}
				if left, err := journal.Leftovers(ctx, client, journal.Force()); err == nil && len(left) == 0 {
					r.removeNamespace(ctx, client, journal.Namespace)
				}
			})
		}
	}
	if dep, err = r.deploy(ctx, tgt); err != nil {
		return plan, dep, done, err
	}
	plan = r.plan
	plan.Client, plan.REST, plan.Target = client, tgt.RESTConfig(), tgt
	plan.App, plan.ServicePort, plan.Path, plan.Out = dep.Target, dep.ServicePort, r.app.Path, r.log
	if r.service {
		if plan.ServiceURL, err = tgt.ServiceURL(ctx, dep.NodePort, r.app.Path); err != nil {
			return plan, dep, done, err
		}
		if err := deploy.WaitServing(ctx, plan.ServiceURL); err != nil {
			return plan, dep, done, err
		}
	}
	if r.inClusterPods > 0 {
		if err := r.loadGenerator(ctx, tgt); err != nil {
			return plan, dep, done, err
		}
		plan.InCluster = &incluster.Options{Namespace: dep.Target.Namespace, Pods: r.inClusterPods, Image: r.inClusterImage,
			Target: fmt.Sprintf("http://%s.%s.svc.cluster.local:%d%s", dep.Target.Service, dep.Target.Namespace, dep.ServicePort, pathOr(r.app.Path))}
	}
	if r.gateway {
		release, err := tgt.ReachPods(ctx)
		if err != nil {
			return plan, dep, done, fmt.Errorf("the gateway client needs pod addresses: %w (or rehearse with the service client only)", err)
		}
		undo = append(undo, release)
		plan.Gateway = true
	}
	return plan, dep, done, nil
}

// newRecord starts the run record with what is known before the load
// starts: the tool, the cluster and its nodes, the app, the plan.
func (r *Rehearser) newRecord(ctx context.Context, run string, tgt target.Target, dep deploy.Deployed, plan rehearsal.Plan, scs []scenario.Scenario) *record.Record {
	rec := &record.Record{Tool: record.ThisTool(), Run: run, Name: r.name, Started: time.Now().UTC(),
		Target: record.Target{Name: tgt.Name(), NodesBefore: recordNodes(ctx, tgt)},
		App:    record.App{Namespace: dep.Target.Namespace, Deployment: dep.Deployment, Service: dep.Target.Service, Description: r.app.describe()},
		Plan: record.Plan{Rate: rateOr(plan.Rate), GatewayDelay: plan.GatewayDelay, Warmup: plan.Warmup,
			Baseline: plan.Baseline, Recovery: plan.Recovery},
	}
	if r.gateway {
		rec.Plan.Clients = append(rec.Plan.Clients, timeline.ClientGateway.String())
	}
	if r.service {
		rec.Plan.Clients = append(rec.Plan.Clients, timeline.ClientService.String())
	}
	if r.inClusterPods > 0 {
		rec.Plan.Clients = append(rec.Plan.Clients, timeline.ClientInCluster.String())
	}
	var ids []string
	for _, s := range scs {
		sc := record.Scenario{Kind: s.Kind, Name: s.Name}
		for _, st := range s.Settings {
			sc.Settings = append(sc.Settings, record.Setting{Name: st.Name, Value: st.Value})
		}
		for _, st := range s.Steps {
			sc.Steps = append(sc.Steps, st.Name())
		}
		rec.Scenarios = append(rec.Scenarios, sc)
		ids = append(ids, s.ID())
	}
	if rec.Name == "" {
		rec.Name = dep.Deployment + "/" + strings.Join(ids, "+")
	}
	return rec
}

// finishRecord adds what the rehearsal measured and decided.
func (r *Rehearser) finishRecord(ctx context.Context, rec *record.Record, tgt target.Target, res *Result, checks []string, runErr error) *record.Record {
	rec.Ended = time.Now().UTC()
	rec.Target.NodesAfter = recordNodes(ctx, tgt)
	rec.Thresholds = verdict.DefaultThresholds()
	if r.plan.Thresholds != nil {
		rec.Thresholds = *r.plan.Thresholds
	}
	rec.Checks, rec.Verdict, rec.Timeline = checks, res.Report, res.Timeline
	for _, k := range timeline.ClientKinds() {
		if l, ok := res.Loads[k]; ok {
			rec.Loads = append(rec.Loads, record.Load{Client: k.String(), Summary: l})
		}
	}
	for i, o := range res.Outcomes {
		if i < len(rec.Scenarios) && o.Err != nil {
			rec.Scenarios[i].FailedStep, rec.Scenarios[i].Error = o.FailedStep, o.Err.Error()
		}
	}
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	if res.RevertErr != nil {
		rec.RevertError = res.RevertErr.Error()
	}
	return rec
}

// recordNodes lists the nodes for the record; a cluster that cannot be
// listed (the API server away) leaves the list empty rather than failing
// the rehearsal.
func recordNodes(ctx context.Context, tgt target.Target) []record.Node {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	nodes, err := tgt.Nodes(ctx)
	if err != nil {
		return nil
	}
	var out []record.Node
	for _, n := range nodes {
		out = append(out, record.Node{Name: n.Name, Pool: n.Pool, ControlPlane: n.ControlPlane, Version: n.Version, Image: n.Image})
	}
	return out
}

// describe says what the app is, for reports.
func (a App) describe() string {
	switch {
	case a.Spec != nil && a.Spec.Variant != "":
		return "rehearsal app, preset " + a.Spec.Variant
	case a.Spec != nil:
		return "rehearsal app"
	case a.Manifests != "":
		return "your manifests " + a.Manifests
	}
	return ""
}

func rateOr(n int) int {
	if n == 0 {
		return rehearsal.DefaultRate
	}
	return n
}

// Deploy puts the app into the cluster (its images first) and waits until
// it is available, as Rehearse does first. Rehearse applies the same objects
// again, which changes nothing, so a caller can arrange something around
// the deployed app before rehearsing (where its replicas run, say).
func (r *Rehearser) Deploy(ctx context.Context) (deploy.Deployed, error) {
	tgt, err := r.Target(ctx)
	if err != nil {
		return deploy.Deployed{}, err
	}
	return r.deploy(ctx, tgt)
}

// namespace is where the app goes.
func (r *Rehearser) namespace() string {
	if r.app.Namespace != "" {
		return r.app.Namespace
	}
	return "rehearsal"
}

// namespaceExists says whether a namespace is there (an error reading it
// counts as there: nothing is deleted on a guess).
func namespaceExists(ctx context.Context, client kubernetes.Interface, ns string) bool {
	_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	return !apierrors.IsNotFound(err)
}

// removeNamespace deletes a namespace the run created and waits (a while)
// until it is gone, so that the next run does not meet it terminating.
func (r *Rehearser) removeNamespace(ctx context.Context, client kubernetes.Interface, ns string) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	nss := client.CoreV1().Namespaces()
	if err := nss.Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(r.log, "namespace %s: not deleted: %v (delete it with: kubectl delete namespace %s)\n", ns, err, ns)
		return
	}
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := nss.Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		fmt.Fprintf(r.log, "namespace %s: deletion still in progress after 3m\n", ns)
		return
	}
	fmt.Fprintf(r.log, "namespace %s (made by this run): deleted\n", ns)
}

// deploy puts the app into the cluster, images first.
func (r *Rehearser) deploy(ctx context.Context, tgt target.Target) (deploy.Deployed, error) {
	ns := r.namespace()
	if r.app.Spec != nil {
		if !r.imagesLoaded {
			if err := r.buildAndLoad(ctx, tgt, appspec.BuildArchive); err != nil {
				return deploy.Deployed{}, err
			}
			r.imagesLoaded = true
		}
		spec := *r.app.Spec
		spec.Namespace = ns
		spec.Service.NodePort = 0 // Kubernetes picks a free one; clients read it back
		return deploy.App(ctx, tgt.RESTConfig(), tgt.Client(), spec)
	}
	if !r.imagesLoaded {
		if err := r.loadImages(ctx, tgt, r.app.Archives...); err != nil {
			return deploy.Deployed{}, err
		}
		r.imagesLoaded = true
	}
	return deploy.User(ctx, tgt.RESTConfig(), tgt.Client(), deploy.UserApp{
		Manifests: r.app.Manifests, Namespace: ns, Deployment: r.app.Deployment, Service: r.app.Service, Port: r.app.Port,
	})
}

// loadGenerator gives the cluster the in-cluster client's image, unless
// the caller named one the cluster pulls.
func (r *Rehearser) loadGenerator(ctx context.Context, tgt target.Target) error {
	if r.generatorLoaded || (r.inClusterImage != "" && r.inClusterImage != incluster.Image) {
		return nil
	}
	if err := r.buildAndLoad(ctx, tgt, incluster.BuildArchive); err != nil {
		return err
	}
	r.generatorLoaded = true
	return nil
}

// buildAndLoad builds an image of this checkout (build writes its archive
// into a directory) and loads it into the cluster's nodes (see
// loadImages).
func (r *Rehearser) buildAndLoad(ctx context.Context, tgt target.Target, build func(ctx context.Context, root, dir string) (string, error)) error {
	root, err := engine.FindModuleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rehearse-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive, err := build(ctx, root, dir)
	if err != nil {
		return err
	}
	return r.loadImages(ctx, tgt, archive)
}

func pathOr(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// loadImages loads image archives into the cluster's nodes. A target that
// cannot (a cluster that pulls from its registry) is told to pull them: if
// it cannot, the app's pods will not start, and deploy says why.
func (r *Rehearser) loadImages(ctx context.Context, tgt target.Target, archives ...string) error {
	err := tgt.LoadImageArchives(ctx, archives...)
	if errors.Is(err, target.ErrNotAvailable) {
		fmt.Fprintf(r.log, "images: not loaded (%v); the cluster must pull them itself\n", err)
		err = nil
	}
	return err
}

// Write saves a result: the run record and every report of it (package
// reports) and what client-go logged (client-go.log).
func Write(dir string, res *Result) error {
	if res.Record == nil {
		return errors.New("harness: no run record to write (the rehearsal recorded nothing)")
	}
	files, err := reports.Write(dir, res.Record)
	if err != nil {
		return err
	}
	res.Files = files
	if len(res.ClientLog) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "client-go.log"), res.ClientLog, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Summary is the text people read: the loads, each scenario's steps, the
// verdict and the explanation of every failed or unjudged check.
func Summary(res *Result) string {
	if res.Record != nil {
		return reports.Text(res.Record)
	}
	return res.Report.String() + res.Report.Explain()
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
