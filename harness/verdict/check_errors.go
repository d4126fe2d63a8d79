package verdict

import (
	"fmt"
	"sort"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// errorRateCheck judges one client kind's failed share in a scenario's
// window, overall and per phase (fault, recovery). The load generator's own
// failures are left out of both counts: they are reported by the load check.
func (a *analysis) errorRateCheck(w *window, c timeline.ClientKind) Check {
	var idx []int
	// The window's requests, and those in flight when it began.
	for _, i := range append(a.inFlightAt(c, w.from()), a.requestsOf(c, w.from(), w.to())...) {
		if a.s.Requests[i].Err != timeline.ErrClient {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		if a.th.AllowEmptyPhases {
			return Check{Status: Pass, Summary: "no requests in the window: not judged", Measured: []Figure{count("requests", 0)}}
		}
		return cannotJudge(CheckErrorRate, "no requests of the "+c.String()+" client in the window", noRequestsFix, count("requests", 0))
	}
	perPhase := map[string][2]int{} // phase -> total, failed
	var failed []int
	by := map[timeline.ErrorKind]int{}
	for _, i := range idx {
		r := &a.s.Requests[i]
		ph := w.phaseOf(r.Offset)
		t := perPhase[ph]
		t[0]++
		if !r.OK() {
			t[1]++
			failed = append(failed, i)
			by[r.Err]++
		}
		perPhase[ph] = t
	}
	rate := float64(len(failed)) / float64(len(idx))
	c0 := Check{Measured: []Figure{count("requests", len(idx)), count("failed", len(failed)), ratio("error_rate", rate),
		ratio("max_error_rate", a.th.MaxErrorRate)}}
	ok := rate <= a.th.MaxErrorRate
	var phaseText []string
	for _, ph := range []string{timeline.PhaseFault, timeline.PhaseRecovery} {
		t, seen := perPhase[ph]
		if !seen {
			continue
		}
		r := float64(t[1]) / float64(t[0])
		limit := a.th.errorRateFor(ph)
		c0.Measured = append(c0.Measured, ratio("error_rate_"+ph, r))
		if r > limit {
			ok = false
		}
		phaseText = append(phaseText, fmt.Sprintf("%s %s", ph, pct(r)))
	}
	for _, k := range timeline.ErrorKinds()[1:] {
		if by[k] > 0 {
			c0.Measured = append(c0.Measured, count("failed_"+k.String(), by[k]))
		}
	}
	c0.Status = passIf(ok)
	c0.Summary = fmt.Sprintf("%s of %d requests failed (%s", pct(rate), len(idx), joinComma(phaseText))
	if len(failed) > 0 {
		c0.Summary += "; " + kindList(by)
	}
	c0.Summary += fmt.Sprintf("), limit %s", pct(a.th.MaxErrorRate))
	if !ok {
		c0.Diagnosis = a.diagnose(w, failed, true)
	}
	return c0
}

func joinComma(parts []string) string {
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += ", "
		}
		out += p
	}
	return out
}

// absorbable counts failures followed, for the same client, by a success
// sent within RetryWindow: failures one client retry would have hidden.
func (a *analysis) absorbable(failed []int) int {
	n := 0
	for _, i := range failed {
		r := &a.s.Requests[i]
		lo, hi := a.indexRange(r.Offset+1, r.Offset+a.th.RetryWindow+1)
		for j := lo; j < hi; j++ {
			if o := &a.s.Requests[j]; o.Client == r.Client && o.OK() {
				n++
				break
			}
		}
	}
	return n
}

