package verdict

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Names of the checks, in report order. Per-phase error-rate checks are
// named PhaseCheckName(phase).
const (
	CheckErrorRate        = "error-rate"
	CheckOutage           = "longest-outage"
	CheckReadyEndpoints   = "ready-endpoints"
	CheckReadyToServe     = "ready-to-serve"
	CheckReadiness        = "readiness"
	CheckGracefulShutdown = "graceful-shutdown"
)

// PhaseCheckName names the error-rate check of a phase: "error-rate/fault".
func PhaseCheckName(phase string) string { return CheckErrorRate + "/" + phase }

// Judge judges a timeline.
func Judge(tl *timeline.Timeline, th Thresholds) Report {
	s := tl.Snapshot()
	return JudgeSnapshot(&s, th)
}

// JudgeSnapshot judges a snapshot, whose records must be sorted by offset
// (Timeline.Snapshot's are; call Sort on one built by hand).
func JudgeSnapshot(s *timeline.Snapshot, th Thresholds) Report {
	a := analyse(s, th)
	var r Report
	r.Checks = append(r.Checks, a.errorRateCheck(CheckErrorRate, "", a.allIndexes(), th.MaxErrorRate))
	for _, ph := range a.phaseNames() {
		idx := a.phaseIndexes(ph)
		c := a.errorRateCheck(PhaseCheckName(ph), ph, idx, th.errorRateFor(ph))
		if len(idx) == 0 && len(s.Requests) > 0 && th.AllowEmptyPhases {
			c = Check{Name: c.Name, Passed: true, Summary: fmt.Sprintf("no requests in phase %q: not judged", ph),
				Measured: []Figure{count("requests", 0)}}
		}
		r.Checks = append(r.Checks, c)
	}
	r.Checks = append(r.Checks,
		a.outageCheck(),
		a.readyEndpointsCheck(),
		a.readyToServeCheck(),
		a.readinessCheck(),
		a.shutdownCheck(),
	)
	return r
}

func cannotJudge(name, what, fix string, figs ...Figure) Check {
	return Check{
		Name: name, Summary: what + ": cannot judge", Measured: figs,
		Diagnosis: &Diagnosis{Class: ClassNone, Title: what + ": cannot judge", Fix: fix},
	}
}

const noRequestsFix = "the load generator recorded no request results: check that the load ran " +
	"for the whole rehearsal and that its target URL reaches the Service"

func (a *analysis) allIndexes() []int {
	out := make([]int, len(a.s.Requests))
	for i := range out {
		out[i] = i
	}
	return out
}

// phaseNames lists phase names in order of first start.
func (a *analysis) phaseNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, p := range a.s.Phases() {
		if !seen[p.Name] {
			seen[p.Name] = true
			names = append(names, p.Name)
		}
	}
	return names
}

// phaseIndexes lists the requests sent during any span of the named phase.
func (a *analysis) phaseIndexes(name string) []int {
	var out []int
	var last = -1
	for _, p := range a.s.Phases() {
		if p.Name != name {
			continue
		}
		lo, hi := a.indexRange(p.Start, p.End)
		for i := max(lo, last+1); i < hi; i++ {
			out = append(out, i)
			last = i
		}
	}
	sort.Ints(out)
	return out
}

func (a *analysis) indexRange(from, to time.Duration) (int, int) {
	rs := a.s.Requests
	lo := sort.Search(len(rs), func(i int) bool { return rs[i].Offset >= from })
	hi := sort.Search(len(rs), func(i int) bool { return rs[i].Offset >= to })
	return lo, max(lo, hi)
}

// kindCounts counts failures by error kind.
func (a *analysis) kindCounts(idx []int) (failed int, by map[timeline.ErrorKind]int) {
	by = map[timeline.ErrorKind]int{}
	for _, i := range idx {
		r := &a.s.Requests[i]
		if !r.OK() {
			failed++
			by[r.Err]++
		}
	}
	return failed, by
}

