package verdict

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// window is one scenario's judged span: its fault phase and the recovery
// after it.
type window struct {
	scenario        string // "" when the plan has one scenario
	fault, recovery timeline.Span
	hasRecovery     bool
}

func (w window) from() time.Duration { return w.fault.Start }

func (w window) to() time.Duration {
	if w.hasRecovery {
		return max(w.recovery.End, w.fault.End)
	}
	return w.fault.End
}

func (w window) contains(at time.Duration) bool { return at >= w.from() && at < w.to() }

// phaseOf names the phase kind an offset of the window is in.
func (w window) phaseOf(at time.Duration) string {
	if w.hasRecovery && w.recovery.Contains(at) {
		return timeline.PhaseRecovery
	}
	return timeline.PhaseFault
}

// analysis is everything the checks share, computed once per snapshot.
type analysis struct {
	s   *timeline.Snapshot
	th  Thresholds
	tol time.Duration // correlation tolerance: measured watch lag + margin, else ClockSkew

	pods    []timeline.PodLifecycle
	byName  map[string][]*timeline.PodLifecycle // by pod name, in order of first event
	ips     timeline.IPIndex
	ready   timeline.ReadySeries
	hasEps  bool // any endpoint event at all
	clients []timeline.ClientKind
	rates   map[timeline.ClientKind]int // target rates (from the timeline's metadata)

	routes   map[*timeline.PodLifecycle][]timeline.Interval // when the gateway routed to each pod
	appLogs  map[*timeline.PodLifecycle][]timeline.Event
	exits    map[*timeline.PodLifecycle][]time.Duration // every container exit seen
	gaps     []timeline.Interval                        // watch interruptions
	maxLag   time.Duration                              // largest measured watch lag
	lagKnown bool

	warmup, baseline   timeline.Span
	hasWarmup, hasBase bool
	windows            []window

	maxLatency time.Duration // the longest any request took

	drainRuns map[*window][]*drainRun // drains' memo

	// Successes per pod and client (by send offset, sorted), and the sends
	// (any outcome) attributed to each pod per client.
	successes map[*timeline.PodLifecycle][]time.Duration
	reached   map[*timeline.PodLifecycle]map[timeline.ClientKind][]time.Duration

	attrs []Attribution // one per failed request, in request order
	byReq map[int]int   // request index -> index into attrs

	shutdownCache map[*window][]PodShutdown

	// Memos of what several checks ask the same: whether a client's
	// failures followed the node image (error-rate and longest-outage),
	// and the cluster's DNS readiness over the run.
	imageMemo map[imageQuery]imageAnswer
	dnsSeries []dnsReadyAt
	dnsRead   bool

	// Nodes the harness powered off (NodeStopped), and the pods that died
	// with them: each pod's power-off offset.
	stops []timeline.Event
	lost  map[*timeline.PodLifecycle]time.Duration

	// emulated are the VM nodes under software emulation (their
	// NodeCgroup records say so), wherever the record stands.
	emulated map[string]bool
}

