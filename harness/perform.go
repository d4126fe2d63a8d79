package harness

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/safety"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/scenarios"
)

// PerformOptions are Perform's.
type PerformOptions struct {
	// Allowed: clusters the harness did not create that may be disrupted
	// (see WithAllowed).
	Allowed safety.AllowList
	// Namespace and Deployment are the app a scenario acts on, for the
	// scenarios that act on one (a rolling restart); node scenarios need
	// neither.
	Namespace, Deployment string
	// Log receives status lines (none when nil).
	Log io.Writer
	// RevertContext outlives ctx for the undoing (see WithRevertContext).
	RevertContext context.Context
}

// Perform carries out one scenario on a cluster, journaled before each
// change and undone afterwards as in a rehearsal, but with no app deployed,
// no load and no verdict: an upgrade or a fault as it happens to a cluster
// nobody is rehearsing. It is what a `rehearse watch` is for (another
// process upgrades, the watch judges), and a way to reproduce an incident
// by hand. The outcome says how the steps went; the error, why the
// scenario could not be carried out at all (refused by the allow-list, no
// journal, an undo that failed and stays in the journal).
func Perform(ctx context.Context, tgt target.Target, p Planned, o PerformOptions) (scenario.Outcome, error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if err := mayDisrupt(o.Allowed, tgt, []Planned{p}); err != nil {
		return scenario.Outcome{}, err
	}
	client := tgt.Client()
	undos := scenarios.Undos(tgt)
	if rep, err := journal.Restore(ctx, client, undos); err != nil {
		return scenario.Outcome{}, fmt.Errorf("undoing what earlier runs left: %w (see `rehearse restore`)", err)
	} else if len(rep.Journals) > 0 {
		fmt.Fprintf(log, "restored what earlier runs left:\n%s", rep)
	}
	s, err := p.build(ctx, scenarios.Env{Target: tgt, Namespace: o.Namespace, Deployment: o.Deployment})
	if err != nil {
		return scenario.Outcome{}, err
	}
	j, err := journal.Open(ctx, client, newRunID())
	if err != nil {
		return scenario.Outcome{}, err
	}
	sc := &scenario.Context{Client: client, REST: tgt.RESTConfig(), Target: tgt, Timeline: timeline.New(time.Now()),
		Journal: j, Out: log, Namespace: o.Namespace}
	fmt.Fprintf(log, "performing on %s (no load, no verdict): %s\n", tgt.Name(), s)
	out := scenario.Run(ctx, sc, s)
	revertCtx := o.RevertContext
	if revertCtx == nil {
		revertCtx = context.WithoutCancel(ctx)
	}
	rctx, cancel := context.WithTimeout(revertCtx, 5*time.Minute)
	defer cancel()
	rerr := scenario.Revert(rctx, sc, undos)
	if cerr := j.Close(rctx); rerr == nil {
		rerr = cerr
	}
	if rerr != nil {
		return out, fmt.Errorf("undoing the scenario's changes: %w (they stay in the journal: run `rehearse restore`)", rerr)
	}
	return out, nil
}
