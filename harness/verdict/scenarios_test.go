package verdict_test

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

var S = tt.S

// replacement describes one step of a rolling restart: a new pod starts and
// becomes Ready, then an old one is deleted.
type replacement struct {
	oldPod, oldIP          string
	newPod, newNode, newIP string
	start, ready, deleted  time.Duration
	endpointLag, exitAfter time.Duration // after deletion
	exitCode               int
}

// rollingRestart builds three pods on two nodes, replaced one by one under
// 100 rps of load for 30 s, with baseline/fault/recovery phases. mutate may
// change the steps before they are built.
func rollingRestart(behave tt.Behaviour, mutate func([]replacement)) *tt.Builder {
	b := tt.New()
	b.Phase(timeline.PhaseBaseline, 0, S(5))
	b.Phase(timeline.PhaseFault, S(5), S(20))
	b.Phase(timeline.PhaseRecovery, S(20), S(30))
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker2", "10.244.2.1", 0, 0)
	b.PodStart("web-c", "kind-worker", "10.244.1.2", 0, 0)
	b.Event(timeline.Event{Offset: S(5), Kind: timeline.EvNodeCordoned, Node: "kind-worker"})
	steps := []replacement{
		{"web-a", "10.244.1.1", "web-d", "kind-worker3", "10.244.3.1", S(5), S(7), S(7.1), S(1.2), S(10), 0},
		{"web-b", "10.244.2.1", "web-e", "kind-worker3", "10.244.3.2", S(9), S(11), S(11.1), S(1.2), S(10), 0},
		{"web-c", "10.244.1.2", "web-f", "kind-worker2", "10.244.2.2", S(13), S(15), S(15.1), S(1.2), S(10), 0},
	}
	if mutate != nil {
		mutate(steps)
	}
	for _, s := range steps {
		b.PodStart(s.newPod, s.newNode, s.newIP, s.start, s.ready)
		b.PodStop(s.oldPod, s.oldIP, s.deleted, s.deleted+s.endpointLag, s.deleted+s.exitAfter, s.exitCode)
	}
	b.Load(0, S(30), 10*time.Millisecond, behave)
	return b
}

// graceful steps: the endpoint goes at +1.2 s, the process exits at +10 s
// (a preStop wait then a drain), so nothing is routed to a stopped process.
func cleanRun() *tt.Builder { return rollingRestart(tt.Alive, nil) }

// abrupt steps: the process exits 0.1 s after SIGTERM, the endpoint goes
// 1.2 s after it, so connections are refused in between.
func abruptRun() *tt.Builder {
	return rollingRestart(tt.Alive, func(st []replacement) {
		for i := range st {
			st[i].exitAfter = S(0.1)
		}
	})
}

func judge(t *testing.T, b *tt.Builder, th verdict.Thresholds) verdict.Report {
	t.Helper()
	r := verdict.Judge(b.TL, th)
	t.Logf("report:\n%s", r)
	return r
}

func check(t *testing.T, r verdict.Report, name string) verdict.Check {
	t.Helper()
	c, ok := r.Check(name)
	require.True(t, ok, "no check %q in\n%s", name, r)
	return c
}

func figure(t *testing.T, c verdict.Check, name string) float64 {
	t.Helper()
	f, ok := c.Figure(name)
	require.True(t, ok, "no figure %q in check %s: %v", name, c.Name, c.Measured)
	return f.Value
}

func evidenceText(d *verdict.Diagnosis) string {
	var parts []string
	for _, e := range d.Evidence {
		parts = append(parts, e.Text)
	}
	return strings.Join(parts, "\n")
}

func TestCleanRollingRestartPasses(t *testing.T) {
	r := judge(t, cleanRun(), verdict.DefaultThresholds())
	assert.True(t, r.Passed(), "failed: %v", r.Failed())
	assert.Empty(t, r.Failed())
	names := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		names[i] = c.Name
		assert.Nil(t, c.Diagnosis, c.Name)
	}
	assert.Equal(t, []string{"error-rate", "error-rate/baseline", "error-rate/fault", "error-rate/recovery",
		"longest-outage", "ready-endpoints", "ready-to-serve", "readiness", "graceful-shutdown"}, names)

	er := check(t, r, verdict.CheckErrorRate)
	assert.Equal(t, 3000.0, figure(t, er, "requests"))
	assert.Equal(t, 0.0, figure(t, er, "failed"))
	assert.Equal(t, 500.0, figure(t, check(t, r, "error-rate/baseline"), "requests"))
	sh := check(t, r, verdict.CheckGracefulShutdown)
	assert.Equal(t, 3.0, figure(t, sh, "pods_deleted"))
	assert.InDelta(t, 1.2, figure(t, sh, "max_deletion_to_endpoint_removed"), 1e-9)
	assert.InDelta(t, 10.0, figure(t, sh, "max_deletion_to_exit"), 1e-9)
	re := check(t, r, verdict.CheckReadyEndpoints)
	assert.Equal(t, 3.0, figure(t, re, "min_ready"))
	rs := check(t, r, verdict.CheckReadyToServe)
	assert.Equal(t, 6.0, figure(t, rs, "pods_judged"))
	assert.Less(t, figure(t, rs, "max_ready_to_serve"), 0.1)
	assert.NotContains(t, r.String(), "FAIL")
}

