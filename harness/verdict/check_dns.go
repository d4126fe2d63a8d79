package verdict

import (
	"fmt"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// dnsCheck judges a rehearsal that broke name resolution (a DNS scenario's
// window): how many requests failed while it was broken and afterwards,
// how many the app itself said were name-resolution failures (its
// X-Downstream-Error header), how long after the repair the last failure
// came, and whether the app's readiness showed the broken dependency.
//
// While resolution is broken is from the first change the scenario made
// (FaultInjected) to the last one undone (FaultReverted), or the window's
// end. An app that does not say why it failed is judged by that
// correlation alone: its failures in that interval are the fault's.
func (a *analysis) dnsCheck(w *window) Check {
	broke, fixed, repaired := a.dnsBroken(w)
	if broke < 0 {
		return cannotJudge("", "no change was made in this window, so name resolution was never broken",
			"check the scenario's steps: the one that breaks resolution did not run")
	}

	var sent, failed, saidDNS, after int
	var lastFail time.Duration = -1
	for i := range a.s.Requests {
		r := &a.s.Requests[i]
		if !w.contains(r.Offset) || r.Err == timeline.ErrClient {
			continue
		}
		during := r.Offset >= broke && r.Offset < fixed
		if during {
			sent++
		}
		if r.OK() {
			continue
		}
		if during {
			failed++
		} else if r.Offset >= fixed {
			after++
		}
		if r.Downstream == "dns" || r.Err == timeline.ErrDNS {
			saidDNS++
		}
		if r.Offset >= broke {
			lastFail = max(lastFail, r.Offset)
		}
	}
	var recovery time.Duration
	if repaired && lastFail >= fixed {
		recovery = lastFail - fixed
	}
	notReady := a.podsNotReadyBetween(broke, fixed)
	rate := 0.0
	if sent > 0 {
		rate = float64(failed) / float64(sent)
	}
	c := Check{Measured: []Figure{
		count("requests_while_broken", sent), count("failed_while_broken", failed), ratio("error_rate_while_broken", rate),
		count("failed_after_repair", after), count("failed_said_dns", saidDNS),
		seconds("broken_for", fixed-broke), seconds("recovery_after_repair", recovery), count("pods_not_ready_while_broken", notReady),
	}}
	if lowest, _, downTo, known := clusterDNSDuring(a.clusterDNSSeries(), broke, fixed); known {
		c.Measured = append(c.Measured, count("coredns_ready_lowest", lowest))
		// Recovery measured from CoreDNS serving again, where it was down:
		// the repair step ends only once it is, but a client's lookups
		// reach it through kube-proxy's next sync.
		if lowest == 0 && lastFail >= downTo {
			c.Measured = append(c.Measured, seconds("recovery_after_coredns_ready", lastFail-downTo))
		}
	}
	if sent == 0 {
		return cannotJudge("", fmt.Sprintf("no request was sent while name resolution was broken (%s to %s)", fmtAt(broke), fmtAt(fixed)),
			"keep the load running through the fault", c.Measured...)
	}
	limit := a.th.errorRateFor(timeline.PhaseFault)
	summary := fmt.Sprintf("%s of %d requests failed while name resolution was broken for %s", pct(rate), sent, dur(fixed-broke))
	if after > 0 {
		summary += fmt.Sprintf("; %d more after the repair, the last %s after it", after, dur(recovery))
	}
	summary += fmt.Sprintf(", limit %s", pct(limit))
	c.Summary = summary
	if rate <= limit && after == 0 {
		c.Status = Pass
		if failed == 0 {
			c.Summary = fmt.Sprintf("no request failed while name resolution was broken for %s", dur(fixed-broke))
		}
		return c
	}
	c.Status = Fail
	d := &Diagnosis{Class: ClassDNS, Title: ClassDNS.Title()}
	told := "the app did not say why (no X-Downstream-Error header): they are the fault's by their timing"
	if saidDNS > 0 {
		told = fmt.Sprintf("the app said a name did not resolve for %d of them", saidDNS)
	}
	d.Evidence = append(d.Evidence, Evidence{At: broke, Until: fixed, Count: failed, Text: fmt.Sprintf(
		"%d of %d requests failed from %s to %s, while name resolution was broken; %s", failed, sent, fmtAt(broke), fmtAt(fixed), told)})
	if after > 0 {
		d.Evidence = append(d.Evidence, Evidence{At: fixed, Until: lastFail, Count: after, Text: fmt.Sprintf(
			"%d requests failed after the repair at %s, the last %s later: resolution came back for the app only then "+
				"(the repaired DNS server's endpoints reach the nodes' proxies late); a retry with backoff would have bridged it",
			after, fmtAt(fixed), dur(recovery))})
	}
	if ev, ok := a.clusterDNSEvidence(broke, fixed); ok {
		d.Evidence = append(d.Evidence, ev)
	}
	if notReady == 0 {
		d.Evidence = append(d.Evidence, Evidence{At: broke, Until: fixed, Text: "no pod went NotReady meanwhile: its readiness did not show the broken dependency (which is right for a shared dependency: taking every pod out would make it worse), so the app must absorb the failure itself"})
	} else {
		d.Evidence = append(d.Evidence, Evidence{At: broke, Until: fixed, Count: notReady, Text: fmt.Sprintf(
			"%s went NotReady meanwhile: readiness tied to a shared dependency takes capacity away when the dependency, not the pod, is broken", plural(notReady, "pod", "pods"))})
	}
	d.Fix = "resolve less and survive a failed lookup: cache resolved addresses and keep using them when a lookup fails (serve stale), retry a failed lookup with backoff, and keep connections to dependencies pooled; on the platform, run CoreDNS with at least 2 replicas and a PodDisruptionBudget, consider a node-local DNS cache, and check what a node image or a security rule does to DNS (the node's /etc/resolv.conf, port 53 UDP and TCP) before it reaches production"
	c.Diagnosis = d
	return c
}

// dnsBroken is when name resolution was broken in the window: from its
// first FaultInjected to its last FaultReverted (the window's end when
// nothing was reverted; repaired says which). broke is -1 when nothing was
// broken.
func (a *analysis) dnsBroken(w *window) (broke, fixed time.Duration, repaired bool) {
	broke, fixed = -1, -1
	for _, e := range a.windowEvents(w) {
		switch e.Kind {
		case timeline.EvFaultInjected:
			if broke < 0 {
				broke = e.Offset
			}
		case timeline.EvFaultReverted:
			if broke >= 0 {
				fixed = e.Offset
			}
		}
	}
	if broke < 0 {
		return -1, -1, false
	}
	if fixed < 0 {
		return broke, w.to(), false
	}
	return broke, fixed, true
}

// blameDNSByTiming attributes to name resolution the failures that nothing
// else explains and that came while resolution was broken: a request the
// client gave up on before the app could say why (its lookup hung), or an
// app that never says why. It runs when the dns check is asked for, that
// is when the rehearsal broke name resolution on purpose; the other checks
// then tell the same story as the dns check.
func (a *analysis) blameDNSByTiming() {
	for wi := range a.windows {
		w := &a.windows[wi]
		broke, fixed, _ := a.dnsBroken(w)
		if broke < 0 {
			continue
		}
		for k := range a.attrs {
			at := &a.attrs[k]
			r := &a.s.Requests[at.Request]
			if r.Offset < broke || r.Offset >= fixed || !w.contains(r.Offset) {
				continue
			}
			if at.Cause == CauseAppError || at.Cause == CauseUnexplained {
				at.Cause = CauseDNS
			}
		}
	}
}

// podsNotReadyBetween counts the app's pods whose Ready condition went
// false in [from, to) while they were not being deleted.
func (a *analysis) podsNotReadyBetween(from, to time.Duration) int {
	n := 0
	for i := range a.pods {
		p := &a.pods[i]
		for _, iv := range p.ReadyIntervals {
			end := iv.To
			if end >= from && end < to && (!p.DeletionRequested.Known || p.DeletionRequested.At > end) && (!p.Exited.Known || p.Exited.At > end) {
				n++
				break
			}
		}
	}
	return n
}
