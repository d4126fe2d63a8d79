package verdict

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Lifecycle lines of the rehearsal app (fixtures/app/contract), as the
// observer puts them on the timeline. Other apps write none; the verdict
// uses them as extra evidence only.
const (
	logSIGTERM          = "sigterm received"
	logPreStop          = "prestop called"
	logStoppedAccepting = "stopped accepting"
	exitSIGKILL         = 137
	reasonOOMKilled     = "OOMKilled"
)

// PodShutdown is what a pod's deletion looked like to clients.
type PodShutdown struct {
	Pod, Node string
	Deleted   time.Duration // deletion requested: the preStop hook, then SIGTERM, follow

	SIGTERM          timeline.Mark // the app logged that SIGTERM (or its preStop) arrived
	StoppedAccepting timeline.Mark // the app logged that it closed its listener
	EndpointGone     timeline.Mark // the EndpointSlice stopped listing it as ready
	GatewayStopped   timeline.Mark // the gateway stopped routing to it
	Exited           timeline.Mark // its container exited
	ExitCode         *int
	ExitReason       string
	// Killed: exit code 137 without OOMKilled: the kubelet SIGKILLed it at
	// the end of terminationGracePeriodSeconds.
	Killed bool

	Errors     float64 // failed requests blamed on it after its deletion (correlated ones shared)
	Exact      int     // of which attributed exactly
	ByKind     map[timeline.ErrorKind]int
	FirstError time.Duration
	LastError  time.Duration
	// InFlightLost counts failures of requests the pod had received or was
	// about to answer (reset, EOF, timeout): it died with them (class 7).
	InFlightLost float64
	// StoppedWhileRouted counts failures of requests sent while clients
	// still routed to it but it no longer served (refused, a closed pooled
	// connection, an error answer): it stopped too early (class 8).
	StoppedWhileRouted float64

	// LastReached is, per client kind, the last request sent to the pod
	// after its deletion (routed to it, or answered by it): how long
	// clients kept sending to it. For a client that cannot name pods, the
	// last failure blamed on it alone.
	LastReached map[timeline.ClientKind]time.Duration
}

// RoutingLag is how long clients kept sending to the pod after its
// deletion: the longest over client kinds (0 when none did).
func (p *PodShutdown) RoutingLag() time.Duration {
	var lag time.Duration
	for _, at := range p.LastReached {
		lag = max(lag, at-p.Deleted)
	}
	return lag
}

// Shutdowns describes every pod whose deletion was requested in each
// scenario window, in order of deletion.
func Shutdowns(s *timeline.Snapshot, th Thresholds) []PodShutdown {
	a := analyse(s, th)
	var out []PodShutdown
	for i := range a.windows {
		out = append(out, a.shutdowns(&a.windows[i])...)
	}
	return out
}

