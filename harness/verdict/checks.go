package verdict

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Names of the checks. Checks judged per client kind are reported as
// "<name>/<client>" ("error-rate/gateway").
const (
	CheckSteps            = "steps"             // the scenario's steps ran to the end
	CheckLoad             = "load"              // the load generator achieved its rate without blind spots
	CheckBaseline         = "baseline"          // nothing failed before the fault, and every pod was reached
	CheckObservation      = "observation"       // the watches were healthy; their lag
	CheckErrorRate        = "error-rate"        // per client
	CheckOutage           = "longest-outage"    // per client
	CheckReadyEndpoints   = "ready-endpoints"   // never fewer ready endpoints than required
	CheckReadiness        = "readiness"         // new pods served as soon as they were Ready
	CheckGracefulShutdown = "graceful-shutdown" // deleted pods lost nothing and exited in time
	CheckDrain            = "drain"             // every drained node was emptied; PodDisruptionBudget refusals named
	CheckUpgrade          = "upgrade"           // an upgrade's figures: per node, per batch, total, extrapolated
	CheckDNS              = "dns"               // what broken name resolution cost, and how fast the app recovered
	CheckNodeLoss         = "node-loss"         // a node lost without a drain: the app kept serving, its pods were replaced in time
	CheckCgroup           = "cgroup"            // the runtime saw its container limits, before and after the pods moved; use before and after
	CheckWatchedUpgrade   = "watched-upgrade"   // an upgrade nobody announced (rehearse watch): it finished, and left no node cordoned or NotReady
)

// NoteScenariosNotRun names the timeline note a rehearsal writes when its
// baseline could not be judged and it did not run its scenarios (the
// note's Detail says why).
const NoteScenariosNotRun = "scenarios-not-run"

// checker judges one aspect of a rehearsal.
type checker struct {
	// once: judged once per rehearsal (not per scenario window); such checks
	// gate the others: when they cannot judge, nothing can.
	once      bool
	perClient bool
	judge     func(a *analysis, w *window, c timeline.ClientKind) Check
}

var checkers = map[string]checker{
	CheckLoad:             {once: true, judge: func(a *analysis, _ *window, _ timeline.ClientKind) Check { return a.loadCheck() }},
	CheckBaseline:         {once: true, judge: func(a *analysis, _ *window, _ timeline.ClientKind) Check { return a.baselineCheck() }},
	CheckObservation:      {once: true, judge: func(a *analysis, _ *window, _ timeline.ClientKind) Check { return a.observationCheck() }},
	CheckSteps:            {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.stepsCheck(w) }},
	CheckErrorRate:        {perClient: true, judge: (*analysis).errorRateCheck},
	CheckOutage:           {perClient: true, judge: (*analysis).outageCheck},
	CheckReadyEndpoints:   {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.readyEndpointsCheck(w) }},
	CheckReadiness:        {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.readinessCheck(w) }},
	CheckGracefulShutdown: {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.shutdownCheck(w) }},
	CheckDrain:            {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.drainCheck(w) }},
	CheckUpgrade:          {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.upgradeCheck(w) }},
	CheckDNS:              {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.dnsCheck(w) }},
	CheckNodeLoss:         {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.nodeLossCheck(w) }},
	CheckCgroup:           {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.cgroupCheck(w) }},
	CheckWatchedUpgrade:   {judge: func(a *analysis, w *window, _ timeline.ClientKind) Check { return a.watchedUpgradeCheck(w) }},
}

// DefaultChecks are the checks of a rehearsal that replaces pods (a
// restart, a drain, an upgrade), in report order.
var DefaultChecks = []string{
	CheckLoad, CheckBaseline, CheckObservation, CheckSteps,
	CheckErrorRate, CheckOutage, CheckReadyEndpoints, CheckReadiness, CheckGracefulShutdown,
}

// JudgedOnce reports whether the named check is judged once per rehearsal
// (load, baseline, observation: they gate the others) rather than once per
// scenario.
func JudgedOnce(name string) bool { return checkers[name].once }

