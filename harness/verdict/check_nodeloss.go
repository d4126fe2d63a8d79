package verdict

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// tolerationNote names the notes a node-loss scenario writes with each of
// the lost node's pods' toleration of an unreachable node (Event.Value).
// It is scenarios/nodeloss.TolerationNote; the verdict reads the timeline
// only, so the name is repeated here rather than imported.
const tolerationNote = "unreachable-toleration"

// nodeLoss is one node powered off in a window and what followed.
type nodeLoss struct {
	node     string
	at       time.Duration
	notReady timeline.Mark
	pods     []*timeline.PodLifecycle // the app's pods that died with it
	before   int                      // ready endpoints just before the power-off
	// serving is the count of ready endpoints that could really serve
	// (the lost pods' left out) from the power-off on, at each change.
	serving timeline.ReadySeries
}

// nodeLosses finds the window's power-offs, in order.
func (a *analysis) nodeLosses(w *window) []nodeLoss {
	var out []nodeLoss
	for _, st := range a.stops {
		if !w.contains(st.Offset) {
			continue
		}
		l := nodeLoss{node: st.Node, at: st.Offset, before: a.ready.At(st.Offset)}
		for i := range a.s.Events {
			e := &a.s.Events[i]
			if e.Kind == timeline.EvNodeNotReady && e.Node == st.Node && e.Offset >= st.Offset {
				l.notReady = timeline.Mark{At: e.Offset, Known: true}
				break
			}
		}
		for _, p := range sortedPods(a.lost) {
			if a.lost[p] == st.Offset && p.Node == st.Node {
				l.pods = append(l.pods, p)
			}
		}
		l.serving = a.servingAfter(l, w.to())
		out = append(out, l)
	}
	return out
}

