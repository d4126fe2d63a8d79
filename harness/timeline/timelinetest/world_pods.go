package timelinetest

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Fixed parts of the model (see World).
const (
	sandboxDelay     = 500 * time.Millisecond // pod created -> sandbox up, IP assigned
	startDelay       = time.Second            // pod created -> the app's process runs and listens
	killMinimum      = 2 * time.Second        // the kubelet's shortest stop after a preStop hook
	failureThreshold = 2                      // readiness probe failures before NotReady (fixtures/appspec)
	sliceName        = "rehearsal-app-sim01"  // the Service's one EndpointSlice
	container        = "app"
)

// life is what happens to one pod in one Run: fixed by the pod's settings
// and the world's delays, except the graceful exit, which waits for the
// requests in flight and is known only after the requests were simulated.
type life struct {
	p   *SimPod
	app App

	ipAt, start     time.Duration
	del, term, kill time.Duration // deletion, SIGTERM, SIGKILL; Forever when not deleted
	// lostAt is when the pod's node was powered off under it (Forever when
	// never): from then on nothing answers and no kubelet acts for it.
	lostAt     time.Duration
	readyUntil time.Duration // lost: when the node controller marks it NotReady

	shutdownBegin time.Duration // graceful: readiness fails, keep-alives end
	listenClose   time.Duration // new connections are refused from here
	hardDeath     time.Duration // the process dies without finishing what is in flight (if still running)
	keepAliveEnd  time.Duration // pooled connections are closed by the server from here

	firstReady time.Duration // the Ready condition first true before the deletion; Forever if never
	// The endpoint is ready in the EndpointSlice during [sliceFrom, sliceTo)
	// (slice time: pod time + EndpointLag); empty when it never is.
	sliceFrom, sliceTo time.Duration

	// Filled by the request simulation.
	served int    // main-path requests past warm-up, for FailEvery
	spans  []span // every request the app accepted

	// Filled by finish.
	exit     time.Duration
	code     int
	killed   bool // SIGKILLed
	drained  time.Duration
	stopping bool // a graceful app closed its listener (and logged it)
}

// span is a request the app accepted on a connection.
type span struct {
	at, end time.Duration
	lost    bool // the process died while it was in flight; end is that moment
}

func (w *World) lives() []*life {
	out := make([]*life, len(w.pods))
	for i, p := range w.pods {
		out[i] = w.newLife(p)
	}
	return out
}

func (w *World) newLife(p *SimPod) *life {
	a := p.App
	l := &life{p: p, app: a, ipAt: p.created + sandboxDelay, start: p.created + startDelay, del: p.deleted,
		term: timeline.Forever, kill: timeline.Forever, exit: timeline.Forever, drained: timeline.Forever,
		lostAt: w.lostAt(p), readyUntil: timeline.Forever}
	if l.lostAt != timeline.Forever {
		// No kubelet is left to stop it; the client does not know the
		// machine is gone, so its pooled connections stay in use.
		l.readyUntil = l.lostAt + w.NodeGrace
		l.shutdownBegin, l.keepAliveEnd = timeline.Forever, timeline.Forever
		l.listenClose, l.hardDeath = l.lostAt, l.lostAt
		l.firstReady, l.sliceFrom, l.sliceTo = timeline.Forever, timeline.Forever, timeline.Forever
		if iv := w.readyIntervals(l, l.lostAt); len(iv) > 0 {
			l.firstReady = iv[0].From
			l.sliceFrom, l.sliceTo = l.firstReady+w.EndpointLag, sat(min(iv[0].To, l.del), w.EndpointLag)
		}
		return l
	}
	if l.del != timeline.Forever {
		// A deletion before the process started is taken to SIGTERM it as
		// soon as it runs.
		l.term = max(l.del+min(a.PreStop, a.Grace), l.start)
		l.kill = max(l.del+a.Grace, l.term+killMinimum)
	}
	switch a.Shutdown {
	case ShutdownGraceful, ShutdownNoDrain:
		l.shutdownBegin = l.term
		l.listenClose = min(sat(l.term, a.DrainDelay), l.kill)
		l.hardDeath = l.kill
		l.keepAliveEnd = l.term
	case ShutdownAbrupt:
		l.shutdownBegin = timeline.Forever
		l.listenClose, l.hardDeath, l.keepAliveEnd = l.term, l.term, l.term
	case ShutdownIgnore:
		l.shutdownBegin = timeline.Forever
		l.listenClose, l.hardDeath, l.keepAliveEnd = l.kill, l.kill, l.kill
	}
	// Before the deletion the process runs, so the hard death bounds the
	// probes well enough for the first Ready.
	l.firstReady, l.sliceFrom, l.sliceTo = timeline.Forever, timeline.Forever, timeline.Forever
	if iv := w.readyIntervals(l, l.hardDeath); len(iv) > 0 && iv[0].From < l.del {
		l.firstReady = iv[0].From
		// A terminating endpoint is never ready, whatever its pod's probe says.
		l.sliceFrom, l.sliceTo = l.firstReady+w.EndpointLag, sat(min(iv[0].To, l.del), w.EndpointLag)
	}
	return l
}