func TestAbruptShutdownIsEndpointLag(t *testing.T) {
	r := judge(t, abruptRun(), verdict.DefaultThresholds())
	sh := check(t, r, verdict.CheckGracefulShutdown)
	require.False(t, sh.Passed)
	require.NotNil(t, sh.Diagnosis)
	assert.Equal(t, verdict.ClassEndpointLag, sh.Diagnosis.Class)
	assert.Equal(t, "endpoint removal lags termination", sh.Diagnosis.Title)
	// 1.2 s measured lag + 0.5 s margin
	assert.Contains(t, sh.Diagnosis.Fix, "preStop wait of at least 1.7 s")
	assert.Contains(t, sh.Diagnosis.Fix, "lifecycle.preStop.sleep.seconds: 2")
	assert.Contains(t, sh.Diagnosis.Fix, "endpoints were removed 1.2 s after deletion (SIGTERM) and the process exited after 100 ms")
	ev := evidenceText(sh.Diagnosis)
	assert.Contains(t, ev, "attributed by correlation")
	assert.Contains(t, ev, "web-a (node kind-worker): deletion requested at 7.100s, exited at 7.200s")
	assert.Contains(t, ev, "endpoint removed at 8.300s (1.2 s after)")
	require.Len(t, sh.Diagnosis.Evidence, 3)
	for _, e := range sh.Diagnosis.Evidence {
		assert.True(t, e.Correlated)
		assert.Greater(t, e.Count, 0)
		assert.GreaterOrEqual(t, e.At, S(7.2))
	}
	failed := figure(t, sh, "failed_after_deletion")
	assert.Greater(t, failed, 50.0)
	assert.Equal(t, failed, figure(t, sh, "failed_correlated"))
	assert.Equal(t, 3.0, figure(t, sh, "pods_exited_before_endpoint_removed"))

	// The overall error rate fails, and is blamed on the same thing.
	er := check(t, r, verdict.CheckErrorRate)
	require.False(t, er.Passed)
	assert.Equal(t, verdict.ClassEndpointLag, er.Diagnosis.Class)
	assert.Contains(t, evidenceText(er.Diagnosis), "pod shutting down")
	assert.Equal(t, failed, figure(t, er, "failed_refused"))
	assert.False(t, check(t, r, "error-rate/fault").Passed)
	assert.True(t, check(t, r, "error-rate/baseline").Passed)
	assert.True(t, check(t, r, "error-rate/recovery").Passed)
	// The failures are interleaved with successes: no long outage.
	assert.True(t, check(t, r, verdict.CheckOutage).Passed)
	assert.True(t, check(t, r, verdict.CheckReadiness).Passed, "refusals must not be blamed on the new pods")
	assert.Contains(t, r.Diagnoses(), verdict.ClassEndpointLag)

	// Every failure is attributed.
	s := abruptRun().Snapshot()
	for _, a := range verdict.Attribute(&s, verdict.DefaultThresholds()) {
		assert.Equal(t, verdict.CauseShutdown, a.Cause)
		assert.True(t, a.Correlated)
		require.Len(t, a.Pods, 1)
	}
}

func TestSlowestRemovalDrivesPreStop(t *testing.T) {
	b := rollingRestart(tt.Alive, func(st []replacement) {
		for i := range st {
			st[i].exitAfter = S(0.1)
		}
		st[2].endpointLag = S(2.45) // web-c's endpoint is slowest to go
	})
	sh := check(t, judge(t, b, verdict.DefaultThresholds()), verdict.CheckGracefulShutdown)
	require.NotNil(t, sh.Diagnosis)
	assert.Equal(t, verdict.ClassEndpointLag, sh.Diagnosis.Class)
	assert.Contains(t, sh.Diagnosis.Fix, "at least 3 s") // 2.45 + 0.5 rounded up to 100 ms
	assert.Contains(t, sh.Diagnosis.Fix, "sleep.seconds: 3")
	assert.Contains(t, sh.Diagnosis.Fix, "endpoints were removed 2.45 s after deletion (SIGTERM) and the process exited after 100 ms (web-c)")
}

