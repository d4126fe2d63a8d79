package verdict

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
	MaxErrorRate float64 `json:"max_error_rate"`

	// PhaseMaxErrorRate overrides MaxErrorRate for named phases, e.g.
	// {"fault": 0.01} for a fault the service is not expected to mask.
	PhaseMaxErrorRate map[string]float64 `json:"phase_max_error_rate,omitempty"`

	// MaxOutage is the longest stretch of time the service may be down for
	// a client. Time is cut into OutageBucket slices; a slice is down when
	// at least OutageFailRatio of the requests sent in it failed; an outage
	// is a run of down slices. Default 1 s: below that, one client retry
	// after a short backoff bridges it and users do not see "the site is
	// down".
	MaxOutage time.Duration `json:"max_outage_ns"`
	// OutageBucket is the slice length (default 100 ms: 10 requests at
	// 100 rps, fine enough to measure a 1 s outage to a tenth).
	OutageBucket time.Duration `json:"outage_bucket_ns"`
	// OutageFailRatio is the failed share that makes a slice down (default
	// 0.9: nearly every request failing). Some pods of several failing is
	// a partial failure, the error rate's matter: at 0.5 the check would
	// sit on the edge of exactly that case (two bad pods of four during a
	// rollout) and flip between runs with the rollout's timing.
	OutageFailRatio float64 `json:"outage_fail_ratio"`

	// MinReadyEndpoints is how many ready endpoints the Service must keep at
	// every moment after it first had that many. Default 1: zero ready
	// endpoints means every request fails, whatever the client does.
	// Set it to the PodDisruptionBudget's minAvailable to check that.
	MinReadyEndpoints int `json:"min_ready_endpoints"`

	// MaxReadyGap is how long the count may stay below MinReadyEndpoints.
	// Default 0: a gap of any length is a moment with nowhere (or too few
	// places) to send traffic, and a PodDisruptionBudget prevents it fully.
	MaxReadyGap time.Duration `json:"max_ready_gap_ns"`

	// MaxReadyToServe is the longest a new pod may take from being marked
	// Ready to answering its first request successfully, once a client
	// reached it. Default 5 s.
	MaxReadyToServe time.Duration `json:"max_ready_to_serve_ns"`

	// MaxNotReadyErrors is how many failed requests may be attributed to
	// pods that were not ready yet or whose readiness lied. Default 0:
	// readiness exists so that no request reaches a pod that cannot serve.
	MaxNotReadyErrors int `json:"max_not_ready_errors"`

	// MaxShutdownErrors is how many failed requests may be attributed to
	// pods after their deletion was requested. Default 0: a pod with a
	// preStop wait and graceful shutdown loses none.
	MaxShutdownErrors int `json:"max_shutdown_errors"`

	// ClockSkew is the tolerance when correlating a request with an event,
	// used only when the rehearsal measured no watch lag (WatchLag events):
	// events are stamped when the watch delivers them, requests when they
	// are sent. When the lag was measured, the tolerance is the largest
	// measured lag plus LagMargin. Default 250 ms.
	ClockSkew time.Duration `json:"clock_skew_ns"`
	// LagMargin is added to the largest measured watch lag (default 50 ms).
	LagMargin time.Duration `json:"lag_margin_ns"`
	// MaxWatchLag is the largest watch lag a rehearsal can be judged with:
	// beyond it, this machine or the cluster was too busy for cluster
	// events and requests to be matched (the correlation tolerance would
	// span seconds), and the observation check says cannot judge. Default
	// 3 s (the most measured in healthy rehearsals here: 1.3 s, during a
	// Kubernetes upgrade's API server restart); 0: no limit.
	MaxWatchLag time.Duration `json:"max_watch_lag_ns"`

	// ServiceRoutingLag is how long after a pod's endpoint was removed (or
	// its process exited) kube-proxy may still send it connections: its
	// iptables/nftables sync runs at most once per minSyncPeriod (1 s by
	// default) after the change. Failures of a client going through the
	// Service without attribution are correlated with a terminating pod up
	// to this long after. Default 2 s.
	ServiceRoutingLag time.Duration `json:"service_routing_lag_ns"`

	// PreStopFloor is the shortest preStop wait ever recommended, whatever
	// was measured: kube-proxy's default sync period (1 s) may not have
	// come round in a short rehearsal. Default 1 s.
	PreStopFloor time.Duration `json:"prestop_floor_ns"`
	// PreStopMargin is added to the measured routing lag (or the floor)
	// when recommending a preStop wait. Default 2 s: load balancers and
	// gateways in production often lag more than in a rehearsal.
	PreStopMargin time.Duration `json:"prestop_margin_ns"`

	// RetryWindow is how soon after a failure a success must follow for the
	// failure to count as one a client retry would have absorbed. Default
	// 1 s: a single retry after a 100-500 ms backoff with a per-try timeout
	// lands in it.
	RetryWindow time.Duration `json:"retry_window_ns"`

	// MinAchievedRate is the share of the target request rate each client
	// must achieve in each phase (default 0.9); below it the load generator
	// was starved and the rehearsal cannot be judged.
	MinAchievedRate float64 `json:"min_achieved_rate"`
	// MaxSendGap is the longest pause allowed between two sends of one
	// client (default 250 ms, or 20 request intervals if longer): a longer
	// pause is a blind spot, not a measurement.
	MaxSendGap time.Duration `json:"max_send_gap_ns"`

	// MaxNodeLossRecovery is the longest the app may serve from fewer pods
	// than before a node was lost without a drain, from the loss until its
	// pods are replaced and serving. Default 3 min: Kubernetes notices a
	// silent node in about 50 s, and pods tolerating an unreachable node
	// for 30-60 s are replaced well within it; with the 300 s every pod
	// gets by default, the app runs short for six minutes.
	MaxNodeLossRecovery time.Duration `json:"max_node_loss_recovery_ns"`

	// StaleNATLifetime is how long after a lost pod left the endpoints a
	// connection through a node's Service rules may still be sent to it:
	// each connection attempt to the dead pod left a NAT entry (conntrack,
	// SYN_SENT, unanswered) that kube-proxy does not flush for TCP, and a
	// new connection whose addresses and ports match one (a client reusing
	// a source port) follows it to the dead pod until it expires. Default
	// 120 s, Linux's nf_conntrack_tcp_timeout_syn_sent. Connection failures
	// the client cannot name a pod for are blamed on the lost pods for this
	// long.
	StaleNATLifetime time.Duration `json:"stale_nat_lifetime_ns"`

	// MaxMemoryGrowth is how much the app's mean memory use per pod may
	// grow from before the fault to after the recovery (the cgroup check).
	// Default 0.5 (+50 %, and at least 32 MiB): a runtime that lost sight
	// of its limit on new nodes grows by multiples, not by percents.
	MaxMemoryGrowth float64 `json:"max_memory_growth"`

	// AllowEmptyPhases makes a phase in which no request was sent pass as
	// "not judged". Default false: a phase with no traffic measured nothing,
	// usually because the load stopped.
	AllowEmptyPhases bool `json:"allow_empty_phases"`
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
		MaxWatchLag:       3 * time.Second,
		ServiceRoutingLag: 2 * time.Second,
		PreStopFloor:      time.Second,
		PreStopMargin:     2 * time.Second,
		RetryWindow:       time.Second,
		MinAchievedRate:   0.9,
		MaxSendGap:        250 * time.Millisecond,

		MaxNodeLossRecovery: 3 * time.Minute,
		MaxMemoryGrowth:     0.5,
		StaleNATLifetime:    120 * time.Second,
	}
}

