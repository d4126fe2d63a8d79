package harness

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/kube-rehearse/rehearse/harness/clientlog"
	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/rehearsal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/upgrades"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// WatchedUpgrade is the scenario kind of an upgrade a watch found: what the
// run record and the reports show as the scenario rehearsed.
const WatchedUpgrade = "watched-upgrade"

// WatchOptions say how long to watch and what ends an upgrade.
type WatchOptions struct {
	// For is how long to watch (rehearsal.DefaultWatchFor when zero, at
	// most rehearsal.MaxWatchFor): the load stops by itself then.
	For time.Duration
	// Quiet is how long a pool must go without a node change, every node
	// Ready and none cordoned, for its upgrade to be over
	// (upgrades.DefaultQuiet when zero).
	Quiet time.Duration
	// StopAfter ends the watch once that many upgrades were judged (0:
	// watch for the whole of For).
	StopAfter int
	// Found is called with each upgrade as soon as it is judged (and its
	// results written, with WithOutput).
	Found func(*Result)
}

// Watch deploys the app and keeps it under load and observed, performing
// nothing, for o.For or until ctx ends: each node-pool upgrade that happens
// meanwhile (AKS's auto-upgrade, a maintenance window, someone else's
// upgrade) is found from the node changes and judged as a rehearsal of its
// own, with the time before it as its baseline. It returns the upgrades
// judged (none when none happened: the log says so). Nothing is disrupted,
// so no allow-list is needed; on a cluster the harness did not create, the
// namespace the watch made goes with it.
func (r *Rehearser) Watch(ctx context.Context, o WatchOptions) ([]*Result, error) {
	tgt, err := r.Target(ctx)
	if err != nil {
		return nil, err
	}
	plan, dep, done, err := r.setUp(ctx, tgt)
	defer done()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.log, "watching %s on %s for %s under %d requests/s per client: every node-pool upgrade is judged\n",
		dep.Target.Namespace+"/"+dep.Deployment, tgt.Name(), orDefault(o.For, rehearsal.DefaultWatchFor), rateOr(plan.Rate))
	var out []*Result
	logs := clientlog.Start()
	defer logs.Stop()
	w := rehearsal.Watch{Plan: plan, For: o.For, Upgrades: upgrades.Options{Quiet: o.Quiet}, StopAfter: o.StopAfter}
	werr := rehearsal.WatchUpgrades(ctx, w, func(wd rehearsal.Watched) {
		res := &Result{Run: newRunID(), Deployed: dep, Report: wd.Report, Timeline: wd.Timeline, Loads: wd.Loads}
		res.Timeline.SetMeta("app", dep.Target.Namespace+"/"+dep.Deployment)
		res.Timeline.SetMeta("run", res.Run)
		s := scenario.Scenario{Kind: WatchedUpgrade, Name: wd.Upgrade.String(), Settings: []scenario.Setting{
			{Name: "pool", Value: wd.Upgrade.Pool}, {Name: "kind", Value: wd.Upgrade.Kind()}}}
		rec := r.newRecord(ctx, res.Run, tgt, dep, plan, []scenario.Scenario{s})
		res.Record = r.finishRecord(context.WithoutCancel(ctx), rec, tgt, res, wd.Checks, nil)
		// The record says when the upgrade's window was and what the
		// pool's nodes were before and after it, not what they are now.
		snap := wd.Timeline.Snapshot()
		rec.Started = wd.Timeline.Start().UTC()
		rec.Ended = rec.Started.Add(snap.End())
		rec.Target.NodesBefore, rec.Target.NodesAfter = recordInfos(wd.Upgrade.Before), recordInfos(wd.Upgrade.After)
		if r.out != "" {
			dir := filepath.Join(r.out, res.Run)
			if err := Write(dir, res); err != nil {
				fmt.Fprintf(r.log, "  results of %s not written: %v\n", res.Run, err)
			} else {
				res.Dir = dir
			}
		}
		fmt.Fprintf(r.log, "  judged: %s: %s\n", wd.Upgrade, res.Report.Outcome)
		out = append(out, res)
		if o.Found != nil {
			o.Found(res)
		}
	})
	if len(out) == 0 && werr == nil {
		fmt.Fprintf(r.log, "no node-pool upgrade happened while watching\n")
	}
	return out, werr
}

func recordInfos(nodes map[string]nodeinfo.Info) []record.Node {
	var out []record.Node
	for _, name := range slices.Sorted(maps.Keys(nodes)) {
		i := nodes[name]
		out = append(out, record.Node{Name: name, Pool: i.Pool, ControlPlane: i.ControlPlane, Version: i.Kubelet, Image: i.Image})
	}
	return out
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
