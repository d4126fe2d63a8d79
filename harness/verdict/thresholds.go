package verdict

import "time"

// Thresholds are the limits a rehearsal is judged against. Start from
// DefaultThresholds and change what your service needs; the zero value is
// not the defaults (it would, for example, judge no readiness gaps at all).
type Thresholds struct {
	// MaxErrorRate is the largest fraction of failed requests allowed, per
	// client kind, over a scenario's window and in each of its phases.
	// Default 0.001 (0.1 %): a 99.9 % success objective, what most teams
	// already promise for a day, applied to the few minutes an upgrade
	// takes. A service with a preStop wait, graceful shutdown, honest
	// readiness and a PodDisruptionBudget fails no request in a rehearsal,
	// so the allowance is for a stray timeout, not for a design flaw.
	MaxErrorRate float64

	// PhaseMaxErrorRate overrides MaxErrorRate for named phases, e.g.
	// {"fault": 0.01} for a fault the service is not expected to mask.
	PhaseMaxErrorRate map[string]float64

	// MaxOutage is the longest stretch of time the service may be down for
	// a client. Time is cut into OutageBucket slices; a slice is down when
	// at least OutageFailRatio of the requests sent in it failed; an outage
	// is a run of down slices. Default 1 s: below that, one client retry
	// after a short backoff bridges it and users do not see "the site is
	// down".
	MaxOutage time.Duration
	// OutageBucket is the slice length (default 100 ms: 10 requests at
	// 100 rps, fine enough to measure a 1 s outage to a tenth).
	OutageBucket time.Duration
	// OutageFailRatio is the failed share that makes a slice down (default
	// 0.9: nearly every request failing). Some pods of several failing is
	// a partial failure, the error rate's matter: at 0.5 the check would
	// sit on the edge of exactly that case (two bad pods of four during a
	// rollout) and flip between runs with the rollout's timing.
	OutageFailRatio float64

	// MinReadyEndpoints is how many ready endpoints the Service must keep at
	// every moment after it first had that many. Default 1: zero ready
	// endpoints means every request fails, whatever the client does.
	// Set it to the PodDisruptionBudget's minAvailable to check that.
	MinReadyEndpoints int

	// MaxReadyGap is how long the count may stay below MinReadyEndpoints.
	// Default 0: a gap of any length is a moment with nowhere (or too few
	// places) to send traffic, and a PodDisruptionBudget prevents it fully.
	MaxReadyGap time.Duration

	// MaxReadyToServe is the longest a new pod may take from being marked
	// Ready to answering its first request successfully, once a client
	// reached it. Default 5 s.
	MaxReadyToServe time.Duration

	// MaxNotReadyErrors is how many failed requests may be attributed to
	// pods that were not ready yet or whose readiness lied. Default 0:
	// readiness exists so that no request reaches a pod that cannot serve.
	MaxNotReadyErrors int

	// MaxShutdownErrors is how many failed requests may be attributed to
	// pods after their deletion was requested. Default 0: a pod with a
	// preStop wait and graceful shutdown loses none.
	MaxShutdownErrors int

	// ClockSkew is the tolerance when correlating a request with an event,
	// used only when the rehearsal measured no watch lag (WatchLag events):
	// events are stamped when the watch delivers them, requests when they
	// are sent. When the lag was measured, the tolerance is the largest
	// measured lag plus LagMargin. Default 250 ms.
	ClockSkew time.Duration
	// LagMargin is added to the largest measured watch lag (default 50 ms).
	LagMargin time.Duration

	// ServiceRoutingLag is how long after a pod's endpoint was removed (or
	// its process exited) kube-proxy may still send it connections: its
	// iptables/nftables sync runs at most once per minSyncPeriod (1 s by
	// default) after the change. Failures of a client going through the
	// Service without attribution are correlated with a terminating pod up
	// to this long after. Default 2 s.
	ServiceRoutingLag time.Duration

	// PreStopFloor is the shortest preStop wait ever recommended, whatever
	// was measured: kube-proxy's default sync period (1 s) may not have
	// come round in a short rehearsal. Default 1 s.
	PreStopFloor time.Duration
	// PreStopMargin is added to the measured routing lag (or the floor)
	// when recommending a preStop wait. Default 2 s: load balancers and
	// gateways in production often lag more than in a rehearsal.
	PreStopMargin time.Duration

	// RetryWindow is how soon after a failure a success must follow for the
	// failure to count as one a client retry would have absorbed. Default
	// 1 s: a single retry after a 100-500 ms backoff with a per-try timeout
	// lands in it.
	RetryWindow time.Duration

	// MinAchievedRate is the share of the target request rate each client
	// must achieve in each phase (default 0.9); below it the load generator
	// was starved and the rehearsal cannot be judged.
	MinAchievedRate float64
	// MaxSendGap is the longest pause allowed between two sends of one
	// client (default 250 ms, or 20 request intervals if longer): a longer
	// pause is a blind spot, not a measurement.
	MaxSendGap time.Duration

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
		OutageBucket:      100 * time.Millisecond,
		OutageFailRatio:   0.9,
		MinReadyEndpoints: 1,
		MaxReadyGap:       0,
		MaxReadyToServe:   5 * time.Second,
		MaxNotReadyErrors: 0,
		MaxShutdownErrors: 0,
		ClockSkew:         250 * time.Millisecond,
		LagMargin:         50 * time.Millisecond,
		ServiceRoutingLag: 2 * time.Second,
		PreStopFloor:      time.Second,
		PreStopMargin:     2 * time.Second,
		RetryWindow:       time.Second,
		MinAchievedRate:   0.9,
		MaxSendGap:        250 * time.Millisecond,
	}
}

func (t *Thresholds) errorRateFor(phase string) float64 {
	if v, ok := t.PhaseMaxErrorRate[phase]; ok {
		return v
	}
	return t.MaxErrorRate
}
