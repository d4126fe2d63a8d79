// Package rehearsal runs one rehearsal: the application under constant
// load, the cluster observed, a scenario performed, and the result judged,
// all on one timeline:
//
//	baseline  load only: what normal looks like
//	fault     the scenario runs (a rolling restart, a drain, an upgrade ...)
//	recovery  load only again: does the application come back
//
// The scenario is always reverted, also when the rehearsal fails, panics or
// is interrupted.
package rehearsal

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/observe"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// Scenario is something done to a cluster that can be undone.
type Scenario interface {
	Name() string
	Apply(ctx context.Context, client kubernetes.Interface) error
	Revert(ctx context.Context, client kubernetes.Interface) error
}

// Plan describes a rehearsal.
type Plan struct {
	Target   observe.Target // the app: namespace, pod selector, Service
	URL      string         // where clients reach it (kind: the NodePort on 127.0.0.1)
	Rate     int            // requests per second (default 200)
	Baseline time.Duration  // load before the scenario (default 5s)
	Recovery time.Duration  // load after the scenario (default 5s)
	Scenario Scenario
	// Thresholds judge the result; verdict.DefaultThresholds() when zero.
	Thresholds *verdict.Thresholds
	// MaxDuration bounds the load whatever happens (default 15m).
	MaxDuration time.Duration
}

// Result is everything a report needs.
type Result struct {
	Timeline *timeline.Timeline
	Report   verdict.Report
	Load     load.Summary
}

func (p *Plan) defaults() {
	if p.Rate == 0 {
		p.Rate = 200
	}
	if p.Baseline == 0 {
		p.Baseline = 5 * time.Second
	}
	if p.Recovery == 0 {
		p.Recovery = 5 * time.Second
	}
	if p.MaxDuration == 0 {
		p.MaxDuration = 15 * time.Minute
	}
	if p.Thresholds == nil {
		th := verdict.DefaultThresholds()
		p.Thresholds = &th
	}
}

// Run performs the plan. An error means the rehearsal could not be carried
// out (the scenario failed, the cluster could not be watched); a rehearsal
// that ran is judged in Result.Report, pass or fail.
func Run(ctx context.Context, client kubernetes.Interface, plan Plan) (res Result, err error) {
	plan.defaults()
	if plan.Scenario == nil {
		return res, fmt.Errorf("rehearsal plan has no scenario: set Plan.Scenario")
	}
	tl := timeline.New(time.Now())
	tl.SetMeta("scenario", plan.Scenario.Name())
	tl.SetMeta("target", plan.URL)
	tl.SetMeta("rate", fmt.Sprint(plan.Rate))
	res.Timeline = tl

	gen, err := load.New(plan.URL, load.Rate(plan.Rate), load.Duration(plan.MaxDuration), load.Name(plan.Scenario.Name()))
	if err != nil {
		return res, err
	}
	obs, err := observe.New(client, tl, plan.Target)
	if err != nil {
		return res, err
	}
	if err := obs.Start(ctx); err != nil {
		return res, err
	}
	defer obs.Stop()
	if err := gen.Start(ctx, tl); err != nil {
		return res, err
	}
	defer gen.Stop()

	// Revert whatever happens from here on, with a context that outlives a
	// cancelled rehearsal (Ctrl-C must still undo the fault).
	defer func() {
		revertCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if rerr := plan.Scenario.Revert(revertCtx, client); rerr != nil && err == nil {
			err = fmt.Errorf("reverting %s: %w", plan.Scenario.Name(), rerr)
		}
	}()

	if err := phase(ctx, tl, timeline.PhaseBaseline, func() error { return sleep(ctx, plan.Baseline) }); err != nil {
		return res, err
	}
	if err := phase(ctx, tl, timeline.PhaseFault, func() error {
		tl.BeginAction(plan.Scenario.Name())
		err := plan.Scenario.Apply(ctx, client)
		tl.EndAction(plan.Scenario.Name(), err)
		return err
	}); err != nil {
		return res, err
	}
	if err := phase(ctx, tl, timeline.PhaseRecovery, func() error { return sleep(ctx, plan.Recovery) }); err != nil {
		return res, err
	}
	gen.Stop()
	if res.Load, err = gen.Wait(); err != nil {
		return res, err
	}
	obs.Stop()
	res.Report = verdict.Judge(tl, *plan.Thresholds)
	return res, nil
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
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
