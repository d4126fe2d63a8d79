package verdict

import (
	"fmt"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// PodStart is what a new pod's start looked like to clients.
type PodStart struct {
	Pod, Node    string
	Ready        timeline.Mark // first Ready (pod condition or endpoint)
	FirstRouted  timeline.Mark // when the gateway began routing to it
	FirstSuccess timeline.Mark // first successful answer at or after Ready
	// Reached lists the client kinds that sent it at least one request
	// after it was Ready. A pod no client reached cannot be judged.
	Reached []timeline.ClientKind
	Errors  float64 // failed requests blamed on it before it served (correlated ones shared)
	Exact   int     // of which attributed exactly (routed, or named by headers)
	ByKind  map[timeline.ErrorKind]int
	First   time.Duration // first such failure
	Last    time.Duration
}

// Delay is how long after Ready the pod first served successfully.
func (p PodStart) Delay() time.Duration {
	if !p.FirstSuccess.Known {
		return 0
	}
	return max(0, p.FirstSuccess.At-p.Ready.At)
}

// Judged reports whether a client reached the pod.
func (p PodStart) Judged() bool { return len(p.Reached) > 0 }

// PodStarts describes, per scenario window, the pods that became Ready in
// it, in order of first event.
func PodStarts(s *timeline.Snapshot, th Thresholds) []PodStart {
	a := analyse(s, th)
	var out []PodStart
	for i := range a.windows {
		out = append(out, a.podStarts(&a.windows[i])...)
	}
	return out
}

func (a *analysis) podStarts(w *window) []PodStart {
	var out []PodStart
	for k := range a.pods {
		p := &a.pods[k]
		r := p.FirstReady()
		if !r.Known || r.At < w.from()-a.tol || r.At >= w.to() {
			continue
		}
		ps := PodStart{Pod: p.Pod, Node: p.Node, Ready: r, ByKind: map[timeline.ErrorKind]int{}}
		if rs := a.routes[p]; len(rs) > 0 {
			ps.FirstRouted = timeline.Mark{At: rs[0].From, Known: true}
		}
		if s, ok := a.firstSuccessFrom(p, r.At-a.tol); ok {
			ps.FirstSuccess = timeline.Mark{At: s, Known: true}
		}
		for _, c := range timeline.ClientKinds() {
			for _, at := range a.reached[p][c] {
				if at >= r.At-a.tol {
					ps.Reached = append(ps.Reached, c)
					break
				}
			}
		}
		first := true
		for _, at := range a.attrs {
			if at.Cause != CauseNotServing || !containsPod(at.Pods, p) {
				continue
			}
			rq := &a.s.Requests[at.Request]
			if rq.Offset < r.At-a.tol {
				continue
			}
			ps.Errors += at.Weight()
			if !at.Correlated {
				ps.Exact++
			}
			ps.ByKind[rq.Err]++
			if first {
				ps.First, first = rq.Offset, false
			}
			ps.Last = rq.Offset
		}
		out = append(out, ps)
	}
	return out
}

func containsPod(ps []*timeline.PodLifecycle, p *timeline.PodLifecycle) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// readinessCheck judges the pods that became Ready during a scenario: each
// must serve as soon as clients reach it. A pod is judged only where a
// client reached it; a new pod that no client reached makes the check
// "cannot judge" rather than a silent pass.
func (a *analysis) readinessCheck(w *window) Check {
	starts := a.podStarts(w)
	var judged, unreached []PodStart
	var errors float64
	var delays []time.Duration
	for _, ps := range starts {
		if !ps.Judged() {
			// A pod deleted soon after Ready may simply not have lived long
			// enough for the gateway to route to it.
			if p := a.podAt(ps.Pod, ps.Ready.At); p != nil && p.DeletionRequested.Known && p.DeletionRequested.At-ps.Ready.At < a.th.MaxReadyToServe {
				continue
			}
			unreached = append(unreached, ps)
			continue
		}
		judged = append(judged, ps)
		errors += ps.Errors
		if ps.FirstSuccess.Known {
			delays = append(delays, ps.Delay())
		}
	}
	var worst time.Duration
	for _, d := range delays {
		worst = max(worst, d)
	}
	c := Check{Measured: []Figure{count("new_pods", len(starts)), count("pods_judged", len(judged)),
		count("pods_unreached", len(unreached)), {Name: "failed_before_serving", Value: errors, Unit: UnitCount},
		seconds("max_ready_to_first_success", worst), seconds("median_ready_to_first_success", median(delays))}}
	switch {
	case len(starts) == 0:
		c.Status = Pass
		c.Summary = "no pod became Ready in the window: nothing to judge"
		return c
	case errors > float64(a.th.MaxNotReadyErrors):
		c.Status = Fail
	case len(unreached) > 0:
		c.Status = CannotJudge
		var names []string
		for _, ps := range unreached {
			names = append(names, ps.Pod)
		}
		c.Summary = fmt.Sprintf("%s became Ready but no client reached %s (%s): readiness not judged",
			plural(len(unreached), "pod", "pods"), map[bool]string{true: "it", false: "them"}[len(unreached) == 1], strings.Join(names, ", "))
		c.Diagnosis = &Diagnosis{Class: ClassNone, Title: "new pods not reached: cannot judge", Fix: "run the gateway " +
			"client (it routes to every ready pod); a client with pooled connections stays on older pods and never tests new ones"}
		return c
	default:
		c.Status = Pass
	}
	c.Summary = fmt.Sprintf("%s failed at %s before they served (%s judged of %s new), slowest first success %s after Ready",
		plural(int(errors+0.5), "request", "requests"), plural(countFailing(judged), "new pod", "new pods"), plural(len(judged), "pod", "pods"),
		plural(len(starts), "pod", "pods"), dur(worst))
	if c.Status == Pass {
		return c
	}
	d := &Diagnosis{Class: ClassNotReadyTraffic, Title: ClassNotReadyTraffic.Title(), Fix: fixReadiness}
	for _, ps := range judged {
		if ps.Errors == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s (node %s) was Ready at %s", ps.Pod, orDash(ps.Node), fmtAt(ps.Ready.At))
		if ps.FirstRouted.Known {
			fmt.Fprintf(&b, ", routed to by the gateway at %s", fmtAt(ps.FirstRouted.At))
		}
		fmt.Fprintf(&b, "; %s failed there from %s to %s (%s)", plural(int(ps.Errors+0.5), "request", "requests"),
			fmtAt(ps.First), fmtAt(ps.Last), kindList(ps.ByKind))
		if ps.Exact < int(ps.Errors+0.5) {
			fmt.Fprintf(&b, ", %d of them by correlation", int(ps.Errors+0.5)-ps.Exact)
		}
		if ps.FirstSuccess.Known {
			fmt.Fprintf(&b, ", before its first success at %s (%s after Ready)", fmtAt(ps.FirstSuccess.At), dur(ps.Delay()))
		} else {
			b.WriteString(", and it never served successfully")
		}
		b.WriteString(": it was Ready but could not serve")
		d.Evidence = append(d.Evidence, Evidence{Text: b.String(), Pod: ps.Pod, Node: ps.Node, At: ps.First, Until: ps.Last,
			Count: int(ps.Errors + 0.5), Correlated: ps.Exact < int(ps.Errors+0.5)})
	}
	c.Diagnosis = d
	return c
}

func countFailing(ps []PodStart) int {
	n := 0
	for _, p := range ps {
		if p.Errors > 0 {
			n++
		}
	}
	return n
}
