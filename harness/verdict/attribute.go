package verdict

import (
	"slices"
	"sort"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Cause is what a failed request is attributed to.
type Cause uint8

// Causes of failed requests.
const (
	// CauseUnexplained: no pod lifecycle event explains the failure.
	CauseUnexplained Cause = iota
	// CauseShutdown: the request went to a pod whose deletion had been
	// requested (classes 7 and 8).
	CauseShutdown
	// CauseNotReady: the request went to a pod that was not Ready, or
	// failed with a connection error right after a new pod's endpoint
	// became ready and before it had served anything (class 9).
	CauseNotReady
	// CauseReadinessLie: a pod answered with an error while it was Ready
	// and not terminating (class 9).
	CauseReadinessLie
	// CauseZeroReady: the Service had no ready endpoint (class 10).
	CauseZeroReady
	// CauseDNS: the name did not resolve (class 6).
	CauseDNS
)

var causeNames = [...]string{
	CauseUnexplained:  "unexplained",
	CauseShutdown:     "pod shutting down",
	CauseNotReady:     "pod not ready",
	CauseReadinessLie: "pod Ready but failing",
	CauseZeroReady:    "no ready endpoint",
	CauseDNS:          "name resolution",
}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "unknown"
}

// Class is the catalogue class a cause points to.
func (c Cause) Class() Class {
	switch c {
	case CauseShutdown:
		return ClassNoGracefulShutdown
	case CauseNotReady, CauseReadinessLie:
		return ClassNotReadyTraffic
	case CauseZeroReady:
		return ClassZeroReady
	case CauseDNS:
		return ClassDNS
	}
	return ClassNone
}

// Attribution says why one failed request failed.
type Attribution struct {
	Request int // index into the snapshot's Requests
	Cause   Cause
	// Pods are the pods it is attributed to: the one named by the
	// response's headers, or, for a correlated failure, every pod whose
	// event window contains it.
	Pods []string
	// Correlated is true when the pods were found by timeline correlation
	// (the response carried no attribution, e.g. a connection reset).
	Correlated bool
}

// analysis is everything the checks share, computed once per snapshot.
type analysis struct {
	s          *timeline.Snapshot
	th         Thresholds
	pods       []timeline.PodLifecycle
	byPod      map[string]*timeline.PodLifecycle
	ips        timeline.IPIndex
	ready      timeline.ReadySeries
	endpointEv bool // any endpoint event at all
	attributed int  // requests whose response named a pod
	// successes per pod (attributed by headers), sorted by offset
	successes map[string][]time.Duration
	// attribution per failed request, in request order, and its index by request
	attrs           []Attribution
	byReq           map[int]int
	firstTx, lastTx time.Duration // the first and last request's send offsets
	// send offsets of every success, sorted
	okTimes       []time.Duration
	shutdownCache *[]PodShutdown
}

func analyse(s *timeline.Snapshot, th Thresholds) *analysis {
	a := &analysis{
		s:         s,
		th:        th,
		pods:      timeline.PodLifecycles(s.Events),
		ips:       timeline.NewIPIndex(s.Events),
		ready:     timeline.ReadyEndpoints(s.Events),
		successes: map[string][]time.Duration{},
		byReq:     map[int]int{},
	}
	a.byPod = make(map[string]*timeline.PodLifecycle, len(a.pods))
	for i := range a.pods {
		a.byPod[a.pods[i].Pod] = &a.pods[i]
	}
	for i := range s.Events {
		if s.Events[i].Kind.IsEndpoint() {
			a.endpointEv = true
			break
		}
	}
	if n := len(s.Requests); n > 0 {
		a.firstTx, a.lastTx = s.Requests[0].Offset, s.Requests[n-1].Offset
	}
	for i := range s.Requests {
		r := &s.Requests[i]
		if r.OK() {
			a.okTimes = append(a.okTimes, r.Offset)
		}
		if !r.Attributed() {
			continue
		}
		a.attributed++
		if r.OK() {
			if pod := a.podOf(r); pod != "" {
				a.successes[pod] = append(a.successes[pod], r.Offset)
			}
		}
	}
	for i := range s.Requests {
		if s.Requests[i].OK() {
			continue
		}
		at := a.attribute(i)
		a.byReq[i] = len(a.attrs)
		a.attrs = append(a.attrs, at)
	}
	return a
}

// Attribute explains every failed request of a snapshot (whose records must
// be sorted): which cause, which pods, and whether by headers or by
// correlation. The result is in request order.
func Attribute(s *timeline.Snapshot, th Thresholds) []Attribution {
	return analyse(s, th).attrs
}

// podOf is the pod a response named, by name or else by IP.
func (a *analysis) podOf(r *timeline.Request) string {
	if r.Pod != "" {
		return r.Pod
	}
	if r.PodIP != "" {
		return a.ips.Pod(r.PodIP, r.Offset)
	}
	return ""
}

// firstSuccess returns the first success the pod served at or after from.
func (a *analysis) firstSuccess(pod string, from time.Duration) (time.Duration, bool) {
	ok := a.successes[pod]
	i := sort.Search(len(ok), func(i int) bool { return ok[i] >= from })
	if i == len(ok) {
		return 0, false
	}
	return ok[i], true
}

