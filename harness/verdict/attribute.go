package verdict

import (
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Cause is what a failed request is attributed to.
type Cause uint8

// Causes of failed requests.
const (
	// CauseUnexplained: no pod lifecycle event explains the failure.
	CauseUnexplained Cause = iota
	// CauseClient: the load generator failed by itself (out of file
	// descriptors or ports). Never blamed on the application.
	CauseClient
	// CauseShutdown: the request went to a pod whose deletion had been
	// requested (classes 7 and 8).
	CauseShutdown
	// CauseNotServing: the request went to a pod that was Ready (or routed
	// to) but had not served successfully yet: its readiness lied or it has
	// no probe (class 9).
	CauseNotServing
	// CauseRestart: the request went to a pod around a restart of its
	// container, not a deletion (a crash, a failed liveness probe).
	CauseRestart
	// CauseAppError: a pod that had served and was not terminating answered
	// with an error.
	CauseAppError
	// CauseZeroReady: the Service had no ready endpoint (class 10).
	CauseZeroReady
	// CauseDNS: a name did not resolve, for the client or for the app's
	// call to its dependency (class 6).
	CauseDNS
	// CauseDownstream: the app's dependency failed for another reason
	// (connect, timeout) and the app passed the failure on.
	CauseDownstream
	// CauseNodeLost: the request went to a pod whose node had been powered
	// off, before Kubernetes took the pod out of the Service's endpoints.
	CauseNodeLost
)

var causeNames = [...]string{
	CauseUnexplained: "unexplained",
	CauseClient:      "the load generator's own failure",
	CauseShutdown:    "pod shutting down",
	CauseNotServing:  "pod Ready but not serving yet",
	CauseRestart:     "container restart",
	CauseAppError:    "app error at a serving pod",
	CauseZeroReady:   "no ready endpoint",
	CauseDNS:         "name resolution",
	CauseDownstream:  "the app's dependency failed",
	CauseNodeLost:    "pod on a lost node, not yet noticed",
}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "unknown"
}

// Attribution says why one failed request failed.
type Attribution struct {
	Request int // index into the snapshot's Requests
	Cause   Cause
	// Pods are the pods it is attributed to: the one it was routed to or
	// that named itself in the response, or, for a correlated failure, every
	// pod whose event window contains it, each carrying 1/len(Pods) of the
	// blame.
	Pods []*timeline.PodLifecycle
	// Correlated is true when the pods were found by timeline correlation
	// (the client did not route the request itself and the response named
	// nobody, e.g. a refused connection through the Service).
	Correlated bool
}

// Weight is the share of the failure each of its pods carries.
func (at *Attribution) Weight() float64 {
	if len(at.Pods) == 0 {
		return 0
	}
	return 1 / float64(len(at.Pods))
}

// Attribute explains every failed request of a snapshot (whose records must
// be sorted): which cause, which pods, and whether by route, headers or
// correlation. The result is in request order.
func Attribute(s *timeline.Snapshot, th Thresholds) []Attribution {
	return analyse(s, th).attrs
}

// deletedBy reports whether the pod's deletion was requested by the offset
// (within the tolerance: the deletion is seen late).
func (a *analysis) deletedBy(p *timeline.PodLifecycle, at time.Duration) bool {
	return p.DeletionRequested.Known && at >= p.DeletionRequested.At-a.tol
}

// answeredBeforeNotice reports whether the request is an error answer the
// pod's app gave (or, for a request no pod is named for, could have given)
// before its log says it learned of its shutdown.
func (a *analysis) answeredBeforeNotice(p *timeline.PodLifecycle, r *timeline.Request) bool {
	if r.Err != timeline.ErrHTTP5xx {
		return false
	}
	n := a.shutdownNotice(p)
	return n.Known && r.End() < n.At
}

// restartWindowAt reports whether the offset is around a container exit of
// the pod that was not its deletion: from a little before the exit until the
// pod is Ready again.
func (a *analysis) restartWindowAt(p *timeline.PodLifecycle, at time.Duration) bool {
	for _, x := range a.exits[p] {
		if p.DeletionRequested.Known && x >= p.DeletionRequested.At-a.tol {
			continue
		}
		end := timeline.Forever
		for _, iv := range p.ReadyIntervals {
			if iv.From > x {
				end = iv.From
				break
			}
		}
		if at >= x-a.tol-a.th.RetryWindow && at <= end+a.tol {
			return true
		}
	}
	return false
}

// gatewayNoEndpoint reports whether the gateway client answered a request
// itself for lack of a routable pod.
func gatewayNoEndpoint(r *timeline.Request) bool {
	return r.Client == timeline.ClientGateway && r.Via == timeline.ViaNone && r.Code == 503
}