// diagnose explains a set of failures by their dominant cause. retries
// says whether to consider class 12 for unexplained short blips.
func (a *analysis) diagnose(w *window, failed []int, retries bool) *Diagnosis {
	byCause := map[Cause][]int{}
	for _, i := range failed {
		at := &a.attrs[a.byReq[i]]
		byCause[at.Cause] = append(byCause[at.Cause], i)
	}
	causes := make([]Cause, 0, len(byCause))
	for c := range byCause {
		causes = append(causes, c)
	}
	sort.Slice(causes, func(i, j int) bool {
		if len(byCause[causes[i]]) != len(byCause[causes[j]]) {
			return len(byCause[causes[i]]) > len(byCause[causes[j]])
		}
		return causes[i] < causes[j]
	})
	d := &Diagnosis{}
	for _, c := range causes {
		d.Evidence = append(d.Evidence, a.causeEvidence(c, byCause[c]))
	}
	absorbed := a.absorbable(failed)
	if retries && len(failed) > 0 {
		d.Evidence = append(d.Evidence, Evidence{Count: absorbed, Text: fmt.Sprintf(
			"%d of %d failed requests were followed by a success within %s: one client retry would have absorbed them",
			absorbed, len(failed), dur(a.th.RetryWindow))})
	}
	blips := retries && len(failed) > 0 && absorbed*10 >= len(failed)*9
	dom := CauseUnexplained
	if len(causes) > 0 {
		dom = causes[0]
	}
	switch dom {
	case CauseShutdown:
		d.Class = a.shutdownClass(w)
	case CauseNotServing:
		d.Class = ClassNotReadyTraffic
	case CauseZeroReady:
		d.Class = ClassZeroReady
	case CauseDNS:
		d.Class = ClassDNS
	case CauseNodeLost:
		// Nothing in the pods could have saved requests to a node that
		// died unnoticed; a client retrying another endpoint could, if
		// there was one: else the replicas were all on that node.
		d.Class = ClassNoRetries
		if a.mostlyNothingServing(byCause[CauseNodeLost]) {
			d.Class = ClassZeroReady
		}
	case CauseDownstream, CauseUnexplained:
		if blips {
			d.Class = ClassNoRetries
		}
	}
	d.Title = d.Class.Title()
	if d.Class == ClassNone {
		switch dom {
		case CauseAppError:
			d.Title = "the app answered errors while it was serving and not terminating"
		case CauseRestart:
			d.Title = "failures around container restarts"
		case CauseDownstream:
			d.Title = "the app's dependency failed"
		default:
			d.Title = "failures not explained by pod or endpoint events"
		}
	}
	d.Fix = a.fixFor(w, d.Class, dom, absorbed, len(failed))
	if d.Class == ClassDNS && len(failed) > 0 {
		first, last := a.s.Requests[failed[0]].Offset, a.s.Requests[failed[len(failed)-1]].Offset
		if ev, ok := a.clusterDNSEvidence(first, last+1); ok {
			d.Evidence = append(d.Evidence, ev)
		}
	}
	if ev, ok := a.failuresFollowImage(w, failed); ok {
		d.Evidence = append(d.Evidence, ev)
		// The image is the root cause; what the app did about it (readiness
		// that did not show it, no retry to a good pod) comes second.
		switch d.Class {
		case ClassDNS:
			d.Fix = fixDNSNodeImage
		case ClassNone, ClassNotReadyTraffic, ClassNoRetries:
			d.Fix = fixNodeImage
			if d.Class == ClassNotReadyTraffic {
				d.Fix += "; " + fixReadinessOnBrokenNode
			}
			d.Class, d.Title = ClassNone, "the app failed on the nodes of the new node image"
		}
	}
	if dom == CauseNodeLost {
		if d.Class == ClassZeroReady {
			d.Title, d.Fix = "every ready replica ran on the lost node", fixSpread
		} else {
			d.Fix = fixRetryOtherEndpoint
		}
	}
	return d
}

// mostlyNothingServing reports whether most of the requests failed while
// no pod off the lost nodes was ready to serve.
func (a *analysis) mostlyNothingServing(idx []int) bool {
	none := 0
	for _, i := range idx {
		if a.servingAt(a.s.Requests[i].Offset) == 0 {
			none++
		}
	}
	return none*2 > len(idx)
}

// servingAt counts the ready endpoints at the offset whose pods had not
// died with a lost node.
func (a *analysis) servingAt(at time.Duration) int {
	n := a.ready.At(at)
	for p, lostAt := range a.lost {
		if lostAt <= at && p.EndpointReadyAt(at) {
			n--
		}
	}
	return n
}

// Outage is a run of time in which a client's requests mostly failed.
type Outage struct {
	Client   timeline.ClientKind
	From, To time.Duration // start of the first down slice; end of the last
	Failed   int           // failed requests in it
	Sent     int
}

// Duration is To - From.
func (o Outage) Duration() time.Duration { return o.To - o.From }