// kindList is "55 refused, 2 reset", most frequent first.
func kindList(by map[timeline.ErrorKind]int) string {
	kinds := make([]timeline.ErrorKind, 0, len(by))
	for k, n := range by {
		if n > 0 && k != timeline.ErrNone {
			kinds = append(kinds, k)
		}
	}
	sort.Slice(kinds, func(i, j int) bool {
		if by[kinds[i]] != by[kinds[j]] {
			return by[kinds[i]] > by[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", by[k], k)
	}
	return strings.Join(parts, ", ")
}

// absorbable counts failures followed by a success sent within RetryWindow.
func (a *analysis) absorbable(idx []int) int {
	n := 0
	ok := a.okTimes
	for _, i := range idx {
		r := &a.s.Requests[i]
		if r.OK() {
			continue
		}
		j := sort.Search(len(ok), func(j int) bool { return ok[j] > r.Offset })
		if j < len(ok) && ok[j]-r.Offset <= a.th.RetryWindow {
			n++
		}
	}
	return n
}

func (a *analysis) errorRateCheck(name, phase string, idx []int, limit float64) Check {
	scope := "the run"
	if phase != "" {
		scope = fmt.Sprintf("phase %q", phase)
	}
	if len(idx) == 0 {
		what := "no requests"
		if phase != "" {
			what = fmt.Sprintf("no requests in phase %q", phase)
		}
		return cannotJudge(name, what, noRequestsFix, count("requests", 0))
	}
	failed, by := a.kindCounts(idx)
	rate := float64(failed) / float64(len(idx))
	c := Check{
		Name:   name,
		Passed: rate <= limit,
		Measured: []Figure{
			count("requests", len(idx)), count("failed", failed), ratio("error_rate", rate), ratio("max_error_rate", limit),
		},
	}
	for _, k := range timeline.ErrorKinds()[1:] {
		if by[k] > 0 {
			c.Measured = append(c.Measured, count("failed_"+k.String(), by[k]))
		}
	}
	c.Summary = fmt.Sprintf("%s of requests failed in %s (%d of %d", pct(rate), scope, failed, len(idx))
	if failed > 0 {
		c.Summary += ": " + kindList(by)
	}
	c.Summary += fmt.Sprintf("), limit %s", pct(limit))
	if !c.Passed {
		c.Diagnosis = a.diagnoseFailures(idx, true)
	}
	return c
}

// failedIn lists the failed requests among idx.
func (a *analysis) failedIn(idx []int) []int {
	var out []int
	for _, i := range idx {
		if !a.s.Requests[i].OK() {
			out = append(out, i)
		}
	}
	return out
}

// diagnoseFailures explains a set of failures by their dominant cause.
// retries says whether to consider class 12 for unexplained short blips.
func (a *analysis) diagnoseFailures(idx []int, retries bool) *Diagnosis {
	failed := a.failedIn(idx)
	t := a.tally(failed)
	d := &Diagnosis{}
	for _, c := range t.sortedCauses() {
		d.Evidence = append(d.Evidence, a.causeEvidence(c, failed, t))
	}
	absorbed := a.absorbable(failed)
	if retries && len(failed) > 0 {
		d.Evidence = append(d.Evidence, Evidence{
			Text: fmt.Sprintf("%d of %d failed requests were followed by a success within %s: "+
				"one client retry would have absorbed them", absorbed, len(failed), dur(a.th.RetryWindow)),
			Count: absorbed,
		})
	}
	dom := t.dominant()
	switch {
	case dom == CauseShutdown:
		d.Class = a.shutdownClass()
	case dom == CauseUnexplained && retries && len(failed) > 0 && absorbed*10 >= len(failed)*9:
		// Nearly all were short blips: a retry fixes what users see.
		d.Class = ClassNoRetries
	default:
		d.Class = dom.Class()
	}
	d.Title = d.Class.Title()
	if d.Class == ClassNone {
		d.Title = "failures not explained by pod or endpoint events"
	}
	d.Fix = a.fixFor(d.Class, absorbed, len(failed))
	return d
}

// causeEvidence summarises the failures of one cause.
func (a *analysis) causeEvidence(c Cause, failed []int, t causeTally) Evidence {
	pods := map[string]int{}
	by := map[timeline.ErrorKind]int{}
	var first, last time.Duration = timeline.Forever, 0
	for _, i := range failed {
		at := &a.attrs[a.byReq[i]]
		if at.Cause != c {
			continue
		}
		for _, p := range at.Pods {
			pods[p]++
		}
		r := &a.s.Requests[i]
		by[r.Err]++
		first, last = min(first, r.Offset), max(last, r.Offset)
	}
	n := t.byCause[c]
	text := fmt.Sprintf("%s (%s) from %s to %s: %s", plural(n, "failed request", "failed requests"),
		kindList(by), at(first), at(last), c)
	if len(pods) > 0 {
		text += " " + podList(pods)
	}
	if k := t.correlated[c]; k > 0 {
		text += fmt.Sprintf("; %d attributed by correlation with pod events, not by response headers", k)
	}
	ev := Evidence{Text: text, At: first, Until: last, Count: n, Correlated: t.correlated[c] > 0}
	if len(pods) == 1 {
		for p := range pods {
			ev.Pod = p
			if lc := a.byPod[p]; lc != nil {
				ev.Node = lc.Node
			}
		}
	}
	return ev
}

// podList is "(web-a: 12, web-b: 3)", most first, at most 5 named.
func podList(pods map[string]int) string {
	names := make([]string, 0, len(pods))
	for p := range pods {
		names = append(names, p)
	}
	sort.Slice(names, func(i, j int) bool {
		if pods[names[i]] != pods[names[j]] {
			return pods[names[i]] > pods[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for i, p := range names {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %d", p, pods[p]))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

const (
	fixShutdown = "handle SIGTERM in the app: stop accepting new connections, let in-flight requests " +
		"finish and close idle keep-alive connections, then exit (Go: http.Server.Shutdown; " +
		"Node.js: server.close; Spring Boot: server.shutdown=graceful); keep " +
		"terminationGracePeriodSeconds (default 30 s) longer than that drain"
	fixReadiness = "give the container a readiness probe that passes only when the app can serve: " +
		"after it listens and has warmed up (caches loaded, connections to its dependencies open), " +
		"served by the real request path; use a startupProbe for slow starts instead of a long " +
		"initialDelaySeconds"
	fixZeroReady = "add a PodDisruptionBudget (minAvailable: 1, or maxUnavailable: 1) so a drain evicts " +
		"one pod at a time and waits for its replacement to be Ready, and run at least 2 replicas " +
		"spread over nodes (topologySpreadConstraints or podAntiAffinity) so one node's drain " +
		"cannot take them all"
	fixDNS = "name resolution failed: check CoreDNS (pods Ready, not all on the drained node, a PDB " +
		"of its own) and the nodes' resolv.conf after the node image change"
	fixUnexplained = "no pod or endpoint event explains these failures: look at what happened at " +
		"those times (the events listed, the app's logs, kube-proxy and the CNI on the nodes involved)"
)

func (a *analysis) fixFor(c Class, absorbed, failed int) string {
	switch c {
	case ClassNoGracefulShutdown:
		return fixShutdown
	case ClassEndpointLag:
		return a.preStopFix()
	case ClassNotReadyTraffic:
		return fixReadiness
	case ClassZeroReady:
		return fixZeroReady
	case ClassDNS:
		return fixDNS
	case ClassNoRetries:
		return fmt.Sprintf("make clients retry idempotent requests once after a short backoff "+
			"(100-500 ms) with a per-try timeout, and add a circuit breaker for longer outages: "+
			"%d of the %d failures were short blips a retry would have hidden", absorbed, failed)
	}
	return fixUnexplained
}

// ---- longest outage ----

// Outage is a run of consecutive failed requests (in send order).
type Outage struct {
	From, To  time.Duration // first failure's send time; next success's send time
	Failed    int
	Recovered bool // false: the run was still failing at the end (To is the last failure's end)
	first     int  // index of the first failed request
}

// Duration is To - From.
func (o Outage) Duration() time.Duration { return o.To - o.From }

// Outages lists every run of consecutive failures, in order.
func Outages(s *timeline.Snapshot) []Outage {
	var out []Outage
	var cur *Outage
	for i := range s.Requests {
		r := &s.Requests[i]
		if r.OK() {
			if cur != nil {
				cur.To, cur.Recovered = r.Offset, true
				cur = nil
			}
			continue
		}
		if cur == nil {
			out = append(out, Outage{From: r.Offset, To: r.End(), first: i})
			cur = &out[len(out)-1]
		}
		cur.Failed++
		cur.To = max(cur.To, r.End())
	}
	return out
}

func (a *analysis) outageCheck() Check {
	if len(a.s.Requests) == 0 {
		return cannotJudge(CheckOutage, "no requests", noRequestsFix)
	}
	outs := Outages(a.s)
	var longest Outage
	for _, o := range outs {
		if o.Duration() > longest.Duration() {
			longest = o
		}
	}
	c := Check{
		Name:   CheckOutage,
		Passed: longest.Duration() <= a.th.MaxOutage,
		Measured: []Figure{
			seconds("longest_outage", longest.Duration()), count("longest_outage_failed", longest.Failed),
			count("outages", len(outs)), seconds("max_outage", a.th.MaxOutage),
		},
	}
	if longest.Failed == 0 {
		c.Summary = fmt.Sprintf("no request failed, limit %s", dur(a.th.MaxOutage))
		return c
	}
	c.Summary = fmt.Sprintf("longest outage %s from %s (%s failed in a row%s), limit %s",
		dur(longest.Duration()), at(longest.From), plural(longest.Failed, "request", "requests"),
		map[bool]string{true: "", false: ", not recovered by the end"}[longest.Recovered], dur(a.th.MaxOutage))
	if c.Passed {
		return c
	}
	var idx []int
	var ev []Evidence
	for _, o := range outs {
		if o.Duration() <= a.th.MaxOutage {
			continue
		}
		for i := o.first; i < o.first+o.Failed; i++ {
			idx = append(idx, i)
		}
		if len(ev) < 5 {
			_, by := a.kindCounts(rangeInts(o.first, o.first+o.Failed))
			ev = append(ev, Evidence{
				Text: fmt.Sprintf("every request failed from %s to %s (%s, %d failed: %s)",
					at(o.From), at(o.To), dur(o.Duration()), o.Failed, kindList(by)),
				At: o.From, Until: o.To, Count: o.Failed,
			})
		}
	}
	d := a.diagnoseFailures(idx, false)
	d.Evidence = append(ev, d.Evidence...)
	// Events from a little before the outage (what led to it) to its end.
	d.Evidence = append(d.Evidence, a.eventsDuring(longest.From-max(time.Second, a.th.ClockSkew), longest.To+a.th.ClockSkew, 10)...)
	c.Diagnosis = d
	return c
}

func rangeInts(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// eventsDuring lists cluster and harness events in [from, to] as evidence,
// at most limit of them.
func (a *analysis) eventsDuring(from, to time.Duration, limit int) []Evidence {
	var out []Evidence
	for _, e := range a.s.Events {
		if e.Offset < from || e.Offset > to || e.Kind == timeline.EvNote {
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

func describeEvent(e *timeline.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", at(e.Offset), e.Kind)
	for _, kv := range [][2]string{{"pod", e.Pod}, {"node", e.Node}, {"ip", e.IP}, {"name", e.Name}, {"reason", e.Reason}, {"detail", e.Detail}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if e.ExitCode != nil {
		fmt.Fprintf(&b, " exit=%d", *e.ExitCode)
	}
	return b.String()
}

// ---- ready endpoints ----

func (a *analysis) readyEndpointsCheck() Check {
	minReady := a.th.MinReadyEndpoints
	if !a.endpointEv {
		return cannotJudge(CheckReadyEndpoints, "no endpoint events",
			"the endpoint watch recorded nothing: check that the observer watches the Service's "+
				"EndpointSlices and that the Service's selector matches the app's pods")
	}
	end := max(a.s.End(), a.lastTx)
	var from time.Duration
	reached := false
	peak := 0
	for _, st := range a.ready {
		peak = max(peak, st.Ready)
		if !reached && st.Ready >= minReady {
			from, reached = st.At, true
		}
	}
	if !reached {
		c := cannotJudge(CheckReadyEndpoints, fmt.Sprintf("never %s", plural(minReady, "ready endpoint", "ready endpoints")),
			"the app never reached the required ready endpoints: check the pods' readiness probes, "+
				"events and logs (see the pods listed)", count("max_ready", peak))
		for _, p := range a.pods {
			if !p.FirstReady().Known {
				c.Diagnosis.Evidence = append(c.Diagnosis.Evidence, Evidence{
					Text: fmt.Sprintf("pod %s (node %s) was never Ready", p.Pod, orDash(p.Node)),
					Pod:  p.Pod, Node: p.Node, At: p.FirstSeen, Until: p.FirstSeen,
				})
			}
		}
		return c
	}
	gaps := a.ready.Below(minReady, from, max(end, from))
	lowest := a.lowestFrom(from, max(end, from))
	var longest, below, zero time.Duration
	var bad []timeline.Gap
	for _, g := range gaps {
		d := g.Duration()
		longest = max(longest, d)
		below += d
		zero += a.zeroWithin(g.Interval)
		if d > a.th.MaxReadyGap {
			bad = append(bad, g)
		}
	}
	c := Check{
		Name:   CheckReadyEndpoints,
		Passed: len(bad) == 0,
		Measured: []Figure{
			count("min_ready", lowest), count("required_ready", minReady), count("gaps", len(gaps)),
			seconds("longest_gap", longest), seconds("time_below_required", below), seconds("time_zero_ready", zero),
		},
	}
	if len(gaps) == 0 {
		c.Summary = fmt.Sprintf("always at least %s from %s on (lowest %d)",
			plural(minReady, "ready endpoint", "ready endpoints"), at(from), lowest)
		return c
	}
	c.Summary = fmt.Sprintf("%s below %d ready (longest %s, lowest %d), limit %s",
		plural(len(gaps), "gap", "gaps"), minReady, dur(longest), lowest, dur(a.th.MaxReadyGap))
	if c.Passed {
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
	}
	c.Diagnosis = d
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lowestFrom is the lowest count from an offset on.
func (a *analysis) lowestFrom(from, to time.Duration) int {
	low := a.ready.At(from)
	for _, st := range a.ready {
		if st.At > from && st.At < to {
			low = min(low, st.Ready)
		}
	}
	return low
}

// zeroWithin is how long the count was zero inside an interval.
func (a *analysis) zeroWithin(iv timeline.Interval) time.Duration {
	var total time.Duration
	for _, g := range a.ready.Below(1, iv.From, iv.To) {
		total += g.Duration()
	}
	return total
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
	var pods []string
	nodes := map[string]bool{}
	for k := range a.pods {
		p := &a.pods[k]
		for _, iv := range p.EndpointReadyIntervals {
			if iv.To >= descent-a.th.ClockSkew && iv.To <= g.From+a.th.ClockSkew {
				line := fmt.Sprintf("%s (node %s): endpoint not ready at %s", p.Pod, orDash(p.Node), at(iv.To))
				if p.DeletionRequested.Known {
					line += fmt.Sprintf(", deletion requested at %s", at(p.DeletionRequested.At))
				}
				pods = append(pods, line)
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
	out := []Evidence{{
		Text: fmt.Sprintf("from %s to %s (%s) %s", at(g.From), untilText(g.To), dur(g.Duration()), what),
		At:   g.From, Until: g.To, Count: g.Lowest,
	}}
	for _, p := range pods {
		out = append(out, Evidence{Text: "  " + p, At: g.From, Until: g.From})
	}
	for _, e := range a.s.Events {
		if !nodes[e.Node] || e.Offset > g.To {
			continue
		}
		switch e.Kind {
		case timeline.EvNodeCordoned, timeline.EvNodeDeleted, timeline.EvNodeNotReady:
			out = append(out, Evidence{Text: fmt.Sprintf("  node %s: %s at %s", e.Node, e.Kind, at(e.Offset)),
				Node: e.Node, At: e.Offset, Until: e.Offset, Count: 1})
		}
	}
	return out
}

func untilText(to time.Duration) string {
	if to == timeline.Forever {
		return "the end"
	}
	return at(to)
}

// ---- ready to serve ----

// PodStart is what a pod's start looked like to clients.
type PodStart struct {
	Pod, Node    string
	Ready        timeline.Mark // first Ready (pod condition or endpoint)
	FirstSuccess timeline.Mark // first successful answer at or after Ready
	// Delay is FirstSuccess - max(Ready, first request): how long it was
	// Ready before it served; meaningful when Judged.
	Delay  time.Duration
	Judged bool // false: too little traffic after Ready to tell
	Errors int  // failed requests attributed to it before FirstSuccess
}

// PodStarts describes every pod that became Ready, in order of first event,
// and names the pods that never did.
func PodStarts(s *timeline.Snapshot, th Thresholds) (starts []PodStart, neverReady []string) {
	return analyse(s, th).podStarts()
}

func (a *analysis) podStarts() (starts []PodStart, neverReady []string) {
	if len(a.s.Requests) == 0 {
		return nil, nil
	}
	firstTx := a.s.Requests[0].Offset
	for k := range a.pods {
		p := &a.pods[k]
		r := p.FirstReady()
		if !r.Known {
			neverReady = append(neverReady, p.Pod)
			continue
		}
		ps := PodStart{Pod: p.Pod, Node: p.Node, Ready: r}
		from := max(r.At, firstTx)
		// Without a success, it can only be judged on the time it was
		// routable while the load ran.
		limit := a.lastTx
		if p.DeletionRequested.Known {
			limit = min(limit, p.DeletionRequested.At)
		}
		if p.EndpointGone.Known && p.EndpointGone.At > from {
			limit = min(limit, p.EndpointGone.At)
		}
		if s, ok := a.firstSuccess(p.Pod, r.At-a.th.ClockSkew); ok {
			ps.FirstSuccess = timeline.Mark{At: s, Known: true}
			ps.Delay, ps.Judged = max(0, s-from), true
		} else if limit-from >= a.th.MaxReadyToServe {
			ps.Delay, ps.Judged = limit-from, true
		}
		until := timeline.Forever
		if ps.FirstSuccess.Known {
			until = ps.FirstSuccess.At
		}
		for j := range a.attrs {
			at := &a.attrs[j]
			rq := &a.s.Requests[at.Request]
			if rq.Offset >= r.At-a.th.ClockSkew && rq.Offset < until && at.Cause != CauseShutdown && slices.Contains(at.Pods, p.Pod) {
				ps.Errors++
			}
		}
		starts = append(starts, ps)
	}
	return starts, neverReady
}

const noAttributionFix = "no response named the pod that served it: make the app set the X-Pod-Name, " +
	"X-Node-Name and X-Pod-IP response headers from the downward API (fieldRef metadata.name, " +
	"spec.nodeName, status.podIP)"

func (a *analysis) readyToServeCheck() Check {
	if len(a.s.Requests) == 0 {
		return cannotJudge(CheckReadyToServe, "no requests", noRequestsFix)
	}
	if a.attributed == 0 {
		return cannotJudge(CheckReadyToServe, "no attributed responses", noAttributionFix)
	}
	starts, never := a.podStarts()
	var judged, slow int
	var worst time.Duration
	var delays []time.Duration
	d := &Diagnosis{Class: ClassNotReadyTraffic, Title: ClassNotReadyTraffic.Title(), Fix: fixReadiness}
	// A Ready pod that no request reached is not slow to serve: clients
	// with keep-alive connections stay on older pods until those close,
	// and a pod can only be judged on traffic it got. Such pods are shown
	// (idle figures, summary), not failed.
	var idle int
	var worstIdle time.Duration
	for _, ps := range starts {
		if !ps.Judged {
			continue
		}
		judged++
		delays = append(delays, ps.Delay)
		worst = max(worst, ps.Delay)
		if ps.Delay <= a.th.MaxReadyToServe {
			continue
		}
		if ps.Errors == 0 {
			idle++
			worstIdle = max(worstIdle, ps.Delay)
			continue
		}
		slow++
		ev := Evidence{Pod: ps.Pod, Node: ps.Node, At: ps.Ready.At, Count: ps.Errors}
		if ps.FirstSuccess.Known {
			ev.Until = ps.FirstSuccess.At
			ev.Text = fmt.Sprintf("%s (node %s) was Ready at %s but first served successfully at %s, %s later",
				ps.Pod, orDash(ps.Node), at(ps.Ready.At), at(ps.FirstSuccess.At), dur(ps.Delay))
		} else {
			ev.Until = ps.Ready.At + ps.Delay
			ev.Text = fmt.Sprintf("%s (node %s) was Ready at %s and never served successfully in the %s it was routable under load",
				ps.Pod, orDash(ps.Node), at(ps.Ready.At), dur(ps.Delay))
		}
		ev.Text += fmt.Sprintf("; meanwhile %s failed there", plural(ps.Errors, "request", "requests"))
		d.Evidence = append(d.Evidence, ev)
	}
	c := Check{
		Name:   CheckReadyToServe,
		Passed: slow == 0,
		Measured: []Figure{
			count("pods_judged", judged), count("pods_slow", slow), count("pods_never_ready", len(never)),
			seconds("max_ready_to_serve", worst), seconds("median_ready_to_serve", median(delays)),
			seconds("limit_ready_to_serve", a.th.MaxReadyToServe),
			count("pods_idle_after_ready", idle), seconds("max_idle_after_ready", worstIdle),
		},
	}
	c.Summary = fmt.Sprintf("%s judged, slowest served %s after Ready, limit %s", plural(judged, "pod", "pods"),
		dur(worst), dur(a.th.MaxReadyToServe))
	if len(never) > 0 {
		c.Summary += fmt.Sprintf("; %s never Ready (%s)", plural(len(never), "pod", "pods"), strings.Join(never, ", "))
	}
	if idle > 0 {
		c.Summary += fmt.Sprintf("; %s got no traffic for up to %s after Ready (not judged: clients' keep-alive "+
			"connections stay on older pods, or endpoint changes reach the load balancer late)", plural(idle, "pod", "pods"), dur(worstIdle))
	}
	if !c.Passed {
		c.Diagnosis = d
	}
	return c
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// ---- readiness ----

func (a *analysis) readinessCheck() Check {
	if len(a.s.Requests) == 0 {
		return cannotJudge(CheckReadiness, "no requests", noRequestsFix)
	}
	type podErr struct {
		lie, notReady, correlated int
		first, last               time.Duration
		by                        map[timeline.ErrorKind]int
	}
	per := map[string]*podErr{}
	var order []string
	var lie, notReady, correlated int
	for _, at := range a.attrs {
		if at.Cause != CauseReadinessLie && at.Cause != CauseNotReady {
			continue
		}
		r := &a.s.Requests[at.Request]
		switch {
		case at.Correlated:
			correlated++
		case at.Cause == CauseReadinessLie:
			lie++
		default:
			notReady++
		}
		for _, p := range at.Pods {
			pe := per[p]
			if pe == nil {
				pe = &podErr{first: r.Offset, by: map[timeline.ErrorKind]int{}}
				per[p] = pe
				order = append(order, p)
			}
			pe.last = r.Offset
			pe.by[r.Err]++
			switch {
			case at.Correlated:
				pe.correlated++
			case at.Cause == CauseReadinessLie:
				pe.lie++
			default:
				pe.notReady++
			}
		}
	}
	total := lie + notReady + correlated
	if total == 0 && a.attributed == 0 {
		return cannotJudge(CheckReadiness, "no attributed responses", noAttributionFix)
	}
	c := Check{
		Name:   CheckReadiness,
		Passed: total <= a.th.MaxNotReadyErrors,
		Measured: []Figure{
			count("failed_while_ready", lie), count("failed_while_not_ready", notReady),
			count("failed_correlated_new_pod", correlated), count("pods", len(per)),
			count("max_not_ready_errors", a.th.MaxNotReadyErrors),
		},
	}
	c.Summary = fmt.Sprintf("%s failed at pods that were starting or not ready (%d while Ready, %d while not Ready, "+
		"%d by correlation with a new pod), limit %d", plural(total, "request", "requests"), lie, notReady, correlated,
		a.th.MaxNotReadyErrors)
	if c.Passed {
		return c
	}
	d := &Diagnosis{Class: ClassNotReadyTraffic, Title: ClassNotReadyTraffic.Title(), Fix: fixReadiness}
	for _, pod := range order {
		pe := per[pod]
		p := a.byPod[pod]
		node, ready := "", "never Ready"
		if p != nil {
			node = p.Node
			if r := p.FirstReady(); r.Known {
				ready = "Ready at " + at(r.At)
			}
		}
		var parts []string
		if pe.lie > 0 {
			parts = append(parts, fmt.Sprintf("%d answered with an error while it was Ready: its readiness lied", pe.lie))
		}
		if pe.notReady > 0 {
			parts = append(parts, fmt.Sprintf("%d reached it while it was not Ready", pe.notReady))
		}
		if pe.correlated > 0 {
			parts = append(parts, fmt.Sprintf("%d connection failures right after its endpoint became ready, "+
				"before it served anything (attributed by correlation)", pe.correlated))
		}
		d.Evidence = append(d.Evidence, Evidence{
			Text: fmt.Sprintf("%s (node %s, %s): %d failed from %s to %s (%s): %s", pod, orDash(node), ready,
				pe.lie+pe.notReady+pe.correlated, at(pe.first), at(pe.last), kindList(pe.by), strings.Join(parts, "; ")),
			Pod: pod, Node: node, At: pe.first, Until: pe.last, Count: pe.lie + pe.notReady + pe.correlated,
			Correlated: pe.correlated > 0,
		})
	}
	c.Diagnosis = d
	return c
}

// ---- graceful shutdown ----

// PodShutdown is what a pod's deletion looked like to clients.
type PodShutdown struct {
	Pod, Node    string
	Deleted      time.Duration // deletion requested (SIGTERM, or the preStop hook, follows)
	EndpointGone timeline.Mark // the Service stopped routing to it
	Exited       timeline.Mark // its container exited
	ExitCode     *int
	ExitReason   string

	Errors     int // failed requests attributed to it from its deletion on
	Correlated int // of which attributed by correlation
	FirstError time.Duration
	LastError  time.Duration
	ErrorKinds map[timeline.ErrorKind]int

	// StoppedEarly: it exited, or started failing requests, more than the
	// clock-skew tolerance before its endpoint was gone.
	StoppedEarly bool
	StoppedAt    time.Duration // exit or first failure, whichever came first
}

// EndpointLag is the time from the deletion request to the endpoint's
// removal (0 when unknown).
func (p *PodShutdown) EndpointLag() time.Duration {
	if !p.EndpointGone.Known {
		return 0
	}
	return max(0, p.EndpointGone.At-p.Deleted)
}

// Shutdowns describes every pod whose deletion was requested, in order of
// deletion.
func Shutdowns(s *timeline.Snapshot, th Thresholds) []PodShutdown {
	return analyse(s, th).shutdowns()
}

func (a *analysis) shutdowns() []PodShutdown {
	if a.shutdownCache != nil {
		return *a.shutdownCache
	}
	var out []PodShutdown
	index := map[string]int{}
	for k := range a.pods {
		p := &a.pods[k]
		if !p.DeletionRequested.Known {
			continue
		}
		index[p.Pod] = len(out)
		out = append(out, PodShutdown{
			Pod: p.Pod, Node: p.Node, Deleted: p.DeletionRequested.At, EndpointGone: p.EndpointGone,
			Exited: p.Exited, ExitCode: p.ExitCode, ExitReason: p.ExitReason, ErrorKinds: map[timeline.ErrorKind]int{},
		})
	}
	for _, at := range a.attrs {
		if at.Cause != CauseShutdown {
			continue
		}
		r := &a.s.Requests[at.Request]
		for _, pod := range at.Pods {
			i, ok := index[pod]
			if !ok {
				// A pod that said it was terminating, with no deletion event.
				index[pod] = len(out)
				i = len(out)
				ps := PodShutdown{Pod: pod, Deleted: r.Offset, ErrorKinds: map[timeline.ErrorKind]int{}}
				if p := a.byPod[pod]; p != nil {
					ps.Node, ps.EndpointGone, ps.Exited, ps.ExitCode, ps.ExitReason = p.Node, p.EndpointGone, p.Exited, p.ExitCode, p.ExitReason
				}
				out = append(out, ps)
			}
			ps := &out[i]
			if ps.Errors == 0 {
				ps.FirstError = r.Offset
			}
			ps.Errors++
			ps.LastError = r.Offset
			ps.ErrorKinds[r.Err]++
			if at.Correlated {
				ps.Correlated++
			}
		}
	}
	for i := range out {
		ps := &out[i]
		stop, known := timeline.Forever, false
		if ps.Exited.Known {
			stop, known = ps.Exited.At, true
		}
		if ps.Errors > 0 {
			stop, known = min(stop, ps.FirstError), true
		}
		if known {
			ps.StoppedAt = stop
			ps.StoppedEarly = ps.EndpointGone.Known && stop < ps.EndpointGone.At-a.th.ClockSkew
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Deleted < out[j].Deleted })
	a.shutdownCache = &out
	return out
}

// shutdownClass decides between class 8 (the pod stopped before its
// endpoint was gone: a preStop wait fixes it) and class 7 (it failed
// requests after the Service had stopped routing to it, or no removal was
// seen: in-flight and kept-alive requests died with it).
func (a *analysis) shutdownClass() Class {
	for _, ps := range a.shutdowns() {
		if ps.Errors > 0 && ps.StoppedEarly {
			return ClassEndpointLag
		}
	}
	return ClassNoGracefulShutdown
}

// preStopFix computes the preStop wait from the worst measured lag between
// deletion and endpoint removal, plus PreStopMargin.
func (a *analysis) preStopFix() string {
	var worstLag time.Duration
	var worstPod string
	var head *PodShutdown
	sh := a.shutdowns()
	for i := range sh {
		ps := &sh[i]
		if lag := ps.EndpointLag(); lag > worstLag {
			worstLag, worstPod = lag, ps.Pod
		}
		if ps.Errors > 0 && ps.StoppedEarly && (head == nil || ps.EndpointGone.At-ps.StoppedAt > head.EndpointGone.At-head.StoppedAt) {
			head = ps
		}
	}
	wait := roundUp(worstLag+a.th.PreStopMargin, 100*time.Millisecond)
	secs := int(math.Ceil(wait.Seconds()))
	text := fmt.Sprintf("add a preStop wait of at least %s (lifecycle.preStop.sleep.seconds: %d, or an exec sleep) "+
		"and keep serving during it", dur(wait), secs)
	if head != nil {
		verb := "exited"
		if !head.Exited.Known || head.StoppedAt < head.Exited.At {
			verb = "stopped serving"
		}
		text += fmt.Sprintf(": endpoints were removed %s after deletion (SIGTERM) and the process %s after %s (%s)",
			dur(head.EndpointLag()), verb, dur(max(0, head.StoppedAt-head.Deleted)), head.Pod)
		if worstPod != head.Pod {
			text += fmt.Sprintf("; the slowest removal took %s (%s)", dur(worstLag), worstPod)
		}
	}
	text += fmt.Sprintf(". The wait covers the slowest removal plus %s for kube-proxy on every node and any load "+
		"balancer to catch up; keep terminationGracePeriodSeconds above the wait plus the time to finish "+
		"in-flight requests", dur(a.th.PreStopMargin))
	return text
}

func roundUp(d, unit time.Duration) time.Duration {
	if r := d % unit; r != 0 {
		return d + unit - r
	}
	return d
}

func (a *analysis) shutdownCheck() Check {
	if len(a.s.Requests) == 0 {
		return cannotJudge(CheckGracefulShutdown, "no requests", noRequestsFix)
	}
	sh := a.shutdowns()
	var errs, corr, exitedEarly int
	for _, at := range a.attrs {
		if at.Cause == CauseShutdown {
			errs++
			if at.Correlated {
				corr++
			}
		}
	}
	var maxLag, maxExit time.Duration
	for _, ps := range sh {
		maxLag = max(maxLag, ps.EndpointLag())
		if ps.Exited.Known {
			maxExit = max(maxExit, ps.Exited.At-ps.Deleted)
			if ps.EndpointGone.Known && ps.Exited.At < ps.EndpointGone.At-a.th.ClockSkew {
				exitedEarly++
			}
		}
	}
	c := Check{
		Name:   CheckGracefulShutdown,
		Passed: errs <= a.th.MaxShutdownErrors,
		Measured: []Figure{
			count("pods_deleted", len(sh)), count("failed_after_deletion", errs), count("failed_correlated", corr),
			seconds("max_deletion_to_endpoint_removed", maxLag), seconds("max_deletion_to_exit", maxExit),
			count("pods_exited_before_endpoint_removed", exitedEarly), count("max_shutdown_errors", a.th.MaxShutdownErrors),
		},
	}
	if len(sh) == 0 {
		c.Summary = "no pod was deleted: nothing to judge"
		return c
	}
	c.Summary = fmt.Sprintf("%s failed at %s being deleted (%d by correlation); endpoint removal took up to %s, exit up to %s; limit %d",
		plural(errs, "request", "requests"), plural(len(sh), "pod", "pods"), corr, dur(maxLag), dur(maxExit), a.th.MaxShutdownErrors)
	if c.Passed {
		if exitedEarly > 0 {
			c.Summary += fmt.Sprintf("; %s exited before its endpoint was removed, without a failure this time",
				plural(exitedEarly, "pod", "pods"))
		}
		return c
	}
	class := a.shutdownClass()
	d := &Diagnosis{Class: class, Title: class.Title()}
	if class == ClassEndpointLag {
		d.Fix = a.preStopFix()
	} else {
		d.Fix = fixShutdown
	}
	for _, ps := range sh {
		if ps.Errors == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s (node %s): deletion requested at %s", ps.Pod, orDash(ps.Node), at(ps.Deleted))
		if ps.Exited.Known {
			fmt.Fprintf(&b, ", exited at %s (%s after)", at(ps.Exited.At), dur(ps.Exited.At-ps.Deleted))
			if ps.ExitCode != nil {
				fmt.Fprintf(&b, " with code %d", *ps.ExitCode)
				if *ps.ExitCode == 137 {
					b.WriteString(" (SIGKILL: it did not exit within terminationGracePeriodSeconds, or was OOM-killed)")
				}
			}
		} else {
			b.WriteString(", exit not observed")
		}
		if ps.EndpointGone.Known {
			fmt.Fprintf(&b, ", endpoint removed at %s (%s after)", at(ps.EndpointGone.At), dur(ps.EndpointLag()))
		} else {
			b.WriteString(", endpoint removal not observed")
		}
		fmt.Fprintf(&b, "; %s failed from %s to %s (%s)", plural(ps.Errors, "request", "requests"),
			at(ps.FirstError), at(ps.LastError), kindList(ps.ErrorKinds))
		if ps.Correlated > 0 {
			fmt.Fprintf(&b, ", %d of them attributed by correlation (no response headers: sent while it was shutting down, between its deletion and the later of its exit and its endpoint removal)", ps.Correlated)
		}
		if ps.StoppedEarly {
			fmt.Fprintf(&b, "; it stopped serving %s before the Service stopped routing to it",
				dur(ps.EndpointGone.At-ps.StoppedAt))
		}
		d.Evidence = append(d.Evidence, Evidence{
			Text: b.String(), Pod: ps.Pod, Node: ps.Node, At: ps.FirstError, Until: ps.LastError,
			Count: ps.Errors, Correlated: ps.Correlated > 0,
		})
	}
	c.Diagnosis = d
	return c
}
