// Package drain rehearses `kubectl drain` of one node: the node is cordoned
// (journaled, so the revert or `rehearse restore` uncordons it) and every
// pod but DaemonSet pods is evicted, honouring PodDisruptionBudgets, within
// a deadline. The revert makes the node schedulable again; the evicted pods
// stay where the scheduler put them, as after a real drain.
package drain

import (
	"context"
	"fmt"
	"time"

	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
)

// Kind is the scenario kind.
const Kind = "node-drain"

// Checks judge a drain: what clients saw and the drain itself.
var Checks = []string{"load", "baseline", "observation", "steps", "drain",
	"error-rate", "longest-outage", "ready-endpoints", "readiness", "graceful-shutdown"}

// Scenario cordons and drains node within timeout.
func Scenario(node string, timeout time.Duration) scenario.Scenario {
	if timeout <= 0 {
		timeout = drain.DefaultTimeout
	}
	return scenario.Scenario{
		Kind: Kind,
		Settings: []scenario.Setting{
			{Name: "node", Value: node},
			{Name: "timeout", Value: timeout.String()},
		},
		Steps: []scenario.Step{
			scenario.Do("cordon node "+node, func(ctx context.Context, sc *scenario.Context) error {
				return sc.Change(ctx, "cordon node "+node, journal.Uncordon(node), func(ctx context.Context) error {
					return drain.Cordon(ctx, sc.Client, node, true)
				})
			}),
			Step(node, timeout),
		},
		Checks: Checks,
	}
}

// Step drains node (cordoned before) within timeout, as kubectl drain does.
func Step(node string, timeout time.Duration) scenario.Step {
	return scenario.Do(fmt.Sprintf("drain node %s (timeout %s)", node, timeout), func(ctx context.Context, sc *scenario.Context) error {
		r := drain.Node(ctx, sc.Client, node, drain.Options{Timeout: timeout}, sc.Timeline)
		if r.Err == nil {
			sc.Statusf("node %s drained in %s: %d pods evicted, %d evictions refused", node, r.Took().Round(time.Second), len(r.Evicted), len(r.Refusals))
		}
		return r.Err
	})
}