func analyse(s *timeline.Snapshot, th Thresholds) *analysis {
	a := &analysis{
		s: s, th: th,
		pods:      timeline.PodLifecycles(s.Events),
		ips:       timeline.NewIPIndex(s.Events),
		ready:     timeline.ReadyEndpoints(s.Events),
		byName:    map[string][]*timeline.PodLifecycle{},
		rates:     map[timeline.ClientKind]int{},
		routes:    map[*timeline.PodLifecycle][]timeline.Interval{},
		appLogs:   map[*timeline.PodLifecycle][]timeline.Event{},
		exits:     map[*timeline.PodLifecycle][]time.Duration{},
		successes: map[*timeline.PodLifecycle][]time.Duration{},
		reached:   map[*timeline.PodLifecycle]map[timeline.ClientKind][]time.Duration{},
		byReq:     map[int]int{},

		shutdownCache: map[*window][]PodShutdown{},
		lost:          map[*timeline.PodLifecycle]time.Duration{},
		emulated:      map[string]bool{},
	}
	for i := range a.pods {
		p := &a.pods[i]
		a.byName[p.Pod] = append(a.byName[p.Pod], p)
	}
	a.scanEvents()
	a.findLostPods()
	a.tol = th.ClockSkew
	if a.lagKnown {
		a.tol = a.maxLag + th.LagMargin
	}
	a.scanPhases()
	seen := map[timeline.ClientKind]bool{}
	for i := range s.Requests {
		r := &s.Requests[i]
		a.maxLatency = max(a.maxLatency, r.Latency)
		if !seen[r.Client] {
			seen[r.Client] = true
			a.clients = append(a.clients, r.Client)
		}
		if p := a.podOf(r); p != nil {
			m := a.reached[p]
			if m == nil {
				m = map[timeline.ClientKind][]time.Duration{}
				a.reached[p] = m
			}
			m[r.Client] = append(m[r.Client], r.Offset)
			if r.OK() {
				a.successes[p] = append(a.successes[p], r.Offset)
			}
		}
	}
	slices.Sort(a.clients)
	for _, c := range a.clients {
		if n, err := strconv.Atoi(s.Meta[RateMetaKey(c)]); err == nil && n > 0 {
			a.rates[c] = n
		}
	}
	for i := range s.Requests {
		if s.Requests[i].OK() {
			continue
		}
		a.byReq[i] = len(a.attrs)
		a.attrs = append(a.attrs, a.attribute(i))
	}
	return a
}

// RateMetaKey is the timeline metadata key holding a client's target rate
// in requests per second ("rate/gateway"); the load checks read it.
func RateMetaKey(c timeline.ClientKind) string { return "rate/" + c.String() }

func (a *analysis) scanEvents() {
	openRoute := map[*timeline.PodLifecycle]time.Duration{}
	var gapStart time.Duration
	inGap := 0
	for i := range a.s.Events {
		e := &a.s.Events[i]
		switch e.Kind {
		case timeline.EvEndpointAdded, timeline.EvEndpointRemoved, timeline.EvEndpointReady, timeline.EvEndpointNotReady:
			a.hasEps = true
		case timeline.EvRouteAdded:
			if p := a.podOfEvent(e); p != nil {
				if _, open := openRoute[p]; !open {
					openRoute[p] = e.Offset
				}
			}
		case timeline.EvRouteRemoved:
			if p := a.podOfEvent(e); p != nil {
				if from, open := openRoute[p]; open {
					a.routes[p] = append(a.routes[p], timeline.Interval{From: from, To: e.Offset})
					delete(openRoute, p)
				}
			}
		case timeline.EvAppLog:
			if p := a.podOfEvent(e); p != nil {
				a.appLogs[p] = append(a.appLogs[p], *e)
			}
		case timeline.EvContainerExited:
			if p := a.podOfEvent(e); p != nil {
				a.exits[p] = append(a.exits[p], e.Offset)
			}
		case timeline.EvNodeStopped:
			a.stops = append(a.stops, *e)
		case timeline.EvNodeCgroup:
			if e.Reason == "emulated" {
				a.emulated[e.Node] = true
			}
		case timeline.EvWatchLag:
			a.maxLag, a.lagKnown = max(a.maxLag, e.Value), true
		case timeline.EvWatchInterrupted:
			if inGap == 0 {
				gapStart = e.Offset
			}
			inGap++
		case timeline.EvWatchResumed:
			if inGap > 0 {
				inGap--
				if inGap == 0 {
					a.gaps = append(a.gaps, timeline.Interval{From: gapStart, To: e.Offset})
				}
			}
		}
	}
	for p, from := range openRoute {
		a.routes[p] = append(a.routes[p], timeline.Interval{From: from, To: timeline.Forever})
	}
	if inGap > 0 {
		a.gaps = append(a.gaps, timeline.Interval{From: gapStart, To: timeline.Forever})
	}
}

