package verdict

import (
	"fmt"
	"sort"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// readyEndpointsCheck judges the Service's ready-endpoint count through a
// scenario's window: it must never stay below MinReadyEndpoints longer than
// MaxReadyGap (class 10 when it reached zero).
func (a *analysis) readyEndpointsCheck(w *window) Check {
	minReady := a.th.MinReadyEndpoints
	if !a.hasEps {
		return cannotJudge(CheckReadyEndpoints, "no endpoint events",
			"the endpoint watch recorded nothing: check that the observer watches the Service's "+
				"EndpointSlices and that the Service's selector matches the app's pods")
	}
	from, to := w.from(), w.to()
	if a.ready.At(from) < minReady {
		// Judge from the moment the Service first had enough, if it ever did.
		reached := false
		for _, st := range a.ready {
			if st.At >= from && st.At < to && st.Ready >= minReady {
				from, reached = st.At, true
				break
			}
		}
		if !reached {
			c := cannotJudge(CheckReadyEndpoints, fmt.Sprintf("never %s in the window", plural(minReady, "ready endpoint", "ready endpoints")),
				"the app never reached the required ready endpoints: check the pods' readiness probes, events and logs")
			for _, p := range a.pods {
				if !p.FirstReady().Known {
					c.Diagnosis.Evidence = append(c.Diagnosis.Evidence, Evidence{Pod: p.Pod, Node: p.Node, At: p.FirstSeen,
						Until: p.FirstSeen, Text: fmt.Sprintf("pod %s (node %s) was never Ready", p.Pod, orDash(p.Node))})
				}
			}
			return c
		}
	}
	gaps := a.ready.Below(minReady, from, to)
	lowest := a.ready.At(from)
	for _, st := range a.ready {
		if st.At > from && st.At < to {
			lowest = min(lowest, st.Ready)
		}
	}
	var longest, below, zero time.Duration
	var bad []timeline.Gap
	for _, g := range gaps {
		d := g.Duration()
		longest = max(longest, d)
		below += d
		for _, z := range a.ready.Below(1, g.From, g.To) {
			zero += z.Duration()
		}
		if d > a.th.MaxReadyGap {
			bad = append(bad, g)
		}
	}
	c := Check{
		Status: passIf(len(bad) == 0),
		Measured: []Figure{count("min_ready", lowest), count("required_ready", minReady), count("gaps", len(gaps)),
			seconds("longest_gap", longest), seconds("time_below_required", below), seconds("time_zero_ready", zero)},
	}
	if len(gaps) == 0 {
		c.Summary = fmt.Sprintf("always at least %s (lowest %d)", plural(minReady, "ready endpoint", "ready endpoints"), lowest)
		if a.inGap(from, to) {
			c.Summary += "; the watches were interrupted in the window, so a short gap may have been missed"
		}
		return c
	}
	c.Summary = fmt.Sprintf("%s below %d ready (longest %s, lowest %d), limit %s",
		plural(len(gaps), "gap", "gaps"), minReady, dur(longest), lowest, dur(a.th.MaxReadyGap))
	if c.Status == Pass {
		return c
	}
	d := &Diagnosis{Class: ClassZeroReady, Title: ClassZeroReady.Title(), Fix: fixZeroReady}
	if lowest > 0 {
		d.Title = fmt.Sprintf("fewer than %d ready endpoints", minReady)
		d.Fix = fmt.Sprintf("make the PodDisruptionBudget keep %d pods available (minAvailable: %d) and run "+
			"more replicas than that, spread over nodes, so a drain cannot take the Service below %d ready endpoints",
			minReady, minReady, minReady)
	}
	for i, g := range bad {
		if i == 5 {
			d.Evidence = append(d.Evidence, Evidence{Text: fmt.Sprintf("and %d more gaps", len(bad)-5)})
			break
		}
		d.Evidence = append(d.Evidence, a.gapEvidence(g)...)
		if a.inGap(g.From, g.To) {
			d.Evidence = append(d.Evidence, Evidence{At: g.From, Until: g.To, Text: "the watches were interrupted " +
				"during this gap: its length is uncertain"})
		}
	}
	c.Diagnosis = d
	return c
}

// gapEvidence says what a gap was and which pods and nodes made it.
func (a *analysis) gapEvidence(g timeline.Gap) []Evidence {
	// The descent into the gap: walk back from its first step while each
	// earlier step was a decrease too. The pods whose endpoints stopped
	// being ready during the descent are the ones that made the gap.
	descent := g.From
	k := sort.Search(len(a.ready), func(i int) bool { return a.ready[i].At >= g.From })
	if k < len(a.ready) && a.ready[k].At == g.From {
		for k > 0 && a.ready[k-1].Ready > a.ready[k].Ready {
			descent = a.ready[k].At
			k--
		}
	}
	var lines []string
	nodes := map[string]bool{}
	for k := range a.pods {
		p := &a.pods[k]
		for _, iv := range p.EndpointReadyIntervals {
			if iv.To >= descent-a.tol && iv.To <= g.From+a.tol {
				line := fmt.Sprintf("%s (node %s): endpoint not ready at %s", p.Pod, orDash(p.Node), fmtAt(iv.To))
				if p.DeletionRequested.Known {
					line += fmt.Sprintf(", deletion requested at %s", fmtAt(p.DeletionRequested.At))
				}
				lines = append(lines, line)
				if p.Node != "" {
					nodes[p.Node] = true
				}
				break
			}
		}
	}
	what := "no endpoint was ready"
	if g.Lowest > 0 {
		what = fmt.Sprintf("only %d endpoints were ready", g.Lowest)
	}
	out := []Evidence{{Text: fmt.Sprintf("from %s to %s (%s) %s", fmtAt(g.From), untilText(g.To), dur(g.Duration()), what),
		At: g.From, Until: g.To, Count: g.Lowest}}
	for _, l := range lines {
		out = append(out, Evidence{Text: "  " + l, At: g.From, Until: g.From})
	}
	for _, e := range a.s.Events {
		if !nodes[e.Node] || e.Offset > g.To {
			continue
		}
		switch e.Kind {
		case timeline.EvNodeCordoned, timeline.EvNodeDeleted, timeline.EvNodeNotReady:
			out = append(out, Evidence{Text: fmt.Sprintf("  node %s: %s at %s", e.Node, e.Kind, fmtAt(e.Offset)),
				Node: e.Node, At: e.Offset, Until: e.Offset, Count: 1})
		}
	}
	return out
}
