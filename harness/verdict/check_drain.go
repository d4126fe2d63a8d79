package verdict

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// drainRun is one node's drain as the timeline tells it.
type drainRun struct {
	node       string
	start, end time.Duration
	finished   bool
	err        string
	evictions  int
	refusedPDB map[string][]string // namespace/name -> pods refused
	pdbCount   int
	throttled  int
	firstRef   time.Duration
	lastRef    time.Duration
}

// drains pairs DrainStarted and DrainFinished per node within the window
// and counts the evictions asked for and refused in between. The drain and
// upgrade checks both read them: worked out once per window.
func (a *analysis) drains(w *window) []*drainRun {
	if ds, ok := a.drainRuns[w]; ok {
		return ds
	}
	if a.drainRuns == nil {
		a.drainRuns = map[*window][]*drainRun{}
	}
	a.drainRuns[w] = a.pairDrains(w)
	return a.drainRuns[w]
}

func (a *analysis) pairDrains(w *window) []*drainRun {
	var out []*drainRun
	open := map[string]*drainRun{}
	evs := a.windowEvents(w)
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case timeline.EvDrainStarted:
			d := &drainRun{node: e.Node, start: e.Offset, refusedPDB: map[string][]string{}}
			open[e.Node] = d
			out = append(out, d)
		case timeline.EvDrainFinished:
			if d := open[e.Node]; d != nil {
				d.end, d.finished, d.err = e.Offset, true, e.Detail
				delete(open, e.Node)
			}
		case timeline.EvEvictionRequested:
			if d := open[e.Node]; d != nil {
				d.evictions++
			}
		case timeline.EvEvictionRefused:
			d := open[e.Node]
			if d == nil {
				continue
			}
			if d.pdbCount+d.throttled == 0 {
				d.firstRef = e.Offset
			}
			d.lastRef = e.Offset
			if e.Name == "" {
				d.throttled++
				continue
			}
			d.pdbCount++
			if !slices.Contains(d.refusedPDB[e.Name], e.Pod) {
				d.refusedPDB[e.Name] = append(d.refusedPDB[e.Name], e.Pod)
			}
		}
	}
	for _, d := range out {
		if !d.finished {
			d.end = w.to()
		}
	}
	return out
}

// stuckReplacements are the app's pods scheduled on other nodes while d
// drained that were not Ready when it gave up, each with how its container
// ended meanwhile (crashes, OOM kills).
func (a *analysis) stuckReplacements(d *drainRun) []Evidence {
	type pod struct {
		node      string
		scheduled time.Duration
		ready     bool
		exits     map[string]int // reason -> count
	}
	pods := map[string]*pod{}
	var order []string
	for i := range a.s.Events {
		e := &a.s.Events[i]
		if e.Offset > d.end {
			break
		}
		p := pods[e.Pod]
		switch e.Kind {
		case timeline.EvPodScheduled:
			if e.Offset >= d.start && e.Node != d.node && p == nil {
				pods[e.Pod] = &pod{node: e.Node, scheduled: e.Offset, exits: map[string]int{}}
				order = append(order, e.Pod)
			}
		case timeline.EvPodReady:
			if p != nil {
				p.ready = true
			}
		case timeline.EvPodNotReady:
			if p != nil {
				p.ready = false
			}
		case timeline.EvPodDeletionRequested:
			if p != nil {
				delete(pods, e.Pod)
			}
		case timeline.EvContainerExited:
			if p != nil {
				p.exits[cmp.Or(e.Reason, "exited")]++
			}
		}
	}
	var out []Evidence
	for _, name := range order {
		p := pods[name]
		if p == nil || p.ready {
			continue
		}
		text := fmt.Sprintf("pod %s, scheduled on node %s at %s to replace an evicted pod, was not Ready when the drain of %s gave up at %s",
			name, p.node, fmtAt(p.scheduled), d.node, fmtAt(d.end))
		if len(p.exits) > 0 {
			var how []string
			for _, r := range slices.Sorted(maps.Keys(p.exits)) {
				how = append(how, fmt.Sprintf("%s %d×", r, p.exits[r]))
			}
			text += "; its container ended meanwhile: " + strings.Join(how, ", ")
		}
		out = append(out, Evidence{Pod: name, Node: p.node, At: p.scheduled, Until: d.end, Text: text})
	}
	return out
}