func (a *analysis) scanPhases() {
	type pair struct {
		fault, recovery *timeline.Span
	}
	byScenario := map[string]*pair{}
	var order []string
	phases := a.s.Phases()
	for i := range phases {
		p := &phases[i]
		kind, scenario := timeline.SplitPhase(p.Name)
		switch kind {
		case timeline.PhaseWarmup:
			if !a.hasWarmup {
				a.warmup, a.hasWarmup = *p, true
			}
		case timeline.PhaseBaseline:
			if !a.hasBase {
				a.baseline, a.hasBase = *p, true
			}
		case timeline.PhaseFault, timeline.PhaseRecovery:
			pr := byScenario[scenario]
			if pr == nil {
				pr = &pair{}
				byScenario[scenario] = pr
				order = append(order, scenario)
			}
			if kind == timeline.PhaseFault && pr.fault == nil {
				pr.fault = p
			} else if kind == timeline.PhaseRecovery && pr.recovery == nil {
				pr.recovery = p
			}
		}
	}
	for _, sc := range order {
		pr := byScenario[sc]
		if pr.fault == nil {
			continue
		}
		w := window{scenario: sc, fault: *pr.fault}
		if pr.recovery != nil {
			w.recovery, w.hasRecovery = *pr.recovery, true
		}
		a.windows = append(a.windows, w)
	}
	if len(a.windows) == 0 && !a.hasBase {
		// A timeline without phases is judged as one window: all of it. One
		// that has a baseline and no fault (a rehearsal stopped before its
		// scenario) has no window: only the baseline is judged.
		end := a.s.End()
		if n := len(a.s.Requests); n > 0 {
			end = max(end, a.s.Requests[n-1].Offset+1)
		}
		a.windows = []window{{fault: timeline.Span{Name: timeline.PhaseFault, Start: 0, End: end}}}
	}
}

// podAt is the pod of that name alive at an offset: the latest one first
// seen by then (a little later, within the tolerance: events are seen late),
// else the first one.
func (a *analysis) podAt(name string, at time.Duration) *timeline.PodLifecycle {
	ps := a.byName[name]
	if len(ps) == 0 {
		return nil
	}
	best := ps[0]
	for _, p := range ps {
		if p.FirstSeen <= at+a.tol {
			best = p
		}
	}
	return best
}

func (a *analysis) podOfEvent(e *timeline.Event) *timeline.PodLifecycle {
	if e.UID != "" {
		for _, p := range a.byName[e.Pod] {
			if p.UID == e.UID {
				return p
			}
		}
	}
	if e.Pod != "" {
		return a.podAt(e.Pod, e.Offset)
	}
	if e.IP != "" {
		if name := a.ips.Pod(e.IP, e.Offset); name != "" {
			return a.podAt(name, e.Offset)
		}
	}
	return nil
}

// podOf is the pod a request is attributed to (by its route or its
// response's headers), nil when unknown.
func (a *analysis) podOf(r *timeline.Request) *timeline.PodLifecycle {
	if r.Via == timeline.ViaNone && !r.Attributed() {
		return nil
	}
	if r.Pod != "" {
		return a.podAt(r.Pod, r.Offset)
	}
	if r.PodIP != "" {
		if name := a.ips.Pod(r.PodIP, r.Offset); name != "" {
			return a.podAt(name, r.Offset)
		}
	}
	return nil
}

// firstSuccessFrom is the pod's first success sent at or after from.
func (a *analysis) firstSuccessFrom(p *timeline.PodLifecycle, from time.Duration) (time.Duration, bool) {
	ok := a.successes[p]
	i := sort.Search(len(ok), func(i int) bool { return ok[i] >= from })
	if i == len(ok) {
		return 0, false
	}
	return ok[i], true
}

// lastSuccessBefore reports whether the pod served a success in [from, to).
func (a *analysis) servedBetween(p *timeline.PodLifecycle, from, to time.Duration) bool {
	s, ok := a.firstSuccessFrom(p, from)
	return ok && s < to
}