func TestNoGracefulShutdownIsClass7(t *testing.T) {
	// The endpoint goes quickly (0.2 s), but the process is killed 0.5 s
	// after SIGTERM with requests in flight on kept-alive connections.
	b := rollingRestart(tt.Alive, func(st []replacement) {
		for i := range st {
			st[i].endpointLag = S(0.2)
			st[i].exitAfter = S(0.5)
		}
		st[0].exitCode = 137
	})
	for _, at := range []float64{7.59, 7.595, 11.59, 15.59} {
		b.Fail(S(at), 0, tt.ResetText, "")
	}
	// and one answered 502 by the pod itself, saying it was terminating
	b.Request(timeline.Request{Offset: S(7.5), Latency: time.Millisecond, Code: 502, Err: timeline.ErrHTTP5xx,
		Pod: "web-a", Terminating: true})
	r := judge(t, b, verdict.DefaultThresholds())
	sh := check(t, r, verdict.CheckGracefulShutdown)
	require.False(t, sh.Passed)
	assert.Equal(t, verdict.ClassNoGracefulShutdown, sh.Diagnosis.Class)
	assert.Contains(t, sh.Diagnosis.Fix, "handle SIGTERM")
	assert.Contains(t, sh.Diagnosis.Fix, "http.Server.Shutdown")
	assert.Equal(t, 5.0, figure(t, sh, "failed_after_deletion"))
	assert.Equal(t, 4.0, figure(t, sh, "failed_correlated"))
	ev := evidenceText(sh.Diagnosis)
	assert.Contains(t, ev, "web-a (node kind-worker): deletion requested at 7.100s, exited at 7.600s (500 ms after) with code 137 (SIGKILL")
	assert.Contains(t, ev, "3 requests failed from 7.500s to 7.595s (2 reset, 1 http5xx), 2 of them attributed by correlation")
	assert.NotContains(t, ev, "stopped serving")
}

func TestLyingReadiness(t *testing.T) {
	warmUp := func(until float64) tt.Behaviour {
		return func(at time.Duration, p *timeline.PodLifecycle) (int, string) {
			// New pods say Ready at once but answer 503 until warmed up.
			if p.Pod >= "web-d" && at < p.Ready.At+S(until) {
				return 503, ""
			}
			return tt.Alive(at, p)
		}
	}
	t.Run("short warm-up", func(t *testing.T) {
		r := judge(t, rollingRestart(warmUp(2.5), nil), verdict.DefaultThresholds())
		rd := check(t, r, verdict.CheckReadiness)
		require.False(t, rd.Passed)
		assert.Equal(t, verdict.ClassNotReadyTraffic, rd.Diagnosis.Class)
		assert.Contains(t, rd.Diagnosis.Fix, "readiness probe that passes only when the app can serve")
		ev := evidenceText(rd.Diagnosis)
		assert.Contains(t, ev, "web-d (node kind-worker3, Ready at 7.000s)")
		assert.Contains(t, ev, "while it was Ready: its readiness lied")
		assert.Greater(t, figure(t, rd, "failed_while_ready"), 0.0)
		assert.Equal(t, 0.0, figure(t, rd, "failed_while_not_ready"))
		assert.Equal(t, 3.0, figure(t, rd, "pods"))
		// it served within 5 s of Ready, so ready-to-serve passes
		rs := check(t, r, verdict.CheckReadyToServe)
		assert.True(t, rs.Passed)
		assert.InDelta(t, 2.5, figure(t, rs, "max_ready_to_serve"), 0.05)
		assert.True(t, check(t, r, verdict.CheckGracefulShutdown).Passed, "503s from Ready pods are not shutdown errors")
		er := check(t, r, verdict.CheckErrorRate)
		assert.Equal(t, verdict.ClassNotReadyTraffic, er.Diagnosis.Class)
	})
	t.Run("long warm-up", func(t *testing.T) {
		r := judge(t, rollingRestart(warmUp(8), nil), verdict.DefaultThresholds())
		rs := check(t, r, verdict.CheckReadyToServe)
		require.False(t, rs.Passed)
		assert.Equal(t, verdict.ClassNotReadyTraffic, rs.Diagnosis.Class)
		assert.Equal(t, 3.0, figure(t, rs, "pods_slow"))
		assert.Contains(t, evidenceText(rs.Diagnosis), "web-d (node kind-worker3) was Ready at 7.000s but first served successfully at 15.")
		assert.Contains(t, evidenceText(rs.Diagnosis), "failed there")
	})
}