func (a *analysis) shutdowns(w *window) []PodShutdown {
	if out, ok := a.shutdownCache[w]; ok {
		return out
	}
	var out []PodShutdown
	index := map[*timeline.PodLifecycle]int{}
	for k := range a.pods {
		p := &a.pods[k]
		if !p.DeletionRequested.Known || !w.contains(p.DeletionRequested.At) {
			continue
		}
		del := p.DeletionRequested.At
		ps := PodShutdown{Pod: p.Pod, Node: p.Node, Deleted: del, EndpointGone: p.EndpointGone, Exited: p.Exited,
			ExitCode: p.ExitCode, ExitReason: p.ExitReason, ByKind: map[timeline.ErrorKind]int{},
			LastReached: map[timeline.ClientKind]time.Duration{}}
		ps.Killed = p.ExitCode != nil && *p.ExitCode == exitSIGKILL && p.ExitReason != reasonOOMKilled
		ps.SIGTERM = a.shutdownNotice(p)
		early := del - a.tol - a.maxLag
		if e, ok := a.appLog(p, contract.MsgStoppedAccepting, early); ok {
			ps.StoppedAccepting = timeline.Mark{At: e.Offset, Known: true}
		}
		if e, ok := a.appLog(p, contract.MsgExited, early); ok && (!ps.Exited.Known || e.Offset < ps.Exited.At) {
			ps.Exited = timeline.Mark{At: e.Offset, Known: true}
		}
		if m := a.routeEnd(p); m.Known && m.At >= del-a.tol {
			ps.GatewayStopped = m
		}
		for c, sends := range a.reached[p] {
			for _, at := range sends {
				if at >= del {
					ps.LastReached[c] = max(ps.LastReached[c], at)
				}
			}
		}
		index[p] = len(out)
		out = append(out, ps)
	}
	for _, at := range a.attrs {
		if at.Cause != CauseShutdown {
			continue
		}
		r := &a.s.Requests[at.Request]
		wgt := at.Weight()
		for _, p := range at.Pods {
			i, ok := index[p]
			if !ok {
				continue
			}
			ps := &out[i]
			if ps.Errors == 0 {
				ps.FirstError = r.Offset
			}
			ps.Errors += wgt
			ps.LastError = max(ps.LastError, r.Offset)
			ps.ByKind[r.Err]++
			if !at.Correlated {
				ps.Exact++
			} else if len(at.Pods) == 1 && r.Offset >= ps.Deleted {
				ps.LastReached[r.Client] = max(ps.LastReached[r.Client], r.Offset)
			}
			if inFlight(r) {
				ps.InFlightLost += wgt
			} else {
				ps.StoppedWhileRouted += wgt
			}
		}
	}
	for i := range out {
		// A process that exited cleanly finished what it had accepted: its
		// resets were connections it never took (queued in the kernel when
		// it closed its listener, or a keep-alive closed as a request was
		// written), sent to it while it no longer served.
		if ps := &out[i]; ps.ExitCode != nil && *ps.ExitCode == 0 {
			ps.StoppedWhileRouted += ps.InFlightLost
			ps.InFlightLost = 0
		}
	}
	a.shutdownCache[w] = out
	return out
}

// shutdownNotice is when the pod's app learned of its shutdown, by its own
// log lines: its preStop hook called, else SIGTERM received (unknown for
// apps that do not write them). The app's clock is exact where the watch is
// late: its lines are looked for from well before the deletion was seen.
func (a *analysis) shutdownNotice(p *timeline.PodLifecycle) timeline.Mark {
	if !p.DeletionRequested.Known {
		return timeline.Mark{}
	}
	early := p.DeletionRequested.At - a.tol - a.maxLag
	for _, msg := range []string{contract.MsgPreStop, contract.MsgSIGTERM} {
		if e, ok := a.appLog(p, msg, early); ok {
			return timeline.Mark{At: e.Offset, Known: true}
		}
	}
	return timeline.Mark{}
}

// inFlight reports whether a failure lost a request the pod had been given:
// its connection was established (not a dial error) and then reset, closed
// without an answer, or never answered. A refused or unroutable connection,
// a pooled connection found closed, or an error answer are requests sent to
// a pod that no longer served.
func inFlight(r *timeline.Request) bool {
	switch r.Err {
	case timeline.ErrReset, timeline.ErrEOF, timeline.ErrTimeout:
		return !strings.Contains(r.ErrText, "dial tcp")
	}
	return false
}

// shutdownClass decides between class 7 (the process did not stop
// cleanly: it was SIGKILLed, died of the signal, or exited with an error,
// losing what it was doing) and class 8 (it stopped serving while clients
// still routed to it: a preStop wait fixes it).
//
// The exit code decides where it is known, not the kind of client error:
// an app that shuts down cleanly (http.Server.Shutdown, exit 0) but closes
// its listener while traffic still arrives makes clients see resets too
// (connections the kernel had queued for it, a keep-alive connection closed
// as a request was written on it), and a preStop wait removes them all.
// Only when the exit was not observed do the clients' in-flight losses
// decide.
func (a *analysis) shutdownClass(w *window) Class {
	for _, ps := range a.shutdowns(w) {
		if ps.notClean() {
			return ClassNoGracefulShutdown
		}
	}
	return ClassEndpointLag
}