// drainCheck judges the drains of a scenario: each must empty its node.
// One that did not, with evictions refused by a PodDisruptionBudget, is
// class 2, naming the budget, its pods and the fix; refusals that were
// lifted in time (a budget doing its job while replacements start) pass.
func (a *analysis) drainCheck(w *window) Check {
	ds := a.drains(w)
	if len(ds) == 0 {
		return cannotJudge(CheckDrain, "no drain in the window",
			"the scenario drained no node (it failed before): see the steps check")
	}
	var longest time.Duration
	var evictions, pdbRefusals, throttled, failed int
	var open []string
	for _, d := range ds {
		if d.finished {
			longest = max(longest, d.end-d.start)
		} else {
			open = append(open, d.node)
		}
		evictions += d.evictions
		pdbRefusals += d.pdbCount
		throttled += d.throttled
		if d.err != "" {
			failed++
		}
	}
	c := Check{Measured: []Figure{count("drains", len(ds)), count("drains_failed", failed), seconds("longest_drain", longest),
		count("evictions", evictions), count("evictions_refused_by_budget", pdbRefusals), count("evictions_throttled", throttled)}}
	if failed == 0 && len(open) > 0 {
		c.Status = CannotJudge
		c.Summary = fmt.Sprintf("the drain of %s did not finish before the run stopped", strings.Join(open, ", "))
		c.Diagnosis = &Diagnosis{Title: "drain interrupted: cannot judge", Fix: "run the rehearsal to the end"}
		return c
	}
	if failed == 0 {
		c.Status = Pass
		c.Summary = fmt.Sprintf("%s emptied, longest %s; %s", plural(len(ds), "node", "nodes"), dur(longest), plural(evictions, "eviction", "evictions"))
		if pdbRefusals > 0 {
			c.Summary += fmt.Sprintf(", %s by a PodDisruptionBudget until replacements were ready", plural(pdbRefusals, "refusal", "refusals"))
		}
		return c
	}
	c.Status = Fail
	var blocked []string
	d := &Diagnosis{Title: "a node could not be drained"}
	budgets := map[string][]string{}
	for _, dr := range ds {
		if dr.err == "" {
			continue
		}
		blocked = append(blocked, dr.node)
		if len(dr.refusedPDB) == 0 {
			d.Evidence = append(d.Evidence, Evidence{Node: dr.node, At: dr.start, Until: dr.end,
				Text: fmt.Sprintf("drain of node %s failed after %s: %s", dr.node, dur(dr.end-dr.start), dr.err)})
			continue
		}
		for _, pdb := range slices.Sorted(maps.Keys(dr.refusedPDB)) {
			pods := dr.refusedPDB[pdb]
			sort.Strings(pods)
			for _, p := range pods {
				if !slices.Contains(budgets[pdb], p) {
					budgets[pdb] = append(budgets[pdb], p)
				}
			}
			d.Evidence = append(d.Evidence, Evidence{Node: dr.node, Pod: strings.Join(pods, ","), At: dr.firstRef, Until: dr.lastRef, Count: dr.pdbCount,
				Text: fmt.Sprintf("PodDisruptionBudget %s refused %s of pod %s on node %s from %s to %s; the drain gave up after %s",
					pdb, plural(dr.pdbCount, "eviction", "evictions"), strings.Join(pods, ", "), dr.node, fmtAt(dr.firstRef), fmtAt(dr.lastRef), dur(dr.end-dr.start))})
		}
	}
	c.Summary = fmt.Sprintf("%s not emptied before the drain deadline (%d of %s): %s", plural(failed, "node", "nodes"), failed,
		plural(len(ds), "drain", "drains"), strings.Join(blocked, ", "))
	var stuck []Evidence
	for _, dr := range ds {
		if dr.err != "" && len(dr.refusedPDB) > 0 {
			stuck = append(stuck, a.stuckReplacements(dr)...)
		}
	}
	if len(stuck) > 0 {
		// The budget allowed a disruption and spent it on a pod whose
		// replacement never became Ready: it was right to refuse the
		// rest, and loosening it would take the app down.
		d.Title = "the drain waited for replacements that never became Ready"
		d.Evidence = append(stuck, d.Evidence...)
		d.Fix = "the PodDisruptionBudget did its job: it refused further evictions while pods that replaced evicted ones were not Ready, " +
			"and they never became Ready on the nodes they were moved to (see each pod's evidence). Find what stops them there " +
			"(OOM kills after a move to nodes of another cgroup version: the cgroup check; a missing image, volume or node label; " +
			"a dependency unreachable from those nodes); the budget needs no change"
		c.Diagnosis = d
		return c
	}
	if len(budgets) > 0 {
		d.Class, d.Title = ClassPDBBlocksDrain, ClassPDBBlocksDrain.Title()
		var names []string
		for _, pdb := range slices.Sorted(maps.Keys(budgets)) {
			names = append(names, fmt.Sprintf("%s (pods %s)", pdb, strings.Join(budgets[pdb], ", ")))
		}
		d.Fix = fmt.Sprintf("PodDisruptionBudget %s allowed no disruption, so no eviction could proceed and the drain "+
			"timed out (AKS fails the upgrade at drainTimeoutInMinutes the same way): let the budget allow one "+
			"disruption (maxUnavailable: 1, or minAvailable below the replicas) and run enough replicas, spread "+
			"over nodes, to afford it; check with `kubectl get pdb -A` that ALLOWED DISRUPTIONS is at least 1",
			strings.Join(names, ", "))
	} else {
		d.Fix = "the drain did not finish in time without a budget refusing it: look for pods whose " +
			"terminationGracePeriodSeconds exceeds the drain timeout, finalizers, or evictions the API refused"
	}
	c.Diagnosis = d
	return c
}
