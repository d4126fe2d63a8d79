// Package poolmove rehearses moving an application to a new node pool, as
// AKS users do to change what a pool's nodes are (node image, VM size, OS,
// cgroup version) without an in-place upgrade: the new pool's nodes, kept
// cordoned while they waited, are opened, every node of the old pool is
// cordoned, then the old nodes are drained one at a time as `kubectl drain`
// does (PodDisruptionBudgets honoured). Each cordon and uncordon is
// journaled before it is made; the revert opens the old pool again and
// closes the new one, and the pods stay where they are, as after a real
// move.
package poolmove

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	drainscenario "github.com/kube-rehearse/rehearse/scenarios/drain"
)

// Kind is the scenario kind.
const Kind = "node-pool-move"

// Checks judge a move: what clients saw, the drains, and what the app's
// runtimes saw of their limits before and after (a new pool of another
// cgroup version is the catalogue's class 5).
var Checks = []string{"load", "baseline", "observation", "steps", "drain",
	"error-rate", "longest-outage", "ready-endpoints", "readiness", "graceful-shutdown", "cgroup"}

// Options say which nodes leave and which receive.
type Options struct {
	From    []string      // the old pool: cordoned, then drained in this order
	To      []string      // the new pool: opened first
	Timeout time.Duration // each drain's deadline (drain.DefaultTimeout when 0)
}

// Validate reports pools that cannot be moved between.
func (o Options) Validate() error {
	switch {
	case len(o.To) == 0:
		return fmt.Errorf("no nodes to move to: set to=NODE[,NODE...] (the new pool)")
	case len(o.From) == 0:
		return fmt.Errorf("no nodes to move from: set from=NODE[,NODE...] (the old pool)")
	}
	for _, n := range o.From {
		if slices.Contains(o.To, n) {
			return fmt.Errorf("node %s is in both pools: a node moves from the old pool (from=) to the new one (to=), not both", n)
		}
	}
	return nil
}

// Scenario moves the app from o.From to o.To.
func Scenario(o Options) (scenario.Scenario, error) {
	if err := o.Validate(); err != nil {
		return scenario.Scenario{}, err
	}
	if o.Timeout <= 0 {
		o.Timeout = drain.DefaultTimeout
	}
	steps := []scenario.Step{
		scenario.Do("open the new pool ("+strings.Join(o.To, ", ")+")", func(ctx context.Context, sc *scenario.Context) error {
			for _, n := range o.To {
				if err := setCordon(ctx, sc, n, false); err != nil {
					return err
				}
			}
			return nil
		}),
		scenario.Do("cordon the old pool ("+strings.Join(o.From, ", ")+")", func(ctx context.Context, sc *scenario.Context) error {
			for _, n := range o.From {
				if err := setCordon(ctx, sc, n, true); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	for _, n := range o.From {
		steps = append(steps, drainscenario.Step(n, o.Timeout))
	}
	return scenario.Scenario{
		Kind: Kind,
		Settings: []scenario.Setting{
			{Name: "from", Value: strings.Join(o.From, ",")},
			{Name: "to", Value: strings.Join(o.To, ",")},
			{Name: "timeout", Value: o.Timeout.String()},
		},
		Steps:  steps,
		Checks: Checks,
	}, nil
}

// setCordon cordons or uncordons node, journaling the opposite first; a
// node already in that state is left alone, with nothing to undo.
func setCordon(ctx context.Context, sc *scenario.Context, node string, cordon bool) error {
	n, err := sc.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	if n.Spec.Unschedulable == cordon {
		return nil
	}
	what, undo := "uncordon node "+node, journal.Cordon(node)
	if cordon {
		what, undo = "cordon node "+node, journal.Uncordon(node)
	}
	return sc.Change(ctx, what, undo, func(ctx context.Context) error {
		return drain.Cordon(ctx, sc.Client, node, cordon)
	})
}