func TestZeroReadyGap(t *testing.T) {
	// Two replicas on one node and no PodDisruptionBudget: the drain
	// evicts both at once, the replacements are Ready 3 s later.
	b := tt.New()
	b.Phase("baseline", 0, S(10)).Phase("fault", S(10), S(20))
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker", "10.244.1.2", 0, 0)
	b.Event(timeline.Event{Offset: S(9.9), Kind: timeline.EvNodeCordoned, Node: "kind-worker"})
	b.PodStop("web-a", "10.244.1.1", S(10), S(10.2), S(15))
	b.PodStop("web-b", "10.244.1.2", S(10), S(10.3), S(15))
	b.PodStart("web-c", "kind-worker2", "10.244.2.1", S(10.1), S(13.3))
	b.PodStart("web-d", "kind-worker2", "10.244.2.2", S(10.1), S(13.5))
	b.Load(0, S(20), 10*time.Millisecond, tt.Alive)
	r := judge(t, b, verdict.DefaultThresholds())

	re := check(t, r, verdict.CheckReadyEndpoints)
	require.False(t, re.Passed)
	assert.Equal(t, verdict.ClassZeroReady, re.Diagnosis.Class)
	assert.Equal(t, "no PodDisruptionBudget: zero ready endpoints", re.Diagnosis.Title)
	assert.Contains(t, re.Diagnosis.Fix, "PodDisruptionBudget")
	assert.Equal(t, 0.0, figure(t, re, "min_ready"))
	assert.InDelta(t, 3.0, figure(t, re, "time_zero_ready"), 1e-9)
	ev := evidenceText(re.Diagnosis)
	assert.Contains(t, ev, "from 10.300s to 13.300s (3 s) no endpoint was ready")
	assert.Contains(t, ev, "web-a (node kind-worker): endpoint not ready at 10.200s, deletion requested at 10.000s")
	assert.Contains(t, ev, "web-b (node kind-worker): endpoint not ready at 10.300s")
	assert.Contains(t, ev, "node kind-worker: NodeCordoned at 9.900s")

	out := check(t, r, verdict.CheckOutage)
	require.False(t, out.Passed)
	assert.InDelta(t, 3.0, figure(t, out, "longest_outage"), 0.011)
	assert.Equal(t, verdict.ClassZeroReady, out.Diagnosis.Class)
	assert.Contains(t, evidenceText(out.Diagnosis), "every request failed from 10.300s to 13.300s")
	assert.Equal(t, verdict.ClassZeroReady, check(t, r, verdict.CheckErrorRate).Diagnosis.Class)

	t.Run("min 2 with one left is a partial gap", func(t *testing.T) {
		b := tt.New()
		b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
		b.PodStart("web-b", "kind-worker2", "10.244.2.1", 0, 0)
		b.PodStop("web-a", "10.244.1.1", S(5), S(5.2), S(8))
		b.PodStart("web-c", "kind-worker2", "10.244.2.2", S(5.1), S(6))
		b.Load(0, S(10), 10*time.Millisecond, tt.Alive)
		th := verdict.DefaultThresholds()
		assert.True(t, check(t, judge(t, b, th), verdict.CheckReadyEndpoints).Passed)
		th.MinReadyEndpoints = 2
		re := check(t, judge(t, b, th), verdict.CheckReadyEndpoints)
		require.False(t, re.Passed)
		assert.Equal(t, 1.0, figure(t, re, "min_ready"))
		assert.Equal(t, "fewer than 2 ready endpoints", re.Diagnosis.Title)
		assert.Contains(t, re.Diagnosis.Fix, "minAvailable: 2")
		assert.Contains(t, evidenceText(re.Diagnosis), "only 1 endpoints were ready")
		th.MaxReadyGap = S(1)
		assert.True(t, check(t, judge(t, b, th), verdict.CheckReadyEndpoints).Passed, "0.8 s gap within a 1 s allowance")
	})
}