// firstReady is when a pod's Ready condition first turns true, if it is not
// deleted before; Forever if never.
func (w *World) firstReady(p *SimPod) time.Duration {
	return w.newLife(p).firstReady
}

// probeOK is what the readiness probe gets at t from a running process.
func (l *life) probeOK(t time.Duration) bool {
	if t < l.start || t >= l.listenClose {
		return false // nothing listens: the probe's connection is refused
	}
	if l.app.Readiness == ReadinessLying {
		return true
	}
	return t < l.shutdownBegin && t-l.start >= l.app.WarmUp
}

// readyIntervals is the pod's Ready condition over time, for a process that
// ends at exit (the container's exit makes the pod NotReady at once).
func (w *World) readyIntervals(l *life, exit time.Duration) []timeline.Interval {
	if l.lostAt != timeline.Forever && exit > l.lostAt {
		exit = l.lostAt
	}
	if exit <= l.start {
		return nil
	}
	if l.lostAt != timeline.Forever {
		// Probed until the machine died; what the kubelet last reported
		// stands until the node controller marks the pod NotReady.
		iv := w.probedIntervals(l, exit)
		if n := len(iv); n > 0 && iv[n-1].To >= l.lostAt {
			iv[n-1].To = l.readyUntil
		}
		return iv
	}
	return w.probedIntervals(l, exit)
}

// probedIntervals is the Ready condition as the readiness probe makes it,
// for a process that ends at exit.
func (w *World) probedIntervals(l *life, exit time.Duration) []timeline.Interval {
	if l.app.Readiness == ReadinessNone {
		return []timeline.Interval{{From: l.start, To: exit}}
	}
	period := w.ProbePeriod
	if period <= 0 {
		panic("timelinetest: World.ProbePeriod must be positive")
	}
	// After the last moment the probe's answer can change, the state is
	// settled within failureThreshold periods.
	last := l.start + l.app.WarmUp
	for _, t := range []time.Duration{l.shutdownBegin, l.listenClose, exit} {
		if t != timeline.Forever {
			last = max(last, t)
		}
	}
	last += (failureThreshold + 1) * period
	var out []timeline.Interval
	ready, fails := false, 0
	for t := l.start; t < exit && t <= last; t += period {
		if l.probeOK(t) {
			fails = 0
			if !ready {
				ready = true
				out = append(out, timeline.Interval{From: t, To: timeline.Forever})
			}
			continue
		}
		fails++
		if ready && fails >= failureThreshold {
			ready = false
			out[len(out)-1].To = t
		}
	}
	if ready {
		out[len(out)-1].To = exit
	}
	return out
}

// listening reports whether the app accepts a new connection at t.
func (l *life) listening(t time.Duration) bool { return t >= l.start && t < l.listenClose }

// inFlight counts the requests being served at t.
func (l *life) inFlight(t time.Duration) int {
	n := 0
	for _, s := range l.spans {
		if s.at <= t && t < s.end {
			n++
		}
	}
	return n
}

// finish works out the exit once the requests are known: a graceful app
// exits when the requests accepted before its listener closed are done.
func (l *life) finish() {
	if l.del == timeline.Forever || l.lostAt != timeline.Forever {
		return
	}
	switch l.app.Shutdown {
	case ShutdownAbrupt:
		l.exit, l.code = l.term, 143
	case ShutdownIgnore:
		l.exit, l.code, l.killed = l.kill, 137, true
	default:
		lost := false
		drained := l.listenClose
		for _, s := range l.spans {
			lost = lost || s.lost
			if s.at < l.listenClose {
				drained = max(drained, s.end)
			}
		}
		l.stopping = l.listenClose < l.kill
		if lost || !l.stopping {
			l.exit, l.code, l.killed = l.kill, 137, true
			return
		}
		l.exit, l.drained = drained, drained
	}
}

