// Package rehearsal runs one rehearsal on a prepared cluster: the
// application under two kinds of client load, the cluster observed, the
// scenarios performed and reverted, and the result judged, all on one
// timeline:
//
//	warmup    load on, not judged: until every pod served and both clients run clean
//	baseline  load only: what normal looks like (it must be clean)
//	fault     a scenario's steps (a rolling restart, a drain, an upgrade ...),
//	          then the revert of everything it journaled
//	recovery  load only again: does the application come back
//
// (fault and recovery repeat for each scenario of the plan). Every journaled
// change is reverted, also when a step fails, the run is interrupted or it
// panics; a failed scenario is still judged over what was observed.
package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-rehearse/rehearse/harness/gateway"
	"github.com/kube-rehearse/rehearse/harness/incluster"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/observe"
	"github.com/kube-rehearse/rehearse/harness/progress"
	"github.com/kube-rehearse/rehearse/harness/resources"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// Defaults of a Plan.
const (
	DefaultRate        = 100 // per client kind
	DefaultWarmup      = time.Minute
	DefaultBaseline    = 5 * time.Second
	DefaultRecovery    = 5 * time.Second
	DefaultMaxDuration = 30 * time.Minute
)

// Plan describes a rehearsal on a cluster where the app is deployed.
type Plan struct {
	Client kubernetes.Interface
	REST   *rest.Config
	Target target.Target

	App         observe.Target // namespace, pod selector, Service
	ServicePort int32          // the Service port the gateway client routes for
	Path        string         // the request path (default "/")
	// ServiceURL is where the service client sends (empty: no service
	// client). Gateway runs the gateway client (pod addresses must be
	// reachable).
	ServiceURL string
	Gateway    bool
	// InCluster runs the in-cluster client too: a Job of generator pods
	// sending to the Service's cluster address (its Rate and Duration are
	// the plan's).
	InCluster    *incluster.Options
	GatewayDelay time.Duration // gateway.DefaultSyncDelay when zero

	Rate     int           // requests per second of each client (default DefaultRate)
	Warmup   time.Duration // longest warm-up (default DefaultWarmup)
	Baseline time.Duration
	Recovery time.Duration
	// MaxDuration bounds the load whatever happens.
	MaxDuration time.Duration

	Scenarios []scenario.Scenario
	Journal   *journal.Journal
	Undos     *journal.Registry

	Thresholds *verdict.Thresholds // verdict.DefaultThresholds() when nil
	Checks     []string            // the scenarios' own, else verdict.DefaultChecks

	Out io.Writer // status lines (io.Discard when nil)
	// RevertContext is used for reverting: it should outlive ctx (a first
	// Ctrl-C ends ctx; reverting must still happen). context.Background
	// with a timeout when nil.
	RevertContext context.Context
}

// Result is everything a report needs.
type Result struct {
	Timeline *timeline.Timeline
	Report   verdict.Report
	Loads    map[timeline.ClientKind]load.Summary
	Outcomes []scenario.Outcome
	// Checks are the checks judged (to judge the timeline again alike).
	Checks []string
	// RevertErr is set when an undo failed: the journal keeps the change
	// for `rehearse restore`.
	RevertErr error
}

func (p *Plan) defaults() {
	if p.Rate == 0 {
		p.Rate = DefaultRate
	}
	if p.Warmup == 0 {
		p.Warmup = DefaultWarmup
	}
	if p.Baseline == 0 {
		p.Baseline = DefaultBaseline
	}
	if p.Recovery == 0 {
		p.Recovery = DefaultRecovery
	}
	if p.MaxDuration == 0 {
		p.MaxDuration = DefaultMaxDuration
	}
	if p.Path == "" {
		p.Path = "/"
	}
	if p.Thresholds == nil {
		th := verdict.DefaultThresholds()
		p.Thresholds = &th
	}
	if p.GatewayDelay == 0 {
		p.GatewayDelay = gateway.DefaultSyncDelay
	}
	if p.Out == nil {
		p.Out = io.Discard
	}
	if p.Undos == nil {
		p.Undos = journal.NewRegistry()
	}
}

// settle is how long a phase whose requests are judged at its end runs on
// after its judged part: the clients' timeout, the longest a request sent
// in it can take to have an outcome.
func (p *Plan) settle() time.Duration {
	if p.InCluster != nil {
		// The in-cluster client's results arrive through its pods' logs:
		// a moment later than they happened.
		return load.DefaultTimeout + logDelivery
	}
	return load.DefaultTimeout
}

// logDelivery bounds how late a result of the in-cluster client arrives
// after its request ended (its pod writes every 100 ms; the kubelet and
// the API server pass the log on).
const logDelivery = 2 * time.Second

