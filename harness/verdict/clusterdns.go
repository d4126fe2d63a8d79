package verdict

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// dnsReadyAt is one reading of the cluster's DNS: from at on, ready of its
// endpoints were ready.
type dnsReadyAt struct {
	at    time.Duration
	ready int
}

// clusterDNSSeries reads the cluster's DNS readiness off the timeline (the
// observer's ClusterDNS events) once, in order; empty when it was not
// watched.
func (a *analysis) clusterDNSSeries() []dnsReadyAt {
	if a.dnsRead {
		return a.dnsSeries
	}
	a.dnsRead = true
	for i := range a.s.Events {
		e := &a.s.Events[i]
		if e.Kind != timeline.EvClusterDNS {
			continue
		}
		if n, err := strconv.Atoi(e.Name); err == nil {
			a.dnsSeries = append(a.dnsSeries, dnsReadyAt{at: e.Offset, ready: n})
		}
	}
	return a.dnsSeries
}

// clusterDNSDuring describes the cluster's DNS over [from, to): the fewest
// ready endpoints, and the first span with none. known is false when the
// DNS was not watched or nothing is known of it by from.
func clusterDNSDuring(series []dnsReadyAt, from, to time.Duration) (lowest int, downFrom, downTo time.Duration, known bool) {
	lowest, downFrom, downTo = -1, -1, -1
	cur := -1
	for _, r := range series {
		if r.at > from {
			break
		}
		cur = r.ready
	}
	if cur < 0 {
		return -1, -1, -1, false
	}
	note := func(at time.Duration, n int) {
		if lowest < 0 || n < lowest {
			lowest = n
		}
		switch {
		case n == 0 && downFrom < 0:
			downFrom = at
		case n > 0 && downFrom >= 0 && downTo < 0:
			downTo = at
		}
	}
	note(from, cur)
	for _, r := range series {
		if r.at > from && r.at < to {
			note(r.at, r.ready)
		}
	}
	if downFrom >= 0 && downTo < 0 {
		downTo = to
	}
	return lowest, downFrom, downTo, true
}

// clusterDNSEvidence says what the cluster's DNS did while names failed to
// resolve in [from, to): down (no ready endpoint), or up throughout, which
// points away from CoreDNS to the resolver the failing pods used.
func (a *analysis) clusterDNSEvidence(from, to time.Duration) (Evidence, bool) {
	lowest, downFrom, downTo, known := clusterDNSDuring(a.clusterDNSSeries(), from, to)
	if !known {
		return Evidence{}, false
	}
	if lowest == 0 {
		return Evidence{At: downFrom, Until: downTo, Text: fmt.Sprintf(
			"the cluster's DNS (CoreDNS, kube-system/kube-dns) had no ready endpoint from %s to %s", fmtAt(downFrom), fmtAt(downTo))}, true
	}
	return Evidence{At: from, Until: to, Text: fmt.Sprintf(
		"the cluster's DNS (CoreDNS, kube-system/kube-dns) kept at least %s meanwhile: it was up, so the lookups failed on the way "+
			"to it or at another resolver (a node's resolver file, for pods with dnsPolicy Default; dropped packets; a wrong answer)",
		plural(lowest, "ready endpoint", "ready endpoints"))}, true
}