func (a *analysis) attribute(i int) Attribution {
	r := &a.s.Requests[i]
	t := r.Offset
	out := Attribution{Request: i}
	p := a.podOf(r)
	if p != nil {
		out.Pods = []*timeline.PodLifecycle{p}
	}
	switch {
	case r.Err == timeline.ErrClient:
		out.Cause = CauseClient
		return out
	case r.Downstream == "dns" || r.Err == timeline.ErrDNS:
		out.Cause = CauseDNS
		return out
	case r.Downstream != "":
		out.Cause = CauseDownstream
		return out
	case gatewayNoEndpoint(r):
		out.Cause = CauseZeroReady
		return out
	}
	if p != nil {
		switch {
		case a.lostWindowContains(p, r, false):
			out.Cause = CauseNodeLost
		// A request that failed once the pod was being deleted, even if it
		// was sent just before (in flight at SIGTERM), is the shutdown's;
		// not an error the app answered before it learned of the shutdown
		// (during a preStop sleep it serves as before).
		case (r.Terminating || a.deletedBy(p, r.End()) && !a.answeredBeforeNotice(p, r)) && !a.neverServed(p):
			out.Cause = CauseShutdown
		case a.restartWindowAt(p, t):
			out.Cause = CauseRestart
		case !a.servedBetween(p, firstReadyOr(p, 0), t):
			// Since it became Ready, it had not served anyone yet.
			out.Cause = CauseNotServing
		default:
			out.Cause = CauseAppError
		}
		return out
	}
	return a.correlate(r, out)
}

// neverServed reports whether the pod is known to have served nobody:
// requests a client could attribute reached it and none succeeded. Its
// failures while it shut down are not the shutdown's: it failed before
// (a pod on a broken node, say). Where no client can attribute requests
// nothing is known, and shutdown keeps its blame.
func (a *analysis) neverServed(p *timeline.PodLifecycle) bool {
	return len(a.successes[p]) == 0 && len(a.reached[p]) > 0
}

func firstReadyOr(p *timeline.PodLifecycle, def time.Duration) time.Duration {
	if r := p.FirstReady(); r.Known {
		return r.At
	}
	return def
}

// correlatable reports whether a failure without a named pod can be blamed
// on a pod's lifecycle: connection failures, and 5xx answers, which without
// attribution headers may be the app's own (a pod warming up) or a proxy's.
func correlatable(r *timeline.Request) bool {
	return r.Err.IsConnection() || r.Err == timeline.ErrHTTP5xx
}

// correlate finds the pods whose lifecycle explains a failure the client
// cannot attribute: pods shutting down (from their deletion until the
// Service can no longer route to them), pods starting (from Ready until they
// served), pods restarting. The blame is split between the candidates.
func (a *analysis) correlate(r *timeline.Request, out Attribution) Attribution {
	t := r.Offset
	if !correlatable(r) {
		if a.lostAddressAnswer(r) {
			if lost := a.lostAt(r); len(lost) > 0 {
				out.Cause, out.Pods, out.Correlated = CauseNodeLost, lost, true
			}
		}
		return out
	}
	if a.hasEps && (a.ready.At(t) == 0 || a.ready.At(t+a.tol) == 0) && r.Err.IsConnection() {
		out.Cause = CauseZeroReady
		return out
	}
	if a.hasEps && r.Err == timeline.ErrRefused && a.zeroReadyWithin(t-a.th.ServiceRoutingLag-a.tol, t) {
		// kube-proxy rejects connections to a Service without endpoints,
		// and learns of new ones only at its next sync: a refusal just
		// after the Service had none is that, not the new pods' doing.
		out.Cause = CauseZeroReady
		return out
	}
	var lost, broken, stopping, starting, restarting []*timeline.PodLifecycle
	for k := range a.pods {
		p := &a.pods[k]
		if (r.Err.IsConnection() || a.lostAddressAnswer(r)) && a.lostWindowContains(p, r, true) {
			lost = append(lost, p)
			continue
		}
		if a.neverServed(p) && p.EndpointReadyAt(t) {
			broken = append(broken, p)
			continue
		}
		if from, to, ok := a.shutdownWindow(p); ok && r.End() >= from && t <= to && !a.answeredBeforeNotice(p, r) && !a.neverServed(p) {
			stopping = append(stopping, p)
			continue
		}
		if from, to, ok := a.startWindow(p); ok && t >= from && t <= to {
			starting = append(starting, p)
			continue
		}
		if a.restartWindowAt(p, t) {
			restarting = append(restarting, p)
		}
	}
	out.Correlated = true
	switch {
	case len(lost) > 0:
		out.Cause, out.Pods = CauseNodeLost, lost
	// An answered error while a Ready pod known to fail every request was
	// in the Service: that pod's, rather than a pod shutting down that had
	// served (a pod on a broken node, say, during an upgrade's drains).
	case len(broken) > 0 && !r.Err.IsConnection():
		out.Cause, out.Pods = CauseNotServing, broken
	case len(stopping) > 0 && (r.Err.IsConnection() || len(starting) == 0):
		out.Cause, out.Pods = CauseShutdown, stopping
	case len(starting) > 0:
		out.Cause, out.Pods = CauseNotServing, starting
	case len(restarting) > 0:
		out.Cause, out.Pods = CauseRestart, restarting
	default:
		out.Correlated = false
	}
	return out
}