// Outages lists each client's outages in [from, to): runs of consecutive
// time slices of length bucket in which at least failRatio of the client's
// requests failed. Slices without requests end a run.
func Outages(s *timeline.Snapshot, c timeline.ClientKind, from, to, bucket time.Duration, failRatio float64) []Outage {
	if bucket <= 0 || to <= from {
		return nil
	}
	n := int((to - from + bucket - 1) / bucket)
	sent := make([]int, n)
	bad := make([]int, n)
	for i := range s.Requests {
		r := &s.Requests[i]
		if r.Client != c || r.Offset < from || r.Offset >= to || r.Err == timeline.ErrClient {
			continue
		}
		k := int((r.Offset - from) / bucket)
		sent[k]++
		if !r.OK() {
			bad[k]++
		}
	}
	var out []Outage
	var cur *Outage
	for k := 0; k < n; k++ {
		down := sent[k] > 0 && float64(bad[k]) >= failRatio*float64(sent[k])
		start := from + time.Duration(k)*bucket
		if !down {
			cur = nil
			continue
		}
		if cur == nil {
			out = append(out, Outage{Client: c, From: start})
			cur = &out[len(out)-1]
		}
		cur.To = min(start+bucket, to)
		cur.Failed += bad[k]
		cur.Sent += sent[k]
	}
	return out
}

// FailureRun is a run of a client's consecutive failed requests (in send
// order): the finest measure of how long a failure lasted, used to check
// the harness's own precision against a failure window of known length.
type FailureRun struct {
	From, To time.Duration // first failure's send time; next success's send time
	Failed   int
}

// Duration is To - From.
func (f FailureRun) Duration() time.Duration { return f.To - f.From }

// FailureRuns lists a client's runs of consecutive failed requests.
func FailureRuns(s *timeline.Snapshot, c timeline.ClientKind) []FailureRun {
	var out []FailureRun
	var cur *FailureRun
	for i := range s.Requests {
		r := &s.Requests[i]
		if r.Client != c {
			continue
		}
		if r.OK() {
			if cur != nil {
				cur.To = r.Offset
				cur = nil
			}
			continue
		}
		if cur == nil {
			out = append(out, FailureRun{From: r.Offset, To: r.End()})
			cur = &out[len(out)-1]
		}
		cur.Failed++
		cur.To = max(cur.To, r.End())
	}
	return out
}

func (a *analysis) outageCheck(w *window, c timeline.ClientKind) Check {
	outs := Outages(a.s, c, w.from(), w.to(), a.th.OutageBucket, a.th.OutageFailRatio)
	var longest Outage
	for _, o := range outs {
		if o.Duration() > longest.Duration() {
			longest = o
		}
	}
	ch := Check{
		Status: passIf(longest.Duration() <= a.th.MaxOutage),
		Measured: []Figure{seconds("longest_outage", longest.Duration()), count("outages", len(outs)),
			seconds("max_outage", a.th.MaxOutage)},
	}
	if len(outs) == 0 {
		ch.Summary = fmt.Sprintf("never down (no %s slice with %s or more failed), limit %s", dur(a.th.OutageBucket),
			pct(a.th.OutageFailRatio), dur(a.th.MaxOutage))
		return ch
	}
	ch.Summary = fmt.Sprintf("longest outage %s from %s (%d of %d requests failed), limit %s", dur(longest.Duration()),
		fmtAt(longest.From), longest.Failed, longest.Sent, dur(a.th.MaxOutage))
	if ch.Status == Pass {
		return ch
	}
	var failed []int
	var ev []Evidence
	for _, o := range outs {
		if o.Duration() <= a.th.MaxOutage {
			continue
		}
		for _, i := range a.requestsOf(c, o.From, o.To) {
			if !a.s.Requests[i].OK() {
				failed = append(failed, i)
			}
		}
		if len(ev) < 5 {
			ev = append(ev, Evidence{At: o.From, Until: o.To, Count: o.Failed, Text: fmt.Sprintf(
				"down from %s to %s (%s): %d of %d requests failed", fmtAt(o.From), fmtAt(o.To), dur(o.Duration()), o.Failed, o.Sent)})
		}
	}
	d := a.diagnose(w, failed, false)
	d.Evidence = append(ev, d.Evidence...)
	d.Evidence = append(d.Evidence, a.eventsDuring(longest.From-time.Second, longest.To+a.tol, 10)...)
	ch.Diagnosis = d
	return ch
}

// eventsDuring lists cluster and harness events in [from, to] as evidence,
// at most limit of them.
func (a *analysis) eventsDuring(from, to time.Duration, limit int) []Evidence {
	var out []Evidence
	for _, e := range a.s.Events {
		if e.Offset < from || e.Offset > to || e.Kind == timeline.EvNote || e.Kind == timeline.EvWatchLag {
			continue
		}
		if len(out) == limit {
			out = append(out, Evidence{Text: "(more events in the window)", At: e.Offset, Until: e.Offset})
			break
		}
		out = append(out, Evidence{Text: "event around the outage: " + describeEvent(&e), Pod: e.Pod, Node: e.Node,
			At: e.Offset, Until: e.Offset, Count: 1})
	}
	return out
}