func TestNoRequestsCannotJudge(t *testing.T) {
	for name, b := range map[string]*tt.Builder{
		"empty":       tt.New(),
		"events only": tt.New().PodStart("web-a", "n", "10.0.0.1", 0, 0).Phase("baseline", 0, S(10)),
	} {
		t.Run(name, func(t *testing.T) {
			r := judge(t, b, verdict.DefaultThresholds())
			er := check(t, r, verdict.CheckErrorRate)
			assert.False(t, er.Passed)
			assert.Equal(t, "no requests: cannot judge", er.Summary)
			require.NotNil(t, er.Diagnosis)
			assert.Equal(t, verdict.ClassNone, er.Diagnosis.Class)
			assert.Contains(t, r.String(), "FAIL error-rate: no requests: cannot judge")
			for _, n := range []string{verdict.CheckOutage, verdict.CheckReadyToServe, verdict.CheckReadiness, verdict.CheckGracefulShutdown} {
				assert.False(t, check(t, r, n).Passed, n)
			}
			assert.False(t, r.Passed())
		})
	}
}

func shuffled(b *tt.Builder, seed int64) *tt.Builder {
	s := b.Snapshot()
	rng := rand.New(rand.NewSource(seed))
	rng.Shuffle(len(s.Events), func(i, j int) { s.Events[i], s.Events[j] = s.Events[j], s.Events[i] })
	rng.Shuffle(len(s.Requests), func(i, j int) { s.Requests[i], s.Requests[j] = s.Requests[j], s.Requests[i] })
	out := tt.New()
	for _, e := range s.Events {
		out.Event(e)
	}
	for _, r := range s.Requests {
		out.Request(r)
	}
	return out
}

func TestOutOfOrderInputSameVerdict(t *testing.T) {
	// Phase start/end and Added/NotReady pairs share offsets, which a
	// shuffle would reorder; build a run without such ties.
	b := tt.New()
	b.TL.BeginPhaseAt("fault", S(1))
	b.TL.EndPhaseAt("fault", S(9))
	for _, e := range []timeline.Event{
		{Offset: 0, Kind: timeline.EvPodReady, Pod: "web-a"},
		{Offset: S(0.01), Kind: timeline.EvEndpointReady, Pod: "web-a", IP: "10.0.0.1"},
		{Offset: S(0.02), Kind: timeline.EvEndpointReady, Pod: "web-b", IP: "10.0.0.2"},
		{Offset: S(5), Kind: timeline.EvPodDeletionRequested, Pod: "web-a"},
		{Offset: S(5.1), Kind: timeline.EvContainerExited, Pod: "web-a"},
		{Offset: S(6.3), Kind: timeline.EvEndpointRemoved, Pod: "web-a", IP: "10.0.0.1"},
	} {
		b.Event(e)
	}
	b.Load(S(0.5), S(10), 10*time.Millisecond, tt.Alive)
	want := judge(t, b, verdict.DefaultThresholds())
	require.False(t, want.Passed())
	for seed := range int64(5) {
		got := judge(t, shuffled(b, seed), verdict.DefaultThresholds())
		assert.Equal(t, want, got)
	}
}

func TestPodsThatNeverBecomeReady(t *testing.T) {
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-stuck", "kind-worker2", "10.244.2.9", S(1), -1) // CrashLoopBackOff, never Ready
	b.Load(0, S(10), 10*time.Millisecond, tt.Alive)
	r := judge(t, b, verdict.DefaultThresholds())
	assert.True(t, r.Passed(), "a stuck pod that gets no traffic costs nothing: %v", r.Failed())
	rs := check(t, r, verdict.CheckReadyToServe)
	assert.Equal(t, 1.0, figure(t, rs, "pods_never_ready"))
	assert.Contains(t, rs.Summary, "1 pod never Ready (web-stuck)")

	// If it gets traffic anyway (no readiness gate on the route), that is class 9.
	b.Fail(S(3), 503, "", "web-stuck")
	b.Fail(S(3.5), 503, "", "web-stuck")
	r = judge(t, b, verdict.DefaultThresholds())
	rd := check(t, r, verdict.CheckReadiness)
	require.False(t, rd.Passed)
	assert.Equal(t, 2.0, figure(t, rd, "failed_while_not_ready"))
	assert.Contains(t, evidenceText(rd.Diagnosis), "web-stuck (node kind-worker2, never Ready): 2 failed from 3.000s to 3.500s (2 http5xx): 2 reached it while it was not Ready")

	// Never any ready endpoint at all.
	b = tt.New()
	b.PodStart("web-stuck", "kind-worker2", "10.244.2.9", 0, -1)
	b.Load(0, S(5), 10*time.Millisecond, tt.Alive)
	r = judge(t, b, verdict.DefaultThresholds())
	re := check(t, r, verdict.CheckReadyEndpoints)
	assert.False(t, re.Passed)
	assert.Equal(t, "never 1 ready endpoint: cannot judge", re.Summary)
	assert.Contains(t, evidenceText(re.Diagnosis), "pod web-stuck (node kind-worker2) was never Ready")
}

