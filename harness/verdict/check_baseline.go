package verdict

import (
	"fmt"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// baselineCheck asks whether the app was healthy before anything was done:
// no request failed in the baseline, and every pod serving then had been
// reached by the clients. Otherwise what fails during the fault cannot be
// told apart from what was failing anyway, and the rehearsal cannot be
// judged.
func (a *analysis) baselineCheck() Check {
	if !a.hasBase {
		for _, e := range a.s.Events {
			if e.Kind == timeline.EvNote && e.Name == NoteNoBaseline {
				return cannotJudge(CheckBaseline, "no baseline: "+e.Detail,
					"start watching well before upgrades begin (AKS's maintenance window, the auto-upgrade channel's schedule): "+
						"without the time before the upgrade nothing shows the app was healthy then")
			}
		}
		return cannotJudge(CheckBaseline, "no baseline phase",
			"run a baseline (load only) before the fault: without one nothing shows the app was healthy before it")
	}
	b := a.baseline
	var problems []string
	d := &Diagnosis{Class: ClassNone, Title: "baseline not clean: cannot judge"}
	var figs []Figure
	var failed []int
	total := 0
	for _, c := range a.clients {
		// Requests still in flight when the baseline ended are the fault
		// window's: its first eviction may be what broke them.
		var idx []int
		for _, i := range a.requestsOf(c, b.Start, b.End) {
			if a.s.Requests[i].End() < b.End {
				idx = append(idx, i)
			}
		}
		n := 0
		for _, i := range idx {
			if r := &a.s.Requests[i]; !r.OK() && r.Err != timeline.ErrClient {
				n++
				failed = append(failed, i)
			}
		}
		total += len(idx)
		figs = append(figs, count("requests_"+c.String(), len(idx)), count("failed_"+c.String(), n))
		if len(idx) == 0 {
			problems = append(problems, fmt.Sprintf("the %s client sent nothing in the baseline", c))
		}
		if n > 0 {
			problems = append(problems, fmt.Sprintf("%s of %d failed for the %s client", plural(n, "request", "requests"), len(idx), c))
		}
	}
	if len(failed) > 0 {
		d.Evidence = append(d.Evidence, a.failureEvidence(failed)...)
	}

	// Every pod the gateway routed to when the baseline began must have
	// served it by the end of the baseline: a pod nobody reached was not
	// measured, and its failures would be blamed on the fault.
	unreached := a.unreachedAtBaseline()
	figs = append(figs, count("pods_unreached", len(unreached)))
	if len(unreached) > 0 {
		var names []string
		for _, p := range unreached {
			names = append(names, p.Pod)
			d.Evidence = append(d.Evidence, Evidence{Pod: p.Pod, Node: p.Node, At: b.Start, Until: b.End, Text: fmt.Sprintf(
				"%s (node %s) was routed to but served no request before the fault", p.Pod, orDash(p.Node))})
		}
		problems = append(problems, "not every pod was reached: "+strings.Join(names, ", "))
	}
	c := Check{Name: CheckBaseline, Measured: figs}
	if len(problems) == 0 {
		c.Status = Pass
		c.Summary = fmt.Sprintf("clean: %d requests in %s, none failed, every pod reached", total, dur(b.Duration()))
		return c
	}
	c.Status = CannotJudge
	c.Summary = "baseline not clean: " + strings.Join(problems, "; ")
	d.Fix = "the app failed before anything was done to it: fix what fails in the baseline first (the " +
		"evidence names the pods), or, if the app is known to fail a few requests all the time, raise " +
		"MaxErrorRate for it; a rehearsal can only judge what a fault changes"
	c.Diagnosis = d
	return c
}

// unreachedAtBaseline lists the pods the gateway routed to at the start of
// the baseline that no gateway request reached successfully by its end.
func (a *analysis) unreachedAtBaseline() []*timeline.PodLifecycle {
	if len(a.routes) == 0 {
		return nil
	}
	from := a.baseline.Start
	if a.hasWarmup {
		from = a.warmup.Start
	}
	var out []*timeline.PodLifecycle
	for _, p := range sortedPods(a.routes) {
		if !a.routedAt(p, a.baseline.Start) || a.deletedBy(p, a.baseline.End) {
			continue
		}
		if !a.servedBetween(p, from, a.baseline.End) {
			out = append(out, p)
		}
	}
	return out
}

// failureEvidence summarises failed requests by cause and pod.
func (a *analysis) failureEvidence(failed []int) []Evidence {
	byCause := map[Cause][]int{}
	var order []Cause
	for _, i := range failed {
		at := a.attrs[a.byReq[i]]
		if _, ok := byCause[at.Cause]; !ok {
			order = append(order, at.Cause)
		}
		byCause[at.Cause] = append(byCause[at.Cause], i)
	}
	var out []Evidence
	for _, c := range order {
		out = append(out, a.causeEvidence(c, byCause[c]))
	}
	return out
}

// causeEvidence summarises failures of one cause: kinds, span, pods.
func (a *analysis) causeEvidence(c Cause, idx []int) Evidence {
	pods := map[*timeline.PodLifecycle]float64{}
	by := map[timeline.ErrorKind]int{}
	first, last := timeline.Forever, time.Duration(0)
	correlated := 0
	clients := map[timeline.ClientKind]int{}
	for _, i := range idx {
		at := &a.attrs[a.byReq[i]]
		for _, p := range at.Pods {
			pods[p] += at.Weight()
		}
		if at.Correlated {
			correlated++
		}
		r := &a.s.Requests[i]
		by[r.Err]++
		clients[r.Client]++
		first, last = min(first, r.Offset), max(last, r.Offset)
	}
	text := fmt.Sprintf("%s (%s; %s) from %s to %s: %s", plural(len(idx), "failed request", "failed requests"),
		kindList(by), clientList(clients), fmtAt(first), fmtAt(last), c)
	if len(pods) > 0 {
		text += " " + podShares(pods)
	}
	if correlated > 0 {
		text += fmt.Sprintf("; %d attributed by correlation with pod events (the client could not name the pod), "+
			"the blame split between the candidates", correlated)
	}
	ev := Evidence{Text: text, At: first, Until: last, Count: len(idx), Correlated: correlated > 0}
	if len(pods) == 1 {
		for p := range pods {
			ev.Pod, ev.Node = p.Pod, p.Node
		}
	}
	return ev
}

func clientList(by map[timeline.ClientKind]int) string {
	var parts []string
	for _, c := range timeline.ClientKinds() {
		if n := by[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c))
		}
	}
	if n := by[timeline.ClientUnknown]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d unknown client", n))
	}
	return strings.Join(parts, ", ")
}

