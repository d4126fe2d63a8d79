package verdict_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// The rehearsal app's presets, as the simulated world knows them (see
// fixtures/appspec): the well-behaved app and each misbehaving variant.
var (
	wellBehaved = tt.App{Shutdown: tt.ShutdownGraceful, DrainDelay: 2 * time.Second, WarmUp: 2 * time.Second,
		Readiness: tt.ReadinessHonest, Headers: true, PreStop: 5 * time.Second}
	abrupt   = with(wellBehaved, func(a *tt.App) { a.Shutdown, a.PreStop = tt.ShutdownAbrupt, 0 })
	noDrain  = with(wellBehaved, func(a *tt.App) { a.Shutdown, a.DrainDelay, a.PreStop = tt.ShutdownNoDrain, 0, 0 })
	ignores  = with(wellBehaved, func(a *tt.App) { a.Shutdown, a.PreStop, a.Grace = tt.ShutdownIgnore, 0, 10*time.Second })
	lying    = with(wellBehaved, func(a *tt.App) { a.Readiness, a.WarmUp = tt.ReadinessLying, 5*time.Second })
	flaky    = with(wellBehaved, func(a *tt.App) { a.FailEvery = 50 })
	presets  = map[string]tt.App{"well-behaved": wellBehaved, "abrupt": abrupt, "no-drain": noDrain, "ignores-sigterm": ignores, "lying": lying}
	bothKind = []timeline.ClientKind{timeline.ClientGateway, timeline.ClientService}
)

func with(a tt.App, f func(*tt.App)) tt.App {
	f(&a)
	return a
}

// restart simulates the rehearsal of a rolling restart: three pods already
// serving, a warm-up (0-3 s) and a baseline (3-8 s), the restart from 8 s,
// its fault phase until every old pod exited, 5 s of recovery; both client
// kinds at 100 rps each, as rehearsal.Run sets them up.
func restart(t *testing.T, app tt.App, headers bool, clients ...tt.Client) *timeline.Timeline {
	t.Helper()
	app.Headers = headers
	w := tt.NewWorld()
	var old []*tt.SimPod
	for i, node := range []string{"kind-worker", "kind-worker2", "kind-worker"} {
		old = append(old, w.Pod(fmt.Sprintf("web-%d", i+1), node, fmt.Sprintf("10.244.%d.%d", i%2+1, i+10), -S(30), app))
	}
	w.RollingRestart(S(8), old, tt.App{})
	var lastExit time.Duration
	for _, p := range old {
		d, ok := p.Deleted()
		require.True(t, ok)
		lastExit = max(lastExit, d+app.PreStop+app.DrainDelay+max(app.Grace, 0)+time.Second)
	}
	faultEnd := lastExit + S(1)
	end := faultEnd + S(5)
	w.Phase(timeline.PhaseWarmup, 0, S(3)).Phase(timeline.PhaseBaseline, S(3), S(8)).
		Phase(timeline.PhaseFault, S(8), faultEnd).Phase(timeline.PhaseRecovery, faultEnd, end)
	if len(clients) == 0 {
		clients = []tt.Client{{Kind: timeline.ClientGateway, Rate: 100, To: end}, {Kind: timeline.ClientService, Rate: 100, To: end}}
	}
	tl := w.Run(clients...)
	for _, c := range clients {
		kind := c.Kind
		tl.SetMeta(verdict.RateMetaKey(kind), fmt.Sprint(c.Rate))
	}
	return tl
}

func judgeTL(t *testing.T, tl *timeline.Timeline) verdict.Report {
	t.Helper()
	r := verdict.Judge(tl, verdict.DefaultThresholds())
	t.Logf("report:\n%s%s", r, r.Explain())
	return r
}

func failedRequests(tl *timeline.Timeline) map[timeline.ClientKind]int {
	out := map[timeline.ClientKind]int{}
	for _, r := range tl.Requests() {
		if !r.OK() {
			out[r.Client]++
		}
	}
	return out
}

// The well-behaved app passes with zero failed requests, with or without
// attribution headers.
func TestWorldWellBehavedPasses(t *testing.T) {
	for _, headers := range []bool{true, false} {
		t.Run(fmt.Sprintf("headers=%t", headers), func(t *testing.T) {
			tl := restart(t, wellBehaved, headers)
			r := judgeTL(t, tl)
			assert.Empty(t, failedRequests(tl))
			assert.Equal(t, verdict.Pass, r.Outcome, r.Reason)
		})
	}
}