// shutdownWindow is when unattributed failures may be blamed on a deleted
// pod: from its deletion until both its endpoint was gone and it exited,
// widened by the clock-skew tolerance; open-ended while neither is known.
func (a *analysis) shutdownWindow(p *timeline.PodLifecycle) (from, to time.Duration, ok bool) {
	if !p.DeletionRequested.Known {
		return 0, 0, false
	}
	from = p.DeletionRequested.At - a.th.ClockSkew
	to = timeline.Forever
	if p.EndpointGone.Known || p.Exited.Known {
		to = 0
		if p.EndpointGone.Known {
			to = max(to, p.EndpointGone.At)
		}
		if p.Exited.Known {
			to = max(to, p.Exited.At)
		}
		to += a.th.ClockSkew
	}
	return from, to, true
}

// startWindow is when unattributed connection failures may be blamed on a
// new pod: from when it was first marked ready until it served its first
// success (at most MaxReadyToServe later), widened by the tolerance. Pods
// already ready when the load started are not new.
func (a *analysis) startWindow(p *timeline.PodLifecycle) (from, to time.Duration, ok bool) {
	r := p.FirstReady()
	if !r.Known || r.At < a.firstTx-a.th.ClockSkew {
		return 0, 0, false
	}
	to = r.At + a.th.MaxReadyToServe
	if s, ok := a.firstSuccess(p.Pod, r.At-a.th.ClockSkew); ok && s < to {
		to = s
	}
	return r.At - a.th.ClockSkew, to + a.th.ClockSkew, true
}

// correlatable reports whether an unattributed failure can be blamed on a
// pod's lifecycle: connection failures, and the 502/503/504 a gateway or
// proxy answers when its upstream pod vanished.
func correlatable(r *timeline.Request) bool {
	if r.Err.IsConnection() {
		return true
	}
	return r.Err == timeline.ErrHTTP5xx && (r.Code == 502 || r.Code == 503 || r.Code == 504)
}

func (a *analysis) attribute(i int) Attribution {
	r := &a.s.Requests[i]
	t := r.Offset
	tol := a.th.ClockSkew
	out := Attribution{Request: i}
	if pod := a.podOf(r); pod != "" {
		out.Pods = []string{pod}
		p := a.byPod[pod]
		switch {
		case r.Terminating || (p != nil && p.DeletionRequested.Known && t >= p.DeletionRequested.At-tol):
			out.Cause = CauseShutdown
		case p == nil:
			out.Cause = CauseUnexplained
		case p.ReadyAt(t) || p.EndpointReadyAt(t):
			out.Cause = CauseReadinessLie
		default:
			out.Cause = CauseNotReady
		}
		return out
	}
	if r.Err == timeline.ErrDNS {
		out.Cause = CauseDNS
		return out
	}
	if !correlatable(r) {
		return out
	}
	// Zero ready endpoints at the send time, or just after it (the watch
	// reports changes late, so the recorded state lags the real one).
	if a.endpointEv && (a.ready.At(t) == 0 || a.ready.At(t+tol) == 0) {
		out.Cause = CauseZeroReady
		return out
	}
	var stopping, starting []string
	for k := range a.pods {
		p := &a.pods[k]
		if from, to, ok := a.shutdownWindow(p); ok && t >= from && t <= to {
			stopping = append(stopping, p.Pod)
			continue
		}
		if from, to, ok := a.startWindow(p); ok && t >= from && t <= to {
			starting = append(starting, p.Pod)
		}
	}
	switch {
	case len(stopping) > 0:
		// A terminating pod and a starting one can both be in the window
		// during a rolling restart; the terminating one is the usual cause.
		out.Cause, out.Pods, out.Correlated = CauseShutdown, stopping, true
	case len(starting) > 0:
		out.Cause, out.Pods, out.Correlated = CauseNotReady, starting, true
	}
	return out
}

// causeTally counts failures by cause and, within a cause, by pod.
type causeTally struct {
	n          int
	byCause    map[Cause]int
	correlated map[Cause]int
}

func (a *analysis) tally(reqs []int) causeTally {
	t := causeTally{byCause: map[Cause]int{}, correlated: map[Cause]int{}}
	for _, i := range reqs {
		j, ok := a.byReq[i]
		if !ok {
			continue
		}
		at := &a.attrs[j]
		t.n++
		t.byCause[at.Cause]++
		if at.Correlated {
			t.correlated[at.Cause]++
		}
	}
	return t
}

// dominant is the cause with the most failures (ties: the more specific).
func (t causeTally) dominant() Cause {
	best, bestN := CauseUnexplained, -1
	for _, c := range []Cause{CauseZeroReady, CauseShutdown, CauseReadinessLie, CauseNotReady, CauseDNS, CauseUnexplained} {
		if n := t.byCause[c]; n > bestN {
			best, bestN = c, n
		}
	}
	return best
}

// sortedCauses lists the causes present, most failures first.
func (t causeTally) sortedCauses() []Cause {
	var cs []Cause
	for c, n := range t.byCause {
		if n > 0 {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(x, y Cause) int {
		if t.byCause[x] != t.byCause[y] {
			return t.byCause[y] - t.byCause[x]
		}
		return int(x) - int(y)
	})
	return cs
}