// stamp is an instant as the API server's one-second timestamps show it.
func stamp(at time.Duration) string {
	return Start.Add(at).UTC().Truncate(time.Second).Format(time.RFC3339)
}

// notReady is the observer's detail of a PodNotReady.
func notReady(at, deleted time.Duration) string {
	d := "Ready=False (ContainersNotReady: containers with unready status: [" + container + "]) since " + stamp(at)
	if at >= deleted {
		d += "; terminating"
	}
	return d + "; phase Running"
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s" }

// events is every event of the run, sorted: the phases, the observer's, the
// app's log lines and (when a gateway client runs) the gateway's routing.
func (w *World) events(lives []*life, gateway bool) []timeline.Event {
	var out, initPods, initEps, initRoutes []timeline.Event
	for _, ph := range w.phases {
		out = append(out,
			timeline.Event{Offset: ph.from, Kind: timeline.EvPhaseStart, Name: ph.name},
			timeline.Event{Offset: ph.to, Kind: timeline.EvPhaseEnd, Name: ph.name})
	}
	for _, l := range lives {
		pods, eps, rest := foldInitial(w.podEvents(l))
		initPods = append(initPods, pods...)
		initEps = append(initEps, eps...)
		out = append(out, rest...)
		if gateway {
			adds, changes := w.routeEvents(l)
			initRoutes = append(initRoutes, adds...)
			out = append(out, changes...)
		}
	}
	// The observer's initial lists arrive pods first, endpoints by address;
	// the gateway's initial state is applied in its order, by pod.
	slices.SortStableFunc(initEps, func(a, b timeline.Event) int { return cmp.Compare(a.IP, b.IP) })
	slices.SortStableFunc(initRoutes, func(a, b timeline.Event) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.IP, b.IP))
	})
	all := slices.Concat(initPods, initEps, initRoutes, out, w.nodeEvents())
	slices.SortStableFunc(all, func(a, b timeline.Event) int { return cmp.Compare(a.Offset, b.Offset) })
	return all
}