// shutdownWindow is when an unattributed failure may be blamed on a deleted
// pod: from its deletion until the Service could no longer route to it (its
// endpoint gone or its process exited, whichever is later, plus kube-proxy's
// routing lag); open-ended while neither is known.
func (a *analysis) shutdownWindow(p *timeline.PodLifecycle) (from, to time.Duration, ok bool) {
	if !p.DeletionRequested.Known {
		return 0, 0, false
	}
	from = p.DeletionRequested.At - a.tol
	to = timeline.Forever
	if p.EndpointGone.Known || p.Exited.Known {
		to = 0
		if p.EndpointGone.Known {
			to = max(to, p.EndpointGone.At)
		}
		if p.Exited.Known {
			to = max(to, p.Exited.At)
		}
		to += a.th.ServiceRoutingLag + a.tol
	}
	return from, to, true
}

// startWindow is when an unattributed failure may be blamed on a new pod:
// from when it was first marked ready until it served its first success (at
// most MaxReadyToServe later). Pods ready before the load started are not
// new.
func (a *analysis) startWindow(p *timeline.PodLifecycle) (from, to time.Duration, ok bool) {
	r := p.FirstReady()
	if !r.Known || len(a.s.Requests) == 0 || r.At < a.s.Requests[0].Offset-a.tol {
		return 0, 0, false
	}
	to = r.At + a.th.MaxReadyToServe
	if s, ok := a.firstSuccessFrom(p, r.At-a.tol); ok && s < to {
		to = s
	}
	return r.At - a.tol, to + a.tol, true
}

// lostWindow is when a failure may be blamed on a pod whose node was
// powered off: from the power-off (a request in flight then dies with it)
// until the Service could no longer route to the pod (its endpoint gone,
// plus kube-proxy's routing lag); open-ended while it was not removed. A
// connection failure nobody is named for (through the Service) is blamed
// on it for StaleNATLifetime after that: the node's NAT entries of earlier
// attempts still send matching connections to the dead pod.
func (a *analysis) lostWindow(p *timeline.PodLifecycle, unnamed bool) (from, to time.Duration, ok bool) {
	at, ok := a.lost[p]
	if !ok {
		return 0, 0, false
	}
	to = timeline.Forever
	if gone, ok := a.endpointGoneAfter(p, at); ok {
		to = gone + a.th.ServiceRoutingLag + a.tol
		if unnamed {
			to = gone + max(a.th.StaleNATLifetime, a.th.ServiceRoutingLag) + a.tol
		}
	}
	return at - a.tol, to, true
}

// lostWindowContains reports whether the request ended (or was sent)
// within the pod's lost window.
func (a *analysis) lostWindowContains(p *timeline.PodLifecycle, r *timeline.Request, unnamed bool) bool {
	from, to, ok := a.lostWindow(p, unnamed)
	return ok && r.End() >= from && r.Offset <= to
}

// endpointGoneAfter is when the pod's endpoint stopped being ready at or
// after the offset.
func (a *analysis) endpointGoneAfter(p *timeline.PodLifecycle, at time.Duration) (time.Duration, bool) {
	for _, iv := range p.EndpointReadyIntervals {
		if iv.To >= at && iv.To != timeline.Forever {
			return iv.To, true
		}
	}
	return 0, false
}

// zeroReadyWithin reports whether the Service had no ready endpoint at some
// moment of [from, to].
func (a *analysis) zeroReadyWithin(from, to time.Duration) bool {
	if a.ready.At(from) == 0 {
		return true
	}
	for _, st := range a.ready {
		if st.At > from && st.At <= to && st.Ready == 0 {
			return true
		}
	}
	return false
}

// lostAddressAnswer reports whether a failed answer nobody is named for may
// have come from whatever took over a lost pod's address: a stale NAT entry
// sends the connection to the dead pod's address, and a pod of the node
// that replaced it may hold that address now and answer something else
// (CoreDNS's health port answered 404 for /).
func (a *analysis) lostAddressAnswer(r *timeline.Request) bool {
	return len(a.lost) > 0 && r.Via == timeline.ViaNone && (r.Err == timeline.ErrHTTP4xx || r.Err == timeline.ErrHTTP5xx)
}

// lostAt lists the lost pods whose window (for a request nobody is named
// for) contains the request.
func (a *analysis) lostAt(r *timeline.Request) []*timeline.PodLifecycle {
	var out []*timeline.PodLifecycle
	for _, p := range sortedPods(a.lost) {
		if a.lostWindowContains(p, r, true) {
			out = append(out, p)
		}
	}
	return out
}