func (p *Plan) validate() error {
	var errs []error
	if p.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if len(p.Scenarios) == 0 {
		errs = append(errs, errors.New("no scenario: give at least one"))
	}
	if !p.Gateway && p.ServiceURL == "" && p.InCluster == nil {
		errs = append(errs, errors.New("no client: run the gateway client, the service client (a ServiceURL), the in-cluster client, or several"))
	}
	if p.Gateway && p.ServicePort == 0 {
		errs = append(errs, errors.New("the gateway client needs the Service port it routes for"))
	}
	if p.Journal == nil {
		errs = append(errs, errors.New("no journal: every change a scenario makes must be journaled"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rehearsal plan: %w", err)
	}
	return nil
}

// Run performs the plan. The error is nil when the rehearsal ran to the
// end, whatever the verdict; otherwise (interrupted, the observer or the
// clients could not start) it says why, and Result holds what was recorded
// and judged until then.
func Run(ctx context.Context, plan Plan) (res Result, err error) {
	plan.defaults()
	if err := plan.validate(); err != nil {
		return res, err
	}
	tl := timeline.New(time.Now())
	res.Timeline = tl
	if plan.Out != io.Discard {
		// Status lines go through the progress display, which shows the
		// phase, the clients' figures and the current action meanwhile.
		prog := progress.Start(plan.Out, tl, progress.Options{})
		defer prog.Stop()
		plan.Out = prog.Writer()
	}
	var names []string
	for _, s := range plan.Scenarios {
		names = append(names, s.ID())
	}
	tl.SetMeta("scenarios", strings.Join(names, ","))
	tl.SetMeta("namespace", plan.App.Namespace)
	tl.SetMeta("service", plan.App.Service)
	if plan.Target != nil {
		tl.SetMeta("target", plan.Target.Name())
	}
	if plan.Journal != nil {
		tl.SetMeta("run", plan.Journal.Run())
	}
	sc := &scenario.Context{Client: plan.Client, REST: plan.REST, Target: plan.Target, Timeline: tl,
		Journal: plan.Journal, Out: plan.Out, Namespace: plan.App.Namespace}

	// Whatever happens from here on, journaled changes are reverted and
	// what was observed is judged.
	in := &instruments{}
	defer func() {
		res.Loads = in.stop()
		if rerr := revertAll(plan, sc); rerr != nil {
			res.RevertErr = rerr
		}
		res.Checks = checksOf(plan)
		res.Report = verdict.Judge(tl, *plan.Thresholds, res.Checks...)
	}()
	if err := in.start(ctx, plan, tl); err != nil {
		return res, err
	}
	router := in.router

	if err := phase(ctx, tl, timeline.PhaseWarmup, func() error { return warmUp(ctx, plan, tl, router) }); err != nil {
		return res, err
	}
	// The cgroup audit samples each pod's view of its limits and its use at
	// the end of the baseline and of each recovery: before and after the
	// pods moved.
	var sampler *resources.Sampler
	if slices.Contains(checksOf(plan), verdict.CheckCgroup) {
		sampler = resources.New(plan.Client, plan.REST, plan.Target, plan.App.Namespace, plan.App.PodSelector, tl)
		if err := sampler.Nodes(ctx); err != nil {
			tl.Note("the nodes' cgroup versions could not be read: " + err.Error())
		}
	}
	sample := func(ph string) {
		if sampler == nil {
			return
		}
		if err := sampler.Sample(ctx, ph); err != nil {
			tl.Note("resources not sampled at the end of the " + ph + ": " + err.Error())
		}
	}
	// The baseline runs on for the clients' timeout after its judged part,
	// so that every request sent in that part has an outcome when the gate
	// below judges it: a request still in flight is not on the timeline
	// yet, and counting without it would read as a starved client.
	var judgedUntil time.Duration
	if err := phase(ctx, tl, timeline.PhaseBaseline, func() error {
		err := sleep(ctx, plan.Baseline)
		judgedUntil = tl.Now()
		if err == nil {
			err = sleep(ctx, plan.settle())
		}
		sample(timeline.PhaseBaseline)
		return err
	}); err != nil {
		return res, err
	}
	// A baseline that cannot be judged (not clean, a starved client) makes
	// the whole rehearsal unjudgeable: the scenarios would disturb the
	// cluster and cost minutes for nothing. Say so now and stop; the final
	// verdict says the same (verdict: scenarios not run).
	if gate := judgeUpTo(tl, timeline.PhaseBaseline, judgedUntil, *plan.Thresholds, verdict.CheckLoad, verdict.CheckBaseline); gate.Outcome == verdict.CannotJudge {
		tl.AddEvent(timeline.Event{Offset: tl.Now(), Kind: timeline.EvNote, Name: verdict.NoteScenariosNotRun, Detail: "scenarios not run: " + gate.Reason})
		fmt.Fprintf(plan.Out, "  the scenarios are not run: %s\n", gate.Reason)
		return res, nil
	}
	for _, s := range plan.Scenarios {
		id := ""
		if len(plan.Scenarios) > 1 {
			id = s.ID()
		}
		fmt.Fprintf(plan.Out, "  fault: %s\n", s)
		var out scenario.Outcome
		perr := phase(ctx, tl, timeline.FaultPhase(id), func() error {
			out = scenario.Run(ctx, sc, s)
			// Undo this scenario's changes before its recovery is measured.
			if rerr := revertAll(plan, sc); rerr != nil {
				res.RevertErr = rerr
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		})
		res.Outcomes = append(res.Outcomes, out)
		if perr != nil {
			return res, perr
		}
		if err := phase(ctx, tl, timeline.RecoveryPhase(id), func() error {
			err := sleep(ctx, plan.Recovery)
			sample(timeline.RecoveryPhase(id))
			return err
		}); err != nil {
			return res, err
		}
		if out.Err != nil {
			fmt.Fprintf(plan.Out, "  scenario %s failed at step %q: %v; the remaining scenarios are skipped\n", s.ID(), out.FailedStep, out.Err)
			break
		}
	}
	return res, nil
}

// judgeUpTo judges what the timeline recorded until cut, as if the named
// phase had ended there: requests sent after it (while the phase settles,
// or a moment later while the judging starts) would otherwise read as a
// phase of their own, too short to reach its rate.
func judgeUpTo(tl *timeline.Timeline, phase string, cut time.Duration, th verdict.Thresholds, checks ...string) verdict.Report {
	s := tl.Snapshot()
	s.Requests = s.RequestsIn(0, cut)
	n := 0
	for n < len(s.Events) && s.Events[n].Offset <= cut {
		n++
	}
	s.Events = append(s.Events[:n:n], timeline.Event{Offset: cut, Kind: timeline.EvPhaseEnd, Name: phase})
	return verdict.JudgeSnapshot(&s, th, checks...)
}

// checksOf is the plan's checks: given ones, else the first scenario's,
// else the defaults.
func checksOf(p Plan) []string {
	if len(p.Checks) > 0 {
		return p.Checks
	}
	for _, s := range p.Scenarios {
		if len(s.Checks) > 0 {
			return s.Checks
		}
	}
	return verdict.DefaultChecks
}

func revertCtx(p Plan) context.Context {
	if p.RevertContext != nil {
		return p.RevertContext
	}
	return context.Background()
}

// revertAll undoes anything still journaled (a scenario interrupted before
// its own revert), bounded in time.
func revertAll(p Plan, sc *scenario.Context) error {
	ctx, cancel := context.WithTimeout(revertCtx(p), 5*time.Minute)
	defer cancel()
	return scenario.Revert(ctx, sc, p.Undos)
}

// warmUp waits, within plan.Warmup, until the clients run clean: every pod
// the gateway routes to has served it, and each client's last second had
// no failure. A pod still warming up after deploy would otherwise fail the
// baseline; a pod never reached could not be judged.
func warmUp(ctx context.Context, plan Plan, tl *timeline.Timeline, router *gateway.Router) error {
	from := tl.Now()
	deadline := time.Now().Add(plan.Warmup)
	for {
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
		ready, why := clean(tl, from, router)
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(plan.Out, "  warm-up: still not clean after %s (%s); the baseline will say whether it can be judged\n", plan.Warmup, why)
			return nil
		}
	}
}

func clean(tl *timeline.Timeline, from time.Duration, router *gateway.Router) (bool, string) {
	s := tl.Snapshot()
	now := tl.Now()
	recent := s.RequestsIn(now-time.Second, now)
	if now-from < time.Second || len(recent) == 0 {
		return false, "no traffic yet"
	}
	for _, r := range recent {
		if !r.OK() {
			return false, fmt.Sprintf("a %s request failed at %.3fs (%s)", r.Client, r.Offset.Seconds(), r.Err)
		}
	}
	if router == nil {
		return true, ""
	}
	served := map[string]bool{}
	for _, r := range s.RequestsIn(from, now) {
		if r.Client == timeline.ClientGateway && r.OK() {
			served[r.PodIP] = true
		}
	}
	routed := router.Routed()
	if len(routed) == 0 {
		return false, "the gateway has no ready endpoint"
	}
	for _, e := range routed {
		if !served[e.IP()] {
			return false, "pod " + e.Pod + " has not served yet"
		}
	}
	return true, ""
}

func phase(ctx context.Context, tl *timeline.Timeline, name string, body func() error) error {
	tl.BeginPhase(name)
	defer tl.EndPhase(name)
	if err := body(); err != nil {
		return fmt.Errorf("%s phase: %w", name, err)
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