// podEvents is what the observer and the app's log say of one pod, in
// causal order within each instant (negative offsets included; see
// foldInitial).
func (w *World) podEvents(l *life) []timeline.Event {
	p, a := l.p, l.app
	type keyed struct {
		e    timeline.Event
		rank int // causal order among events at the same offset
	}
	var es []keyed
	obs := func(at time.Duration, rank int, kind timeline.EventKind, detail string) *timeline.Event {
		e := timeline.Event{Offset: at + w.WatchLag, Kind: kind, Pod: p.Name, UID: p.UID, Node: p.Node, Detail: detail}
		if at >= l.ipAt {
			e.IP = p.IP
		}
		es = append(es, keyed{e, rank})
		return &es[len(es)-1].e
	}
	logLine := func(at time.Duration, msg, detail string) {
		es = append(es, keyed{timeline.Event{Offset: at, Kind: timeline.EvAppLog, Pod: p.Name, UID: p.UID, Node: p.Node,
			Name: msg, Detail: detail}, 10})
	}

	obs(p.created, 0, timeline.EvPodScheduled, "bound to node "+p.Node+" at "+stamp(p.created))
	ready := w.readyIntervals(l, l.exit)
	for _, iv := range ready {
		obs(iv.From, 1, timeline.EvPodReady, "Ready since "+stamp(iv.From))
		if iv.To < l.exit {
			obs(iv.To, 3, timeline.EvPodNotReady, notReady(iv.To, l.del))
		}
	}
	if l.del != timeline.Forever {
		obs(l.del, 2, timeline.EvPodDeletionRequested, fmt.Sprintf("grace period %ds; deletionTimestamp %s",
			int(a.Grace.Seconds()), stamp(l.del+a.Grace)))
	}
	if l.exit != timeline.Forever {
		reason := "Completed"
		if l.code != 0 {
			reason = "Error"
		}
		code := l.code
		e := obs(l.exit, 4, timeline.EvContainerExited,
			fmt.Sprintf("container %s exited with code %d (%s) at %s", container, code, reason, stamp(l.exit)))
		e.ExitCode, e.Reason = &code, reason
		if n := len(ready); n > 0 && ready[n-1].To == l.exit {
			obs(l.exit, 5, timeline.EvPodNotReady, notReady(l.exit, l.del))
		}
		e = obs(l.exit, 6, timeline.EvNote, "pod deleted")
		e.Reason = "PodDeleted"
	}

	// The endpoint, as the EndpointSlice controller writes it EndpointLag
	// after each change.
	ep := func(podAt time.Duration, kind timeline.EventKind, ready, serving, terminating bool) {
		d := fmt.Sprintf("slice %s: ready=%t serving=%t terminating=%t", sliceName, ready, serving, terminating)
		if kind == timeline.EvEndpointRemoved {
			d = fmt.Sprintf("gone from every slice (last in %s, ready=%t terminating=%t)", sliceName, ready, terminating)
		}
		es = append(es, keyed{timeline.Event{Offset: podAt + w.EndpointLag + w.WatchLag, Kind: kind, Pod: p.Name,
			UID: p.UID, Node: p.Node, IP: p.IP, Detail: d}, 7})
	}
	servingAt := func(t time.Duration) bool {
		for _, iv := range ready {
			if iv.Contains(t) {
				return true
			}
		}
		return false
	}
	if l.ipAt < l.exit {
		wasReady := false
		if l.firstReady <= l.ipAt && l.ipAt < l.del {
			ep(l.ipAt, timeline.EvEndpointAdded, true, true, false)
			wasReady = true
		} else {
			ep(l.ipAt, timeline.EvEndpointNotReady, false, servingAt(l.ipAt), l.ipAt >= l.del)
		}
		if l.firstReady > l.ipAt && l.firstReady < l.del && l.firstReady < l.exit {
			ep(l.firstReady, timeline.EvEndpointReady, true, true, false)
			wasReady = true
		}
		if wasReady && l.lostAt != timeline.Forever && l.readyUntil < l.del {
			// The node controller marked the pod NotReady.
			ep(l.readyUntil, timeline.EvEndpointNotReady, false, false, false)
		}
		if wasReady && l.del != timeline.Forever && l.del <= l.exit {
			ep(l.del, timeline.EvEndpointNotReady, false, servingAt(l.del), true)
		}
		if l.exit != timeline.Forever {
			ep(l.exit, timeline.EvEndpointRemoved, false, false, l.exit >= l.del)
		}
	}

	// The app's log.
	mode := a.Shutdown
	if mode == ShutdownNoDrain {
		mode = ShutdownGraceful
	}
	logLine(l.start, contract.MsgStarted, fmt.Sprintf("addr=:%d pod=%s node=%s shutdown=%s readiness=%s warmup=%s latency=%s fail_every=%d attribution_headers=%t",
		appPort, p.Name, p.Node, mode, a.Readiness, a.WarmUp, w.Latency, a.FailEvery, a.Headers))
	if warm := l.start + a.WarmUp; warm < l.shutdownBegin && warm < l.exit && warm < l.lostAt {
		logLine(warm, contract.MsgReady, "after="+a.WarmUp.Round(time.Millisecond).String())
	}
	if l.del != timeline.Forever && l.lostAt == timeline.Forever {
		logLine(l.term, contract.MsgSIGTERM, fmt.Sprintf("signal=terminated mode=%s in_flight=%d", mode, l.inFlight(l.term)))
		switch a.Shutdown {
		case ShutdownAbrupt:
			logLine(l.term, contract.MsgExited, fmt.Sprintf("code=143 in_flight_lost=%d", l.inFlight(l.term)))
		case ShutdownIgnore:
			logLine(l.term, contract.MsgIgnoringSIGTERM, "")
		default:
			if l.stopping {
				logLine(l.listenClose, contract.MsgStoppedAccepting, fmt.Sprintf("in_flight=%d", l.inFlight(l.listenClose)))
			}
			if !l.killed {
				logLine(l.drained, contract.MsgDrained, "in_flight=0")
				logLine(l.exit, contract.MsgExited, "code=0")
			}
		}
	}
	slices.SortStableFunc(es, func(x, y keyed) int { return cmp.Or(cmp.Compare(x.e.Offset, y.e.Offset), cmp.Compare(x.rank, y.rank)) })
	out := make([]timeline.Event, len(es))
	for i := range es {
		out[i] = es[i].e
	}
	return out
}