// notClean reports whether the pod's process did not stop cleanly.
func (ps *PodShutdown) notClean() bool {
	switch {
	case ps.Killed:
		return true
	case ps.ExitCode != nil:
		return *ps.ExitCode != 0 && ps.ExitReason != reasonOOMKilled
	}
	return ps.InFlightLost >= 0.5
}

// preStopWait is the wait to recommend: the measured routing lag (the
// longest any client kept sending to a deleted pod), at least PreStopFloor,
// plus PreStopMargin, in whole seconds.
func (a *analysis) preStopWait(w *window) (wait, measured time.Duration, worst *PodShutdown) {
	sh := a.shutdowns(w)
	for i := range sh {
		if lag := sh[i].RoutingLag(); lag > measured {
			measured, worst = lag, &sh[i]
		}
	}
	wait = max(measured, a.th.PreStopFloor) + a.th.PreStopMargin
	return time.Duration(math.Ceil(wait.Seconds())) * time.Second, measured, worst
}

func (a *analysis) preStopFix(w *window) string {
	wait, measured, worst := a.preStopWait(w)
	secs := int(wait.Seconds())
	var b strings.Builder
	fmt.Fprintf(&b, "add a preStop wait of %d s to the container (spec.containers[].lifecycle.preStop.sleep.seconds: %d, "+
		"Kubernetes 1.30+; on older clusters an exec hook running `sleep %d`) and keep serving during it; keep "+
		"terminationGracePeriodSeconds above %d s plus the time your app needs to finish in-flight requests", secs, secs, secs, secs)
	if worst != nil {
		fmt.Fprintf(&b, ". Measured: clients kept sending to %s for %s after its deletion", worst.Pod, dur(measured))
		var parts []string
		for _, c := range timeline.ClientKinds() {
			if at, ok := worst.LastReached[c]; ok {
				parts = append(parts, fmt.Sprintf("%s %s", c, dur(at-worst.Deleted)))
			}
		}
		if len(parts) > 0 {
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		}
	}
	fmt.Fprintf(&b, "; the wait covers that (at least %s, kube-proxy's sync period) plus %s for load balancers and "+
		"gateways that lag more in production", dur(a.th.PreStopFloor), dur(a.th.PreStopMargin))
	return b.String()
}

// shutdownCheck judges the pods deleted in a scenario window: none may fail
// a request after its deletion, and each must exit within its grace period.
func (a *analysis) shutdownCheck(w *window) Check {
	sh := a.shutdowns(w)
	var errs, inflight, stopped float64
	var killed []string
	var maxExit time.Duration
	for _, ps := range sh {
		errs += ps.Errors
		inflight += ps.InFlightLost
		stopped += ps.StoppedWhileRouted
		if ps.Killed {
			killed = append(killed, ps.Pod)
		}
		if ps.Exited.Known {
			maxExit = max(maxExit, ps.Exited.At-ps.Deleted)
		}
	}
	_, lag, _ := a.preStopWait(w)
	c := Check{Measured: []Figure{
		count("pods_deleted", len(sh)), {Name: "failed_after_deletion", Value: errs, Unit: UnitCount},
		{Name: "in_flight_lost", Value: inflight, Unit: UnitCount}, {Name: "failed_while_routed", Value: stopped, Unit: UnitCount},
		count("pods_sigkilled", len(killed)), seconds("max_routing_lag", lag), seconds("max_deletion_to_exit", maxExit),
		count("max_shutdown_errors", a.th.MaxShutdownErrors)}}
	if len(sh) == 0 {
		c.Status = Pass
		c.Summary = "no pod was deleted: nothing to judge"
		return c
	}
	n := int(math.Round(errs))
	c.Status = passIf(errs <= float64(a.th.MaxShutdownErrors) && len(killed) == 0)
	c.Summary = fmt.Sprintf("%s failed at %s being deleted; clients kept sending for up to %s after deletion; exit up to %s after",
		plural(n, "request", "requests"), plural(len(sh), "pod", "pods"), dur(lag), dur(maxExit))
	if len(killed) > 0 {
		c.Summary += fmt.Sprintf("; %s SIGKILLed at the end of the grace period (%s)", plural(len(killed), "pod", "pods"), strings.Join(killed, ", "))
	}
	c.Summary += fmt.Sprintf("; limit %d", a.th.MaxShutdownErrors)
	if c.Status == Pass {
		return c
	}
	class := a.shutdownClass(w)
	d := &Diagnosis{Class: class, Title: class.Title()}
	if class == ClassEndpointLag {
		d.Fix = a.preStopFix(w)
	} else {
		d.Fix = fixShutdown
		if len(killed) > 0 {
			d.Fix = fixKilled + "; " + fixShutdown
		}
		if stopped > 0 {
			d.Fix += ". Then " + a.preStopFix(w)
		}
	}
	for _, ps := range sh {
		if ps.Errors == 0 && !ps.Killed {
			continue
		}
		d.Evidence = append(d.Evidence, a.shutdownEvidence(&ps))
	}
	c.Diagnosis = d
	return c
}