func TestClockSkewTolerance(t *testing.T) {
	// web-a is Ready from 0 and deleted at 10 s; its endpoint goes at 11 s,
	// it exits at 20 s. Another pod, web-b, stays.
	base := func() *tt.Builder {
		b := tt.New()
		b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
		b.PodStart("web-b", "kind-worker2", "10.244.2.1", 0, 0)
		b.PodStop("web-a", "10.244.1.1", S(10), S(11), S(20))
		every(0, 25, 0.05, func(at float64) {
			pod := "web-b"
			if at < 10 && int(at*20+0.5)%2 == 0 {
				pod = "web-a"
			}
			b.OK(S(at), pod)
		})
		return b
	}
	cases := []struct {
		name     string
		at       float64 // when the failure was sent
		code     int     // 503 from web-a, or 0: an unattributed reset
		skew     time.Duration
		wantFail string // the check that fails
		cause    verdict.Cause
	}{
		{"503 just before deletion, within tolerance", 9.9, 503, 250 * time.Millisecond, verdict.CheckGracefulShutdown, verdict.CauseShutdown},
		{"503 well before deletion, beyond tolerance", 9.6, 503, 250 * time.Millisecond, verdict.CheckReadiness, verdict.CauseReadinessLie},
		{"503 just before deletion, zero tolerance", 9.9, 503, 0, verdict.CheckReadiness, verdict.CauseReadinessLie},
		{"503 with a wider tolerance", 9.6, 503, 500 * time.Millisecond, verdict.CheckGracefulShutdown, verdict.CauseShutdown},
		{"reset just before deletion, within tolerance", 9.8, 0, 250 * time.Millisecond, verdict.CheckGracefulShutdown, verdict.CauseShutdown},
		{"reset well before deletion, beyond tolerance", 9.5, 0, 250 * time.Millisecond, "", verdict.CauseUnexplained},
		{"reset just after the window, within tolerance", 20.2, 0, 250 * time.Millisecond, verdict.CheckGracefulShutdown, verdict.CauseShutdown},
		{"reset after the window, beyond tolerance", 20.3, 0, 250 * time.Millisecond, "", verdict.CauseUnexplained},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := base()
			if c.code != 0 {
				b.Fail(S(c.at), c.code, "", "web-a")
			} else {
				b.Fail(S(c.at), 0, tt.ResetText, "")
			}
			th := verdict.DefaultThresholds()
			th.ClockSkew = c.skew
			th.MaxErrorRate = 0.01 // one failure in 500 is fine here
			s := b.Snapshot()
			attrs := verdict.Attribute(&s, th)
			require.Len(t, attrs, 1)
			assert.Equal(t, c.cause, attrs[0].Cause)
			r := verdict.JudgeSnapshot(&s, th)
			var failed []string
			for _, f := range r.Failed() {
				failed = append(failed, f.Name)
			}
			if c.wantFail == "" {
				assert.Empty(t, failed, "%s", r)
			} else {
				assert.Equal(t, []string{c.wantFail}, failed, "%s", r)
			}
		})
	}
}

func TestPhaseWithNoRequests(t *testing.T) {
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.Phase("baseline", 0, S(5)).Phase("fault", S(5), S(6)).Phase("recovery", S(6), S(10))
	b.Load(0, S(5), 10*time.Millisecond, tt.Alive)
	b.Load(S(6), S(10), 10*time.Millisecond, tt.Alive)
	r := judge(t, b, verdict.DefaultThresholds())
	f := check(t, r, "error-rate/fault")
	assert.False(t, f.Passed)
	assert.Equal(t, `no requests in phase "fault": cannot judge`, f.Summary)
	assert.True(t, check(t, r, "error-rate/baseline").Passed)
	assert.Equal(t, []string{"error-rate/fault"}, failedNames(r))

	th := verdict.DefaultThresholds()
	th.AllowEmptyPhases = true
	r = judge(t, b, th)
	assert.True(t, r.Passed())
	assert.Contains(t, check(t, r, "error-rate/fault").Summary, "not judged")
}

// every calls fn for from, from+step, ... below to, counting in integers so
// that the number of calls is exact.
func every(from, to, step float64, fn func(at float64)) {
	n := int((to-from)/step + 0.5)
	for i := range n {
		fn(from + float64(i)*step)
	}
}

func failedNames(r verdict.Report) []string {
	var out []string
	for _, c := range r.Failed() {
		out = append(out, c.Name)
	}
	return out
}