// foldInitial turns what happened to a pod before the rehearsal started
// into what the observer records when its watches sync at offset 0: the
// state found then, each line marked "initial state; ". Log lines from before
// the start are dropped.
func foldInitial(es []timeline.Event) (pods, endpoints, rest []timeline.Event) {
	var (
		seen, scheduled, deleting, ready, gone bool
		base                                   timeline.Event
		exit                                   *timeline.Event
		epSeen, epReady                        bool
		epBase                                 timeline.Event
	)
	for i := range es {
		e := es[i]
		if e.Offset >= 0 {
			rest = append(rest, e)
			continue
		}
		switch e.Kind {
		case timeline.EvAppLog:
			continue
		case timeline.EvEndpointAdded, timeline.EvEndpointReady:
			epSeen, epReady, epBase = true, true, e
			continue
		case timeline.EvEndpointNotReady:
			epSeen, epReady, epBase = true, false, e
			continue
		case timeline.EvEndpointRemoved:
			epSeen = false
			continue
		}
		seen, base = true, e
		switch e.Kind {
		case timeline.EvPodScheduled:
			scheduled = true
		case timeline.EvPodReady:
			ready = true
		case timeline.EvPodNotReady:
			ready = false
		case timeline.EvPodDeletionRequested:
			deleting = true
		case timeline.EvContainerExited:
			exit = &es[i]
		case timeline.EvNote:
			gone = gone || e.Reason == "PodDeleted"
		}
	}
	initial := func(e timeline.Event, kind timeline.EventKind, detail string) timeline.Event {
		e.Offset, e.Kind, e.Detail, e.Reason, e.ExitCode = 0, kind, "initial state; "+detail, "", nil
		return e
	}
	if seen && !gone {
		if scheduled {
			pods = append(pods, initial(base, timeline.EvPodScheduled, "bound to node "+base.Node))
		}
		if deleting {
			pods = append(pods, initial(base, timeline.EvPodDeletionRequested, "deletion requested before the start"))
		}
		if exit != nil {
			e := initial(base, timeline.EvContainerExited, exit.Detail)
			e.ExitCode, e.Reason = exit.ExitCode, exit.Reason
			pods = append(pods, e)
		}
		if ready {
			pods = append(pods, initial(base, timeline.EvPodReady, "Ready before the start"))
		} else {
			pods = append(pods, initial(base, timeline.EvPodNotReady, "Ready=False"))
		}
	}
	if epSeen {
		kind := timeline.EvEndpointNotReady
		if epReady {
			kind = timeline.EvEndpointAdded
		}
		endpoints = append(endpoints, initial(epBase, kind, epBase.Detail))
	}
	return pods, endpoints, rest
}

// gatewayInterval is when the gateway routes to the pod: the slice's ready
// interval GatewayDelay later, except that the state at offset 0 applies at
// once (Router.Start). Empty (from == Forever) when never.
func (w *World) gatewayInterval(l *life) (from, to time.Duration) {
	switch {
	case l.sliceFrom == timeline.Forever || l.sliceTo <= 0:
		return timeline.Forever, timeline.Forever
	case l.sliceFrom <= 0:
		return 0, sat(l.sliceTo, w.GatewayDelay)
	}
	return l.sliceFrom + w.GatewayDelay, sat(l.sliceTo, w.GatewayDelay)
}

// proxyInterval is when kube-proxy routes new connections to the pod.
func (w *World) proxyInterval(l *life) (from, to time.Duration) {
	if l.sliceFrom == timeline.Forever {
		return timeline.Forever, timeline.Forever
	}
	return l.sliceFrom + w.ProxyLag, sat(l.sliceTo, w.ProxyLag)
}

// routeEvents is what the gateway records of one pod: its initial state
// (RouteAdded at 0), and each change it applied later.
func (w *World) routeEvents(l *life) (initial, changes []timeline.Event) {
	from, to := w.gatewayInterval(l)
	if from == timeline.Forever {
		return nil, nil
	}
	p := l.p
	ev := func(at time.Duration, kind timeline.EventKind, detail string) timeline.Event {
		return timeline.Event{Offset: at, Kind: kind, Client: timeline.ClientGateway, Pod: p.Name, UID: p.UID,
			Node: p.Node, IP: p.IP, Detail: "gateway: " + detail}
	}
	applied := func(seen time.Duration) string {
		return "endpoint change seen at " + seconds(seen) + ", applied after the gateway's " + w.GatewayDelay.String() + " sync delay"
	}
	if l.sliceFrom <= 0 {
		initial = append(initial, ev(0, timeline.EvRouteAdded, "initial state"))
	} else {
		changes = append(changes, ev(from, timeline.EvRouteAdded, applied(l.sliceFrom)))
	}
	if to != timeline.Forever {
		changes = append(changes, ev(to, timeline.EvRouteRemoved, applied(l.sliceTo)))
	}
	return initial, changes
}