// CheckNames lists every check, sorted.
func CheckNames() []string {
	out := make([]string, 0, len(checkers))
	for n := range checkers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ValidateChecks reports the names that are not checks, naming the ones
// that are.
func ValidateChecks(names []string) error {
	var bad []string
	for _, n := range names {
		if _, ok := checkers[n]; !ok {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("unknown check %s: use some of %s", strings.Join(bad, ", "), strings.Join(CheckNames(), ", "))
	}
	return nil
}

// Judge judges a timeline with the named checks (DefaultChecks when none).
func Judge(tl *timeline.Timeline, th Thresholds, checks ...string) Report {
	s := tl.Snapshot()
	return JudgeSnapshot(&s, th, checks...)
}

// JudgeSnapshot judges a snapshot, whose records must be sorted by offset
// (Timeline.Snapshot's are; call Sort on one built by hand). Each scenario
// window (a fault phase and its recovery) is judged on its own; with
// several, check names are prefixed with the scenario.
func JudgeSnapshot(s *timeline.Snapshot, th Thresholds, checks ...string) Report {
	if len(checks) == 0 {
		checks = DefaultChecks
	}
	a := analyse(s, th)
	if slices.Contains(checks, CheckDNS) {
		a.blameDNSByTiming()
	}
	var r Report
	var gate *Check
	for _, name := range checks {
		ck, ok := checkers[name]
		if !ok {
			r.Checks = append(r.Checks, cannotJudge(name, "unknown check",
				"use one of "+strings.Join(CheckNames(), ", ")))
			continue
		}
		if !ck.once {
			continue
		}
		c := ck.judge(a, nil, timeline.ClientUnknown)
		c.Name = name
		r.Checks = append(r.Checks, c)
		if c.Status == CannotJudge && gate == nil {
			gate = &r.Checks[len(r.Checks)-1]
		}
	}
	for wi := range a.windows {
		w := &a.windows[wi]
		prefix := ""
		if len(a.windows) > 1 {
			prefix = w.scenario + "/"
		}
		for _, name := range checks {
			ck, ok := checkers[name]
			if !ok || ck.once {
				continue
			}
			if !ck.perClient {
				c := ck.judge(a, w, timeline.ClientUnknown)
				c.Name = prefix + name
				r.Checks = append(r.Checks, c)
				continue
			}
			for _, cl := range a.clients {
				c := ck.judge(a, w, cl)
				c.Name = prefix + name + "/" + cl.String()
				r.Checks = append(r.Checks, c)
			}
		}
	}
	r.Outcome, r.Reason = Pass, ""
	switch {
	case gate != nil:
		r.Outcome, r.Reason = CannotJudge, gate.Name+": "+gate.Summary
	case len(a.windows) == 0 && judgesWindows(checks):
		// Nothing was done to the cluster: a rehearsal that never reached
		// its fault never passes. (Judging only the checks of the whole
		// rehearsal, as its gate after the baseline does, needs no fault.)
		r.Outcome, r.Reason = CannotJudge, "no scenario ran: nothing was rehearsed"
		for _, e := range s.Events {
			if e.Kind == timeline.EvNote && e.Name == NoteScenariosNotRun {
				r.Reason = e.Detail
			}
		}
	case len(r.Failed()) > 0:
		// The reason is the first failed check, so that a one-line
		// outcome (a CI log's last lines, a repeat table) says why.
		f := r.Failed()
		r.Outcome, r.Reason = Fail, f[0].Name+": "+f[0].Summary
		if len(f) > 1 {
			r.Reason += fmt.Sprintf(" (and %d more failed checks)", len(f)-1)
		}
	case len(r.Unjudged()) > 0:
		u := r.Unjudged()[0]
		r.Outcome, r.Reason = CannotJudge, u.Name+": "+u.Summary
	}
	return r
}

// judgesWindows reports whether any of the checks judges a scenario's
// window (the others judge the whole rehearsal once).
func judgesWindows(checks []string) bool {
	for _, n := range checks {
		if ck, ok := checkers[n]; ok && !ck.once {
			return true
		}
	}
	return false
}

func cannotJudge(name, what, fix string, figs ...Figure) Check {
	return Check{
		Name: name, Status: CannotJudge, Summary: what + ": cannot judge", Measured: figs,
		Diagnosis: &Diagnosis{Class: ClassNone, Title: what + ": cannot judge", Fix: fix},
	}
}

func passIf(ok bool) Status {
	if ok {
		return Pass
	}
	return Fail
}

const noRequestsFix = "the load generator recorded no request results: check that the load ran " +
	"for the whole rehearsal and that its target reaches the Service"