// servingAfter is the ready-endpoint count minus the lost pods still
// counted ready, from the power-off to the end of the window.
func (a *analysis) servingAfter(l nodeLoss, to time.Duration) timeline.ReadySeries {
	points := []time.Duration{l.at}
	for _, st := range a.ready {
		if st.At > l.at && st.At < to {
			points = append(points, st.At)
		}
	}
	for _, p := range l.pods {
		for _, iv := range p.EndpointReadyIntervals {
			for _, t := range []time.Duration{iv.From, iv.To} {
				if t > l.at && t < to {
					points = append(points, t)
				}
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return points[i] < points[j] })
	var out timeline.ReadySeries
	for _, t := range points {
		n := a.ready.At(t)
		for _, p := range l.pods {
			if p.EndpointReadyAt(t) {
				n--
			}
		}
		if k := len(out); k > 0 && out[k-1].Ready == n {
			continue
		}
		if k := len(out); k > 0 && out[k-1].At == t {
			out[k-1].Ready = n
			continue
		}
		out = append(out, timeline.Step{At: t, Ready: n})
	}
	return out
}

// nodeLossCheck judges what losing a node without a drain cost: whether
// the app kept serving from its other nodes, how fast the lost pods were
// replaced, and which failures the loss explains (requests to the lost
// pods before Kubernetes noticed, which no pod setting can save) and which
// it does not.
func (a *analysis) nodeLossCheck(w *window) Check {
	losses := a.nodeLosses(w)
	if len(losses) == 0 {
		return cannotJudge(CheckNodeLoss, "no node was powered off in the window",
			"the node-loss check judges a rehearsal that loses a node (scenario node-loss); "+
				"see the steps check for why the power-off did not happen")
	}
	var figs []Figure
	var details, summary []string
	var problems []Evidence
	zeroServing, slow := false, false
	var lostPods []*timeline.PodLifecycle
	worstRecovery := time.Duration(0)
	for _, l := range losses {
		lostPods = append(lostPods, l.pods...)
		line := fmt.Sprintf("node %s powered off at %s with %s", l.node, fmtAt(l.at), plural(len(l.pods), "of the app's pods", "of the app's pods"))
		if len(l.pods) == 0 {
			line = fmt.Sprintf("node %s powered off at %s with none of the app's pods left on it", l.node, fmtAt(l.at))
		}
		if l.notReady.Known {
			figs = append(figs, seconds("time_to_node_not_ready", l.notReady.At-l.at))
			line += fmt.Sprintf("; NotReady after %s", dur(l.notReady.At-l.at))
		}
		if gone, ok := a.lastGone(l); ok {
			figs = append(figs, seconds("time_to_endpoints_removed", gone-l.at))
			line += fmt.Sprintf(", out of the endpoints after %s", dur(gone-l.at))
		}
		if del, ok := a.lastDeleted(l); ok {
			figs = append(figs, seconds("time_to_pods_deleted", del-l.at))
			line += fmt.Sprintf(", deleted after %s", dur(del-l.at))
		}
		rec, recovered := recoveredAt(l, w.to())
		if recovered {
			figs = append(figs, seconds("time_to_serving_again", rec-l.at))
			line += fmt.Sprintf("; %d pods serving again after %s", l.before, dur(rec-l.at))
			worstRecovery = max(worstRecovery, rec-l.at)
		} else {
			worstRecovery = max(worstRecovery, w.to()-l.at)
			line += fmt.Sprintf("; still fewer than %d pods serving when the rehearsal ended, %s later", l.before, dur(w.to()-l.at))
		}
		details = append(details, line)
		for _, g := range l.serving.Below(1, l.at, w.to()) {
			if g.Duration() > a.th.MaxReadyGap {
				zeroServing = true
				problems = append(problems, Evidence{Node: l.node, At: g.From, Until: g.To, Text: fmt.Sprintf(
					"from %s to %s (%s) no pod could serve: %s of the app's %s ran on node %s",
					fmtAt(g.From), untilText(g.To), dur(g.Duration()), plural(len(l.pods), "pod", "pods"), plural(l.before, "ready pod", "ready pods"), l.node)})
			}
		}
		if !recovered || rec-l.at > a.th.MaxNodeLossRecovery {
			slow = true
			problems = append(problems, a.slowReplacementEvidence(l, rec, recovered, w.to()))
		}
	}
	figs = append(figs, count("lost_pods", len(lostPods)), seconds("time_below_before", worstRecovery),
		seconds("max_node_loss_recovery", a.th.MaxNodeLossRecovery))

	// Failures: those the loss explains, and the rest.
	var other []int
	otherRate := 0.0
	var stale []string
	for _, c := range a.clients {
		var n, lost, late, bad int
		for _, i := range append(a.inFlightAt(c, w.from()), a.requestsOf(c, w.from(), w.to())...) {
			r := &a.s.Requests[i]
			if r.Err == timeline.ErrClient {
				continue
			}
			n++
			if r.OK() {
				continue
			}
			if at := &a.attrs[a.byReq[i]]; at.Cause == CauseNodeLost {
				lost++
				if a.afterRemoval(at, r) {
					late++
				}
			} else {
				bad++
				other = append(other, i)
			}
		}
		figs = append(figs, count("lost_to_node_"+c.String(), lost), count("lost_after_removal_"+c.String(), late),
			count("other_failed_"+c.String(), bad))
		if n > 0 {
			otherRate = max(otherRate, float64(bad)/float64(n))
			if lost > late {
				summary = append(summary, fmt.Sprintf("%d %s requests", lost-late, c))
			}
			if late > 0 {
				stale = append(stale, fmt.Sprintf("%d %s requests", late, c))
			}
		}
	}
	figs = append(figs, ratio("other_error_rate", otherRate))
	c := Check{Measured: figs, Details: details}
	lostText := "no request was lost at the lost node's pods"
	if len(summary) > 0 {
		lostText = strings.Join(summary, " and ") + " to the lost node's pods failed before Kubernetes took them out of the endpoints " +
			"(no pod setting saves these; clients that retry on another endpoint, or gateways that eject failing ones, lose none)"
	}
	if len(stale) > 0 {
		lostText += "; " + strings.Join(stale, " and ") + " still reached them through the Service after that: the nodes' NAT kept " +
			"entries of the attempts to the dead pods (kube-proxy does not flush them for TCP) and sent new connections whose " +
			"ports matched one to the dead pods' addresses (or to whatever pod took an address over), for up to " + dur(a.th.StaleNATLifetime) + " (clients behind a source-NAT that reuses ports see the same)"
	}
	switch {
	case zeroServing:
		c.Status = Fail
		c.Summary = "no pod could serve after the node was lost; " + lostText
		c.Diagnosis = &Diagnosis{Class: ClassZeroReady, Title: "every ready replica ran on the lost node", Evidence: problems, Fix: fixSpread}
	case otherRate > a.th.MaxErrorRate:
		c.Status = Fail
		c.Summary = fmt.Sprintf("%s of requests failed for reasons the lost node does not explain (limit %s); %s", pct(otherRate), pct(a.th.MaxErrorRate), lostText)
		c.Diagnosis = a.diagnose(w, other, true)
	case slow:
		c.Status = Fail
		c.Summary = fmt.Sprintf("the app served from fewer pods than before for %s after the loss (limit %s); %s", dur(worstRecovery), dur(a.th.MaxNodeLossRecovery), lostText)
		c.Diagnosis = &Diagnosis{Class: ClassNone, Title: "the lost node's pods were replaced late", Evidence: problems, Fix: a.tolerationFix(lostPods)}
	default:
		c.Status = Pass
		c.Summary = fmt.Sprintf("the app kept serving from other nodes and had its pods back within %s; %s", dur(worstRecovery), lostText)
	}
	return c
}

// recoveredAt is when as many pods could serve as before the loss.
func recoveredAt(l nodeLoss, end time.Duration) (time.Duration, bool) {
	for _, st := range l.serving {
		if st.Ready >= l.before && st.At >= l.at {
			if st.At == l.at && len(l.pods) > 0 {
				continue // the first step, before any endpoint moved
			}
			return st.At, true
		}
	}
	if len(l.pods) == 0 {
		return l.at, true
	}
	return end, false
}

func (a *analysis) lastGone(l nodeLoss) (time.Duration, bool) {
	var last time.Duration
	for _, p := range l.pods {
		g, ok := a.endpointGoneAfter(p, l.at)
		if !ok {
			return 0, false
		}
		last = max(last, g)
	}
	return last, len(l.pods) > 0
}

func (a *analysis) lastDeleted(l nodeLoss) (time.Duration, bool) {
	var last time.Duration
	for _, p := range l.pods {
		if !p.DeletionRequested.Known || p.DeletionRequested.At < l.at {
			return 0, false
		}
		last = max(last, p.DeletionRequested.At)
	}
	return last, len(l.pods) > 0
}

// slowReplacementEvidence says what held the replacement back: the node
// controller's grace, then each pod's toleration of an unreachable node.
func (a *analysis) slowReplacementEvidence(l nodeLoss, rec time.Duration, recovered bool, end time.Duration) Evidence {
	text := fmt.Sprintf("node %s was lost at %s; ", l.node, fmtAt(l.at))
	if l.notReady.Known {
		text += fmt.Sprintf("Kubernetes marked it NotReady %s later; ", dur(l.notReady.At-l.at))
	}
	if del, ok := a.lastDeleted(l); ok {
		text += fmt.Sprintf("its pods were deleted (and replacements created) only %s after the loss", dur(del-l.at))
		if l.notReady.Known {
			text += fmt.Sprintf(", %s after it was NotReady: their toleration of node.kubernetes.io/unreachable", dur(del-l.notReady.At))
		}
	} else {
		text += "its pods had not been deleted, so no replacement was created"
	}
	if recovered {
		text += fmt.Sprintf("; back to %d serving pods at %s", l.before, fmtAt(rec))
	} else {
		text += fmt.Sprintf("; still fewer than %d serving pods at the end (%s)", l.before, fmtAt(end))
	}
	return Evidence{Node: l.node, At: l.at, Until: rec, Text: text}
}

// tolerationFix names the tolerations to shorten, with the values the
// pods had when their node was lost.
func (a *analysis) tolerationFix(lost []*timeline.PodLifecycle) string {
	had := time.Duration(0)
	known := false
	for i := range a.s.Events {
		e := &a.s.Events[i]
		if e.Kind == timeline.EvNote && e.Name == tolerationNote && (e.Value > had || e.Value < 0) {
			had, known = e.Value, true
		}
	}
	fix := "shorten the pods' tolerations of node.kubernetes.io/unreachable and node.kubernetes.io/not-ready " +
		"(tolerationSeconds: 30, effect NoExecute) so the pods of a lost node are replaced within a minute of it being noticed"
	switch {
	case known && had < 0:
		fix = "the pods tolerate an unreachable node for ever, so they are never replaced: " + fix
	case known:
		fix = fmt.Sprintf("the pods tolerated an unreachable node for %s%s: %s", dur(had), map[bool]string{true: " (Kubernetes' default)", false: ""}[had == 300*time.Second], fix)
	}
	return fix + "; the node controller's own wait (--node-monitor-grace-period, 50 s by default) is not settable on managed control planes such as AKS"
}

const fixSpread = "spread the replicas over nodes so one node's loss cannot take them all: " +
	"topologySpreadConstraints with maxSkew 1, topologyKey kubernetes.io/hostname and whenUnsatisfiable DoNotSchedule " +
	"(a ScheduleAnyway constraint, or none, lets the scheduler pack them onto one node), or a required podAntiAffinity on " +
	"kubernetes.io/hostname; across zones too (topology.kubernetes.io/zone) where the pool has them. A PodDisruptionBudget " +
	"does not help here: a node that dies asks nobody"

// afterRemoval reports whether a failure blamed on a lost pod came after
// the pod left the endpoints (and kube-proxy's routing lag): a connection
// through the Service that a stale NAT entry sent to the dead pod.
func (a *analysis) afterRemoval(at *Attribution, r *timeline.Request) bool {
	for _, p := range at.Pods {
		lostAt, ok := a.lost[p]
		if !ok {
			continue
		}
		gone, ok := a.endpointGoneAfter(p, lostAt)
		if !ok || r.Offset <= gone+a.th.ServiceRoutingLag+a.tol {
			return false
		}
	}
	return len(at.Pods) > 0
}