func stripAttribution(b *tt.Builder) *tt.Builder {
	s := b.Snapshot()
	out := tt.New()
	for _, e := range s.Events {
		out.Event(e)
	}
	for _, r := range s.Requests {
		r.Pod, r.Node, r.PodIP, r.Terminating = "", "", "", false
		out.Request(r)
	}
	return out
}

func TestRequestsWithoutAttribution(t *testing.T) {
	t.Run("clean run", func(t *testing.T) {
		r := judge(t, stripAttribution(cleanRun()), verdict.DefaultThresholds())
		assert.ElementsMatch(t, []string{verdict.CheckReadyToServe, verdict.CheckReadiness}, failedNames(r))
		rs := check(t, r, verdict.CheckReadyToServe)
		assert.Equal(t, "no attributed responses: cannot judge", rs.Summary)
		assert.Contains(t, rs.Diagnosis.Fix, "X-Pod-Name")
	})
	t.Run("abrupt run still diagnosed by correlation", func(t *testing.T) {
		r := judge(t, stripAttribution(abruptRun()), verdict.DefaultThresholds())
		sh := check(t, r, verdict.CheckGracefulShutdown)
		require.False(t, sh.Passed)
		assert.Equal(t, verdict.ClassEndpointLag, sh.Diagnosis.Class)
		assert.Contains(t, evidenceText(sh.Diagnosis), "attributed by correlation")
	})
	t.Run("503 without attribution during a shutdown window is correlated", func(t *testing.T) {
		b := tt.New()
		b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
		b.PodStart("web-b", "kind-worker", "10.244.1.2", 0, 0)
		b.PodStop("web-a", "10.244.1.1", S(5), S(6), S(6))
		every(0, 10, 0.01, func(at float64) { b.OK(S(at), "") })
		b.Fail(S(5.5), 503, "", "") // a gateway's 503
		b.Fail(S(5.6), 500, "", "") // a 500 is an app error, not a vanished upstream
		s := b.Snapshot()
		attrs := verdict.Attribute(&s, verdict.DefaultThresholds())
		require.Len(t, attrs, 2)
		assert.Equal(t, verdict.Attribution{Request: attrs[0].Request, Cause: verdict.CauseShutdown, Pods: []string{"web-a"}, Correlated: true}, attrs[0])
		assert.Equal(t, verdict.CauseUnexplained, attrs[1].Cause)
		assert.Empty(t, attrs[1].Pods)
	})
	t.Run("attribution by IP only", func(t *testing.T) {
		b := tt.New()
		b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
		every(0, 10, 0.01, func(at float64) { b.Request(timeline.Request{Offset: S(at), Code: 200, PodIP: "10.244.1.1"}) })
		b.Request(timeline.Request{Offset: S(5), Code: 503, Err: timeline.ErrHTTP5xx, PodIP: "10.244.1.1"})
		s := b.Snapshot()
		attrs := verdict.Attribute(&s, verdict.DefaultThresholds())
		require.Len(t, attrs, 1)
		assert.Equal(t, []string{"web-a"}, attrs[0].Pods)
		assert.Equal(t, verdict.CauseReadinessLie, attrs[0].Cause)
	})
}