// routedAt reports whether the gateway routed to the pod at the offset.
func (a *analysis) routedAt(p *timeline.PodLifecycle, at time.Duration) bool {
	for _, iv := range a.routes[p] {
		if iv.Contains(at) {
			return true
		}
	}
	return false
}

// routeEnd is when the gateway last stopped routing to the pod.
func (a *analysis) routeEnd(p *timeline.PodLifecycle) timeline.Mark {
	rs := a.routes[p]
	if len(rs) == 0 || rs[len(rs)-1].To == timeline.Forever {
		return timeline.Mark{}
	}
	return timeline.Mark{At: rs[len(rs)-1].To, Known: true}
}

// appLog finds the first app log line with the message at or after from.
func (a *analysis) appLog(p *timeline.PodLifecycle, msg string, from time.Duration) (timeline.Event, bool) {
	for _, e := range a.appLogs[p] {
		if e.Name == msg && e.Offset >= from {
			return e, true
		}
	}
	return timeline.Event{}, false
}

// inGap reports whether the offset falls in a watch interruption.
func (a *analysis) inGap(from, to time.Duration) bool {
	for _, g := range a.gaps {
		if g.From < to && g.To > from {
			return true
		}
	}
	return false
}

// indexRange is the requests sent in [from, to).
func (a *analysis) indexRange(from, to time.Duration) (int, int) {
	rs := a.s.Requests
	lo := sort.Search(len(rs), func(i int) bool { return rs[i].Offset >= from })
	hi := sort.Search(len(rs), func(i int) bool { return rs[i].Offset >= to })
	return lo, max(lo, hi)
}

// windowEvents are the events of a scenario's window, up to the
// correlation tolerance after its end (a change the harness made reaches
// the watches that late). Events are sorted by offset.
func (a *analysis) windowEvents(w *window) []timeline.Event {
	evs := a.s.Events
	lo := sort.Search(len(evs), func(i int) bool { return evs[i].Offset >= w.from() })
	hi := sort.Search(len(evs), func(i int) bool { return evs[i].Offset > w.to()+a.tol })
	return evs[lo:max(lo, hi)]
}

// inFlightAt lists the indexes of a client's requests sent before at and
// still waiting for their answer at at: a request sent at the end of the
// baseline and broken by the fault's first eviction belongs to the fault.
func (a *analysis) inFlightAt(c timeline.ClientKind, at time.Duration) []int {
	lo, _ := a.indexRange(at-a.maxLatency, at)
	hi, _ := a.indexRange(at, at)
	var out []int
	for i := lo; i < hi; i++ {
		if r := &a.s.Requests[i]; r.Client == c && r.End() >= at {
			out = append(out, i)
		}
	}
	return out
}

// requestsOf lists the indexes of a client's requests sent in [from, to).
func (a *analysis) requestsOf(c timeline.ClientKind, from, to time.Duration) []int {
	lo, hi := a.indexRange(from, to)
	var out []int
	for i := lo; i < hi; i++ {
		if a.s.Requests[i].Client == c {
			out = append(out, i)
		}
	}
	return out
}

// sortedPods returns map keys in a stable order (by first event, then name).
func sortedPods[V any](m map[*timeline.PodLifecycle]V) []*timeline.PodLifecycle {
	out := make([]*timeline.PodLifecycle, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y *timeline.PodLifecycle) int {
		if c := cmp.Compare(x.FirstSeen, y.FirstSeen); c != 0 {
			return c
		}
		return cmp.Compare(x.Pod, y.Pod)
	})
	return out
}

// findLostPods marks the pods that were on a node when it was powered off
// and had not exited by then.
func (a *analysis) findLostPods() {
	for _, st := range a.stops {
		for i := range a.pods {
			p := &a.pods[i]
			if p.Node != st.Node || p.FirstSeen > st.Offset || p.Exited.Known && p.Exited.At < st.Offset {
				continue
			}
			if _, seen := a.lost[p]; !seen {
				a.lost[p] = st.Offset
			}
		}
	}
}