// Each misbehaving app fails with its own diagnosis, with or without
// headers: the verdict reaches the same conclusion for an app that knows
// nothing of the harness.
func TestWorldDiagnoses(t *testing.T) {
	cases := []struct {
		app   string
		check string
		class verdict.Class
		text  string // in the diagnosis's fix or evidence
	}{
		{"abrupt", verdict.CheckGracefulShutdown, verdict.ClassNoGracefulShutdown, "lost in flight"},
		{"no-drain", verdict.CheckGracefulShutdown, verdict.ClassEndpointLag, "preStop.sleep.seconds"},
		{"ignores-sigterm", verdict.CheckGracefulShutdown, verdict.ClassNoGracefulShutdown, "SIGKILL"},
		{"lying", verdict.CheckReadiness, verdict.ClassNotReadyTraffic, "was Ready at"},
	}
	for _, c := range cases {
		for _, headers := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/headers=%t", c.app, headers), func(t *testing.T) {
				r := judgeTL(t, restart(t, presets[c.app], headers))
				assert.Equal(t, verdict.Fail, r.Outcome)
				ch, ok := r.Check(c.check)
				require.True(t, ok)
				require.Equal(t, verdict.Fail, ch.Status, ch.Summary)
				require.NotNil(t, ch.Diagnosis)
				assert.Equal(t, c.class, ch.Diagnosis.Class, ch.Diagnosis.Title)
				assert.Contains(t, explain(ch), c.text)
			})
		}
	}
}

func explain(c verdict.Check) string {
	var b strings.Builder
	b.WriteString(c.Diagnosis.Fix)
	for _, e := range c.Diagnosis.Evidence {
		b.WriteString("\n" + e.Text)
	}
	return b.String()
}

// A pod SIGKILLed at the end of its grace period fails graceful shutdown
// even though no request failed.
func TestWorldSIGKILLWithoutErrorsFails(t *testing.T) {
	tl := restart(t, ignores, true)
	assert.Empty(t, failedRequests(tl), "the app served everything until it was killed")
	r := judgeTL(t, tl)
	ch, _ := r.Check(verdict.CheckGracefulShutdown)
	assert.Equal(t, verdict.Fail, ch.Status)
	f, _ := ch.Figure("pods_sigkilled")
	assert.Equal(t, 3.0, f.Value)
}

// Class 8's preStop recommendation covers the routing lag measured: the
// gateway (1 s) and kube-proxy kept sending to the stopped pods.
func TestWorldPreStopCoversMeasuredLag(t *testing.T) {
	r := judgeTL(t, restart(t, noDrain, false))
	ch, _ := r.Check(verdict.CheckGracefulShutdown)
	lag, ok := ch.Figure("max_routing_lag")
	require.True(t, ok)
	assert.GreaterOrEqual(t, lag.Value, 1.0, "the gateway routes for its 1 s delay after deletion")
	var secs int
	_, err := fmt.Sscanf(ch.Diagnosis.Fix[strings.Index(ch.Diagnosis.Fix, "preStop wait of ")+len("preStop wait of "):], "%d", &secs)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, float64(secs), lag.Value, "the wait covers the measured lag")
}

// Lying readiness is caught in the fault phase, naming the new pods, not
// in the baseline.
func TestWorldLyingCaughtInFaultPhase(t *testing.T) {
	r := judgeTL(t, restart(t, lying, false))
	assert.Equal(t, verdict.Pass, statusOf(r, verdict.CheckBaseline))
	ch, _ := r.Check(verdict.CheckReadiness)
	require.NotNil(t, ch.Diagnosis)
	for _, e := range ch.Diagnosis.Evidence {
		assert.Contains(t, e.Pod, "web-r", "the new pods are named: %s", e.Text)
	}
	assert.Len(t, ch.Diagnosis.Evidence, 3)
}

