package verdict

import "time"

// Thresholds are the limits a rehearsal is judged against. Start from
// DefaultThresholds and change what your service needs; the zero value is
// not the defaults (it would, for example, judge no readiness gaps at all).
type Thresholds struct {
	// MaxErrorRate is the largest fraction of failed requests allowed, over
	// the whole run and in each phase. Default 0.001 (0.1 %): a 99.9 %
	// success objective, what most teams already promise for a day, applied
	// to the few minutes an upgrade takes. A service with a preStop wait,
	// graceful shutdown, honest readiness and a PodDisruptionBudget fails
	// no request in a rehearsal, so the allowance is for a stray timeout,
	// not for a design flaw.
	MaxErrorRate float64

	// PhaseMaxErrorRate overrides MaxErrorRate for named phases, e.g.
	// {"fault": 0.01} for a fault the service is not expected to mask.
	PhaseMaxErrorRate map[string]float64

	// MaxOutage is the longest run of time in which every request failed.
	// Default 1 s: below that, one client retry after a short backoff
	// bridges it and users do not see "the site is down"; at the rates the
	// harness uses it is also about where MaxErrorRate would trip.
	MaxOutage time.Duration

	// MinReadyEndpoints is how many ready endpoints the Service must keep at
	// every moment after it first had that many. Default 1: zero ready
	// endpoints means every request fails, whatever the client does.
	// Set it to the PodDisruptionBudget's minAvailable to check that.
	MinReadyEndpoints int

	// MaxReadyGap is how long the count may stay below MinReadyEndpoints.
	// Default 0: a gap of any length is a moment with nowhere (or too few
	// places) to send traffic, and a PodDisruptionBudget prevents it fully.
	MaxReadyGap time.Duration

	// MaxReadyToServe is the longest a pod may take from being marked Ready
	// to answering its first request successfully. Default 5 s: endpoint
	// changes reach kube-proxy on every node in about a second, twice that
	// leaves headroom; a pod that is Ready but fails or gets nothing for
	// longer is, to its users, not ready.
	MaxReadyToServe time.Duration

	// MaxNotReadyErrors is how many failed requests may be attributed to
	// pods that were not ready yet or whose readiness lied. Default 0:
	// readiness exists so that no request reaches a pod that cannot serve.
	MaxNotReadyErrors int

	// MaxShutdownErrors is how many failed requests may be attributed to
	// pods after their deletion was requested. Default 0: a pod with a
	// preStop wait and graceful shutdown loses none.
	MaxShutdownErrors int

	// ClockSkew is the tolerance when correlating a request with an event
	// window. Watch events and request results come from different sources:
	// events are stamped when the watch delivers them (after the API server,
	// after the kubelet, up to a few hundred ms late under load) and
	// requests when the load generator sends them. Default 250 ms: well
	// above watch latency on a healthy cluster, well below the seconds-long
	// windows being diagnosed. An error within ClockSkew of a pod's deletion
	// counts as a shutdown error; one further away does not.
	ClockSkew time.Duration

	// PreStopMargin is added to the worst measured delay between deletion
	// and endpoint removal when suggesting a preStop wait. Default 500 ms:
	// the measured removal is when the EndpointSlice changed; kube-proxy on
	// every node (and any ingress or mesh) applies it after that, and the
	// measurement itself is uncertain by ClockSkew.
	PreStopMargin time.Duration

	// RetryWindow is how soon after a failure a success must follow for the
	// failure to count as one a client retry would have absorbed. Default
	// 1 s: a single retry after a 100-500 ms backoff with a per-try timeout
	// lands in it.
	RetryWindow time.Duration

	// AllowEmptyPhases makes a phase in which no request was sent pass as
	// "not judged". Default false: a phase with no traffic measured nothing,
	// usually because the load stopped.
	AllowEmptyPhases bool
}

// DefaultThresholds returns the defaults documented on Thresholds.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MaxErrorRate:      0.001,
		MaxOutage:         time.Second,
		MinReadyEndpoints: 1,
		MaxReadyGap:       0,
		MaxReadyToServe:   5 * time.Second,
		MaxNotReadyErrors: 0,
		MaxShutdownErrors: 0,
		ClockSkew:         250 * time.Millisecond,
		PreStopMargin:     500 * time.Millisecond,
		RetryWindow:       time.Second,
	}
}

func (t *Thresholds) errorRateFor(phase string) float64 {
	if v, ok := t.PhaseMaxErrorRate[phase]; ok {
		return v
	}
	return t.MaxErrorRate
}