func (a *analysis) shutdownEvidence(ps *PodShutdown) Evidence {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (node %s): deletion requested at %s", ps.Pod, orDash(ps.Node), fmtAt(ps.Deleted))
	rel := func(m timeline.Mark) string {
		if d := m.At - ps.Deleted; d < 0 {
			// The app's own clock, against a deletion the watch saw late.
			return fmt.Sprintf("%s (%s before the deletion was seen)", fmtAt(m.At), dur(-d))
		}
		return fmt.Sprintf("%s (+%s)", fmtAt(m.At), dur(m.At-ps.Deleted))
	}
	if ps.SIGTERM.Known {
		b.WriteString(", SIGTERM at " + rel(ps.SIGTERM))
	}
	if ps.StoppedAccepting.Known {
		b.WriteString(", stopped accepting at " + rel(ps.StoppedAccepting))
	}
	if ps.EndpointGone.Known {
		b.WriteString(", endpoint not ready at " + rel(ps.EndpointGone))
	}
	if ps.GatewayStopped.Known {
		b.WriteString(", gateway stopped routing at " + rel(ps.GatewayStopped))
	}
	if ps.Exited.Known {
		b.WriteString(", exited at " + rel(ps.Exited))
		if ps.ExitCode != nil {
			fmt.Fprintf(&b, " with code %d", *ps.ExitCode)
			switch {
			case ps.Killed:
				b.WriteString(" (SIGKILL: it had not exited at the end of terminationGracePeriodSeconds)")
			case ps.ExitReason == reasonOOMKilled:
				b.WriteString(" (OOM-killed)")
			case *ps.ExitCode == 143:
				b.WriteString(" (terminated by SIGTERM itself: the app does not handle it; a JVM also exits 143 after its " +
					"shutdown hooks, in which case only the preStop wait is missing)")
			case *ps.ExitCode != 0:
				b.WriteString(" (it did not exit cleanly)")
			}
		}
	} else {
		b.WriteString(", exit not observed")
	}
	if ps.Errors > 0 {
		fmt.Fprintf(&b, "; %s failed from %s to %s (%s)", plural(int(math.Round(ps.Errors)), "request", "requests"),
			fmtAt(ps.FirstError), fmtAt(ps.LastError), kindList(ps.ByKind))
		if ps.InFlightLost >= 0.5 {
			fmt.Fprintf(&b, ": %s lost in flight (the process died with them)", trimFloat(ps.InFlightLost))
		}
		if ps.StoppedWhileRouted >= 0.5 {
			sep := ": "
			if ps.InFlightLost >= 0.5 {
				sep = "; "
			}
			fmt.Fprintf(&b, "%s%s sent while clients still routed to it but it no longer served", sep, trimFloat(ps.StoppedWhileRouted))
		}
		if c := int(math.Round(ps.Errors)) - ps.Exact; c > 0 {
			fmt.Fprintf(&b, " (%d by correlation, shared with other pods shutting down then)", c)
		}
	}
	return Evidence{Text: b.String(), Pod: ps.Pod, Node: ps.Node, At: ps.Deleted, Until: max(ps.LastError, ps.Deleted),
		Count: int(math.Round(ps.Errors)), Correlated: int(math.Round(ps.Errors)) > ps.Exact}
}