func (t *Thresholds) errorRateFor(phase string) float64 {
	if v, ok := t.PhaseMaxErrorRate[phase]; ok {
		return v
	}
	return t.MaxErrorRate
}

// Setting names a threshold as a flag or a config sets it: its JSON name
// without the unit suffix, with dashes ("max-outage" for max_outage_ns).
// Reflection over the JSON tags keeps the names and the saved form from
// ever disagreeing.
func thresholdFields() map[string]int {
	out := map[string]int{}
	rt := reflect.TypeOf(Thresholds{})
	for i := 0; i < rt.NumField(); i++ {
		tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out[strings.ReplaceAll(strings.TrimSuffix(tag, "_ns"), "_", "-")] = i
	}
	return out
}

// ThresholdNames lists the names Set accepts, sorted.
func ThresholdNames() []string {
	var out []string
	for n := range thresholdFields() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get prints a threshold's value in the form Set reads.
func (t Thresholds) Get(name string) (string, bool) {
	i, ok := thresholdFields()[name]
	if !ok {
		return "", false
	}
	switch v := reflect.ValueOf(t).Field(i).Interface().(type) {
	case time.Duration:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case map[string]float64:
		var kv []string
		for k, r := range v {
			kv = append(kv, k+":"+strconv.FormatFloat(r, 'g', -1, 64))
		}
		sort.Strings(kv)
		return strings.Join(kv, ","), true
	default:
		return fmt.Sprint(v), true
	}
}

// Set changes one threshold by name (ThresholdNames): a duration ("2s"), a
// number, a ratio as a fraction or a percentage ("0.001" or "0.1%"), true
// or false; phase-max-error-rate takes PHASE:RATIO and adds to the others.
func (t *Thresholds) Set(name, value string) error {
	i, ok := thresholdFields()[name]
	if !ok {
		return fmt.Errorf("unknown threshold %q: use one of %s", name, strings.Join(ThresholdNames(), ", "))
	}
	f := reflect.ValueOf(t).Elem().Field(i)
	bad := func(want string) error { return fmt.Errorf("threshold %s=%q: give %s", name, value, want) }
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 {
			return bad("a duration such as 500ms or 2s")
		}
		f.SetInt(int64(d))
	case float64:
		r, err := parseRatio(value)
		if err != nil {
			return bad("a number of 0 or more, or a percentage such as 0.1%")
		}
		f.SetFloat(r)
	case int:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return bad("a whole number of 0 or more")
		}
		f.SetInt(int64(n))
	case bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return bad("true or false")
		}
		f.SetBool(b)
	case map[string]float64:
		phase, rv, ok := strings.Cut(value, ":")
		r, err := parseRatio(rv)
		if !ok || phase == "" || err != nil {
			return bad("PHASE:RATIO, e.g. fault:1%")
		}
		if t.PhaseMaxErrorRate == nil {
			t.PhaseMaxErrorRate = map[string]float64{}
		}
		t.PhaseMaxErrorRate[phase] = r
	}
	return nil
}

func parseRatio(s string) (float64, error) {
	div := 1.0
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, div = p, 100
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a ratio: %q", s)
	}
	return v / div, nil
}