// A plain Go client with pooled connections hides in-flight losses by
// retrying and never reaches the new pods; alone, it cannot judge
// readiness: the verdict says so instead of passing.
func TestWorldPooledRetryingClientCannotJudgeReadiness(t *testing.T) {
	tl := restart(t, lying, true, tt.Client{Kind: timeline.ClientService, Rate: 100, To: S(60), PlainGo: true, Conns: 2})
	r := judgeTL(t, tl)
	assert.NotEqual(t, verdict.Pass, r.Outcome)
	ch, _ := r.Check(verdict.CheckReadiness)
	assert.Equal(t, verdict.CannotJudge, ch.Status, ch.Summary)
}

// A flaky app (2 % of requests fail all the time) cannot be judged: its
// baseline is not clean.
func TestWorldFlakyBaselineCannotJudge(t *testing.T) {
	r := judgeTL(t, restart(t, flaky, false))
	assert.Equal(t, verdict.CannotJudge, r.Outcome)
	assert.Contains(t, r.Reason, "baseline not clean")
}

func statusOf(r verdict.Report, name string) verdict.Status {
	c, _ := r.Check(name)
	return c.Status
}

// An app that exits cleanly (exit 0) after closing its listener while
// traffic still arrives makes clients see resets too (connections queued in
// the kernel, a keep-alive closed as a request was written): still class 8,
// which a preStop wait fixes, not class 7.
func TestWorldCleanExitWithResetsIsClass8(t *testing.T) {
	tl := restart(t, noDrain, false)
	s := tl.Snapshot()
	var victim string
	var at time.Duration
	for _, e := range s.Events {
		if e.Kind == timeline.EvAppLog && e.Name == "stopped accepting" {
			victim, at = e.Pod, e.Offset
			break
		}
	}
	require.NotEmpty(t, victim)
	for i := 0; i < 5; i++ {
		tl.AddRequest(timeline.Request{Offset: at - time.Duration(i+1)*time.Millisecond, Latency: time.Duration(i+1) * time.Millisecond,
			Client: timeline.ClientGateway, Reused: true, Pod: victim, Via: timeline.ViaRoute, Err: timeline.ErrReset,
			ErrText: "read tcp 172.18.0.1:1->10.244.1.10:8080: read: connection reset by peer"})
	}
	r := judgeTL(t, tl)
	ch, _ := r.Check(verdict.CheckGracefulShutdown)
	require.NotNil(t, ch.Diagnosis)
	assert.Equal(t, verdict.ClassEndpointLag, ch.Diagnosis.Class)
}

// A flaky app's error answers during a pod's preStop wait (deletion
// requested, SIGTERM not yet sent: the app still serves as before) are its
// own, not the shutdown's: graceful shutdown is not failed for them, and
// the fix is not a preStop wait the app already has. Without headers the
// service client's 5xx name no pod and may still be blamed on one shutting
// down; the outcome is "cannot judge" either way (the baseline shows the
// app failing by itself).
func TestWorldErrorAnswersBeforeSIGTERMAreTheApps(t *testing.T) {
	for _, headers := range []bool{true, false} {
		t.Run(fmt.Sprintf("headers=%t", headers), func(t *testing.T) {
			r := judgeTL(t, restart(t, flaky, headers))
			assert.Equal(t, verdict.CannotJudge, r.Outcome, "the baseline is not clean")
			ch, _ := r.Check(verdict.CheckGracefulShutdown)
			if headers {
				assert.Equal(t, verdict.Pass, ch.Status, ch.Summary)
			}
			e, _ := r.Check(verdict.CheckErrorRate + "/gateway")
			assert.Contains(t, explain(e), "app error at a serving pod")
		})
	}
}

// A cluster (or harness) so busy that its watches lag seconds behind cannot
// be judged, even though nothing failed: what clients saw could not be
// matched with what the cluster did. Re-judged without the limit (a record
// saved before it existed), it passes as it did then.
func TestWorldStarvedWatchesCannotJudge(t *testing.T) {
	tl := restart(t, wellBehaved, false)
	tl.AddEvent(timeline.Event{Offset: S(9), Kind: timeline.EvWatchLag, Value: S(9.1)})
	r := judgeTL(t, tl)
	assert.Equal(t, verdict.CannotJudge, r.Outcome)
	assert.Contains(t, r.Reason, "watches lagged up to 9.1 s")
	th := verdict.DefaultThresholds()
	th.MaxWatchLag = 0
	assert.Equal(t, verdict.Pass, verdict.Judge(tl, th).Outcome)
}