// podShares is "(web-a: 12, web-b: 3.5)", most first, at most 5 named.
func podShares(pods map[*timeline.PodLifecycle]float64) string {
	ps := sortedPods(pods)
	sortByShare(ps, pods)
	var parts []string
	for i, p := range ps {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %s", p.Pod, trimFloat(pods[p])))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func sortByShare(ps []*timeline.PodLifecycle, share map[*timeline.PodLifecycle]float64) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && share[ps[j]] > share[ps[j-1]]; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// observationCheck reports how well the cluster was watched: the measured
// lag of the watches and any interruption. It passes unless the watches
// were interrupted, in which case the checks that rely on events say so.
func (a *analysis) observationCheck() Check {
	c := Check{Name: CheckObservation, Status: Pass}
	var gapTotal time.Duration
	for _, g := range a.gaps {
		if g.To == timeline.Forever {
			gapTotal = timeline.Forever
			break
		}
		gapTotal += g.Duration()
	}
	c.Measured = []Figure{count("watch_interruptions", len(a.gaps)), seconds("correlation_tolerance", a.tol)}
	if a.lagKnown {
		c.Measured = append(c.Measured, seconds("max_watch_lag", a.maxLag))
	}
	lag := "watch lag not measured, tolerance " + dur(a.tol)
	if a.lagKnown {
		lag = fmt.Sprintf("watch lag up to %s (tolerance %s)", dur(a.maxLag), dur(a.tol))
	}
	if a.lagKnown && a.th.MaxWatchLag > 0 && a.maxLag > a.th.MaxWatchLag {
		c.Status = CannotJudge
		c.Summary = fmt.Sprintf("the watches lagged up to %s behind the cluster (limit %s): cannot judge", dur(a.maxLag), dur(a.th.MaxWatchLag))
		c.Diagnosis = &Diagnosis{Class: ClassNone, Title: "cluster or harness starved: cannot judge",
			Fix: "this machine or the cluster was too busy for what the clients saw to be matched with what the cluster did " +
				"(events arrived seconds late): rehearse on a quieter machine, with fewer nodes or a lower --rate"}
		return c
	}
	if stall, ok := a.emulatedNodeStall(); ok {
		c.Status = CannotJudge
		c.Summary = fmt.Sprintf("node %s, a VM under software emulation, went NotReady %s into the rehearsal and no step took it down: cannot judge",
			stall.Node, dur(stall.Offset))
		c.Diagnosis = &Diagnosis{Class: ClassNone, Title: "an emulated VM node stalled: cannot judge",
			Fix: "the VM stopped answering (its kubelet stopped reporting) though nothing in the rehearsal stopped it: under QEMU's " +
				"software emulation a VM now and then stalls for good, and what clients saw of the pods there is the emulator's doing, " +
				"not the app's. Remove the node (rehearse cluster remove-node), add it again and rehearse again; with KVM the VM runs at native speed"}
		return c
	}
	if len(a.gaps) == 0 {
		c.Summary = "watches uninterrupted; " + lag
		return c
	}
	total := "until the end"
	if gapTotal != timeline.Forever {
		total = dur(gapTotal)
	}
	c.Summary = fmt.Sprintf("watches interrupted %s (%s in all): cluster events there may be late or missing; %s",
		plural(len(a.gaps), "time", "times"), total, lag)
	return c
}

// emulatedNodeStall is the first NotReady of a node under software
// emulation (a VM node, as its cgroup record says) that no step stopped.
// Such a VM stalls now and then on its own (seen on this project's
// machines: both virtual CPUs parked for good, QEMU spinning), and the
// errors of the pods on it would otherwise be blamed on the app. Only
// emulated nodes: a real node that goes NotReady during a rehearsal is
// part of what is rehearsed (an upgrade reimages nodes).
func (a *analysis) emulatedNodeStall() (timeline.Event, bool) {
	for _, e := range a.s.Events {
		if e.Kind == timeline.EvNodeNotReady && a.emulated[e.Node] && !a.stoppedBy(e.Node, e.Offset) {
			return e, true
		}
	}
	return timeline.Event{}, false
}

// stoppedBy reports whether the harness powered node off at or before at.
func (a *analysis) stoppedBy(node string, at time.Duration) bool {
	for _, st := range a.stops {
		if st.Node == node && st.Offset <= at {
			return true
		}
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
