package verdict

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// ExtrapolationPool is the pool size the upgrade figures extrapolate to: a
// typical production pool, large enough for the surge setting to matter.
const ExtrapolationPool = 40

// batchRun is one upgrade batch as the timeline tells it.
type batchRun struct {
	name, nodes string
	start, end  time.Duration
	finished    bool
	err         string
}

// upgradeCheck reports an upgrade's mechanics (class 11): per node the
// drain and the new node's join until Ready, per batch and in total, and
// what that extrapolates to for a real pool at several surge settings. It
// fails nothing itself (the steps check fails an upgrade that failed); it
// cannot judge when no batch finished.
func (a *analysis) upgradeCheck(w *window) Check {
	var batches []*batchRun
	open := map[string]*batchRun{}
	type join struct {
		node        string
		from, ready time.Duration
		why         string
	}
	var joins []*join
	pending := map[string]*join{}
	first, last := time.Duration(-1), time.Duration(0)
	var apiDown []timeline.Interval // the API server not answering (To -1: until the end)
	evs := a.windowEvents(w)
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case timeline.EvActionStart:
			if first < 0 {
				first = e.Offset
			}
		case timeline.EvActionEnd:
			last = e.Offset
		case timeline.EvBatchStarted:
			b := &batchRun{name: e.Name, nodes: e.Detail, start: e.Offset}
			open[e.Name] = b
			batches = append(batches, b)
		case timeline.EvBatchFinished:
			if b := open[e.Name]; b != nil {
				b.end, b.finished, b.err = e.Offset, true, e.Detail
				delete(open, e.Name)
			}
		case timeline.EvNodeRequested:
			j := &join{node: e.Node, from: e.Offset, why: e.Detail}
			joins = append(joins, j)
			pending[e.Node] = j
		case timeline.EvAPIUnavailable:
			apiDown = append(apiDown, timeline.Interval{From: e.Offset, To: -1})
		case timeline.EvAPIAvailable:
			if n := len(apiDown); n > 0 && apiDown[n-1].To < 0 {
				apiDown[n-1].To = e.Offset
			}
		case timeline.EvNodeReady:
			if j := pending[e.Node]; j != nil && e.Offset >= j.from {
				j.ready = e.Offset
				delete(pending, e.Node)
			}
		}
	}
	// Only batches that went through are measures of an upgrade: a batch
	// that waited out a drain timeout measures the timeout.
	var done []*batchRun
	for _, b := range batches {
		if b.finished && b.err == "" {
			done = append(done, b)
		}
	}
	if len(done) == 0 {
		what := "no upgrade batch finished"
		if len(batches) > 0 {
			what = "no upgrade batch went through (each was blocked or stopped), so nothing can be extrapolated"
		}
		return cannotJudge(CheckUpgrade, what, "see the steps and drain checks for why the upgrade did not go through")
	}
	var sum, longestBatch time.Duration
	for _, b := range done {
		d := b.end - b.start
		sum += d
		longestBatch = max(longestBatch, d)
	}
	perBatch := sum / time.Duration(len(done))
	total := last - first
	if first < 0 || total < sum {
		total = sum
	}
	// Time outside the clean batches: the surge nodes added and removed
	// (and any blocked batch, which a clean upgrade would not have).
	var blocked time.Duration
	for _, b := range batches {
		if b.err != "" {
			blocked += b.end - b.start
		}
	}
	fixed := max(0, total-sum-blocked)

	c := Check{Status: Pass}
	var longestJoin, longestDrain time.Duration
	for _, d := range a.drains(w) {
		if d.finished {
			longestDrain = max(longestDrain, d.end-d.start)
		}
		line := fmt.Sprintf("node %s: drain %s, %s", d.node, dur(d.end-d.start), plural(d.evictions, "eviction", "evictions"))
		if d.pdbCount > 0 {
			line += fmt.Sprintf(", %s by a PodDisruptionBudget", plural(d.pdbCount, "refusal", "refusals"))
		}
		if d.err != "" {
			line += " (did not finish)"
		}
		c.Details = append(c.Details, line)
	}
	for _, j := range joins {
		if j.ready == 0 {
			c.Details = append(c.Details, fmt.Sprintf("node %s (%s): never Ready in the window", j.node, j.why))
			continue
		}
		longestJoin = max(longestJoin, j.ready-j.from)
		c.Details = append(c.Details, fmt.Sprintf("node %s (%s): requested -> Ready %s", j.node, j.why, dur(j.ready-j.from)))
	}
	for _, b := range batches {
		line := fmt.Sprintf("%s (%s): %s", b.name, b.nodes, dur(b.end-b.start))
		if !b.finished {
			line += " (did not finish)"
		}
		if b.err != "" {
			line += "; " + b.err
		}
		c.Details = append(c.Details, line)
	}
	if len(apiDown) > 0 {
		var longest, sumDown time.Duration
		for i := range apiDown {
			if apiDown[i].To < 0 {
				apiDown[i].To = w.to()
			}
			d := apiDown[i].To - apiDown[i].From
			longest, sumDown = max(longest, d), sumDown+d
		}
		c.Details = append(c.Details, fmt.Sprintf("API server not ready %s (its /readyz failed or did not answer within 1 s), %s in all, longest %s from %s: controllers, kubectl and deployments wait, the app's clients need not",
			plural(len(apiDown), "time", "times"), dur(sumDown), dur(longest), fmtAt(apiDown[0].From)))
		c.Measured = append(c.Measured, count("api_unavailable_times", len(apiDown)), seconds("api_unavailable_longest", longest))
	}
	c.Details = append(c.Details, fmt.Sprintf("total %s: %s per batch on average (%s), %s outside batches (control plane, surge nodes added and removed)",
		dur(total), dur(perBatch), plural(len(done), "clean batch", "clean batches"), dur(fixed)))

	type setting struct {
		name  string
		surge int
	}
	settings := []setting{
		{"maxSurge 1", 1},
		{"maxSurge 10%", int(math.Ceil(0.10 * ExtrapolationPool))},
		{"maxSurge 33%", int(math.Ceil(0.33 * ExtrapolationPool))},
	}
	var est []string
	for _, s := range settings {
		n := (ExtrapolationPool + s.surge - 1) / s.surge
		t := fixed + time.Duration(n)*perBatch
		est = append(est, fmt.Sprintf("%s about %s (%d batches)", s.name, roundMinutes(t), n))
		c.Measured = append(c.Measured, seconds(fmt.Sprintf("extrapolated_%d_nodes_surge_%d", ExtrapolationPool, s.surge), t))
	}
	c.Details = append(c.Details,
		fmt.Sprintf("%d nodes: %s", ExtrapolationPool, strings.Join(est, ", ")),
		fmt.Sprintf("formula: total ~ %s + ceil(%d / surge nodes) x %s per batch (the nodes of a batch drain and join in parallel, "+
			"so a batch takes about as long as its slowest node; a real node's join, minutes on a cloud VM, replaces the %s measured here)",
			dur(fixed), ExtrapolationPool, dur(perBatch), dur(longestJoin)))
	c.Measured = append([]Figure{seconds("upgrade_total", total), count("batches", len(done)), seconds("batch_mean", perBatch),
		seconds("longest_batch", longestBatch), seconds("longest_node_join", longestJoin), seconds("longest_drain", longestDrain)}, c.Measured...)
	c.Summary = fmt.Sprintf("%s in %s (%s per batch, slowest node join %s); %d nodes: %s", plural(len(done), "batch", "batches"),
		dur(total), dur(perBatch), dur(longestJoin), ExtrapolationPool, strings.Join(est, ", "))
	return c
}

// roundMinutes prints a long duration for people: "3 h 20 min", "14 min".
func roundMinutes(d time.Duration) string {
	m := int(math.Round(d.Minutes()))
	if m < 1 {
		return dur(d.Round(time.Second))
	}
	if m < 60 {
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d h %d min", m/60, m%60)
}