func TestUnexplainedBlipsAreClientsWithoutRetries(t *testing.T) {
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker2", "10.244.2.1", 0, 0)
	every(0, 10, 0.01, func(at float64) { b.OK(S(at), []string{"web-a", "web-b"}[int(at*100)%2]) })
	for i := range 5 {
		b.Fail(S(1+float64(i)*1.7)+time.Millisecond, 0, `Get "http://web/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, "")
	}
	r := judge(t, b, verdict.DefaultThresholds())
	er := check(t, r, verdict.CheckErrorRate)
	require.False(t, er.Passed)
	assert.Equal(t, verdict.ClassNoRetries, er.Diagnosis.Class)
	assert.Contains(t, er.Diagnosis.Fix, "5 of the 5 failures were short blips")
	assert.Equal(t, 5.0, figure(t, er, "failed_timeout"))
	assert.Contains(t, er.Summary, "0.498% of requests failed in the run (5 of 1005: 5 timeout), limit 0.1%")
	assert.True(t, check(t, r, verdict.CheckOutage).Passed)

	// The same failures in one block: an outage nothing explains.
	b = tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	every(0, 10, 0.01, func(at float64) {
		if at >= 4 && at < 6 {
			b.Fail(S(at), 0, "read: connection reset by peer", "")
		} else {
			b.OK(S(at), "web-a")
		}
	})
	b.Event(timeline.Event{Offset: S(4.1), Kind: timeline.EvFaultInjected, Name: "drop packets"})
	r = judge(t, b, verdict.DefaultThresholds())
	out := check(t, r, verdict.CheckOutage)
	require.False(t, out.Passed)
	assert.Equal(t, verdict.ClassNone, out.Diagnosis.Class)
	assert.InDelta(t, 2.0, figure(t, out, "longest_outage"), 0.011)
	assert.Contains(t, evidenceText(out.Diagnosis), "event around the outage: 4.100s FaultInjected name=drop packets")
	assert.NotEqual(t, verdict.ClassNoRetries, check(t, r, verdict.CheckErrorRate).Diagnosis.Class)
}

func TestOutageNotRecovered(t *testing.T) {
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.OK(0, "web-a").OK(S(1), "web-a")
	b.Fail(S(2), 0, tt.RefusedText, "").Fail(S(3), 0, tt.RefusedText, "").Fail(S(4), 0, tt.RefusedText, "")
	r := judge(t, b, verdict.DefaultThresholds())
	out := check(t, r, verdict.CheckOutage)
	require.False(t, out.Passed)
	assert.Contains(t, out.Summary, "not recovered by the end")
	assert.InDelta(t, 2.002, figure(t, out, "longest_outage"), 1e-9) // to the last failure's answer
	s := b.Snapshot()
	outs := verdict.Outages(&s)
	require.Len(t, outs, 1)
	assert.False(t, outs[0].Recovered)
	assert.Equal(t, 3, outs[0].Failed)
}

func TestDNSFailures(t *testing.T) {
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	every(0, 10, 0.01, func(at float64) {
		if at >= 3 && at < 3.5 {
			b.Fail(S(at), 0, "dial tcp: lookup web.default.svc.cluster.local on 10.96.0.10:53: no such host", "")
		} else {
			b.OK(S(at), "web-a")
		}
	})
	r := judge(t, b, verdict.DefaultThresholds())
	er := check(t, r, verdict.CheckErrorRate)
	require.False(t, er.Passed)
	assert.Equal(t, verdict.ClassDNS, er.Diagnosis.Class)
	assert.Equal(t, 50.0, figure(t, er, "failed_dns"))
}

func TestRejudgeSavedRun(t *testing.T) {
	tl := abruptRun().TL
	var buf bytes.Buffer
	require.NoError(t, tl.Encode(&buf))
	loaded, err := timeline.Decode(&buf)
	require.NoError(t, err)
	assert.Equal(t, verdict.Judge(tl, verdict.DefaultThresholds()), verdict.Judge(loaded, verdict.DefaultThresholds()))
}

func TestThresholdsAreHonoured(t *testing.T) {
	th := verdict.DefaultThresholds()
	th.MaxErrorRate = 0.1
	th.MaxShutdownErrors = 1000
	r := judge(t, abruptRun(), th)
	assert.True(t, r.Passed(), "%v", r.Failed())

	th = verdict.DefaultThresholds()
	th.PhaseMaxErrorRate = map[string]float64{"fault": 0.1}
	r = judge(t, abruptRun(), th)
	assert.True(t, check(t, r, "error-rate/fault").Passed)
	assert.False(t, check(t, r, "error-rate").Passed)
}

func TestReportHelpers(t *testing.T) {
	r := judge(t, abruptRun(), verdict.DefaultThresholds())
	lines := strings.Split(strings.TrimSpace(r.String()), "\n")
	assert.Len(t, lines, len(r.Checks))
	assert.Contains(t, r.String(), "FAIL graceful-shutdown: ")
	assert.Contains(t, r.String(), "[class 8: endpoint removal lags termination]")
	assert.Contains(t, r.String(), "PASS error-rate/baseline: 0% of requests failed")
	for _, c := range r.Failed() {
		assert.False(t, c.Passed)
		assert.NotNil(t, c.Diagnosis)
		assert.NotEmpty(t, c.Diagnosis.Fix)
	}
	_, ok := r.Check("nope")
	assert.False(t, ok)
	assert.Equal(t, "class 10: no PodDisruptionBudget: zero ready endpoints", verdict.ClassZeroReady.String())
	assert.Equal(t, "error_rate=0.12%", verdict.Figure{Name: "error_rate", Value: 0.0012, Unit: verdict.UnitRatio}.String())
	assert.Equal(t, "lag=1.2s", verdict.Figure{Name: "lag", Value: 1.2, Unit: verdict.UnitSeconds}.String())
}
