package verdict_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

var S = tt.S

// steady builds a run of three ready pods, phases baseline 0-5 s, fault
// 5-15 s, recovery 15-20 s, and a gateway client at 100 rps that answers
// with fail(at, pod) (0 for success).
func steady(fail func(at time.Duration, pod string) (int, string)) *tt.Builder {
	b := tt.New()
	b.TL.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), "100")
	b.Phase(timeline.PhaseBaseline, 0, S(5))
	b.Phase(timeline.PhaseFault, S(5), S(15))
	b.Phase(timeline.PhaseRecovery, S(15), S(20))
	pods := []string{"web-a", "web-b", "web-c"}
	for i, p := range pods {
		ip := "10.244.1." + string(rune('1'+i))
		b.PodStart(p, "kind-worker", ip, 0, 0)
		b.Event(timeline.Event{Offset: 0, Kind: timeline.EvRouteAdded, Client: timeline.ClientGateway, Pod: p, IP: ip})
	}
	for k, at := 0, time.Duration(0); at < S(20); k, at = k+1, at+10*time.Millisecond {
		pod := pods[k%3]
		r := timeline.Request{Offset: at, Latency: 2 * time.Millisecond, Code: 200, Client: timeline.ClientGateway,
			Pod: pod, Via: timeline.ViaRoute}
		if code, text := fail(at, pod); code != 0 || text != "" {
			r.Code, r.ErrText = code, text
			if text == "" {
				r.ErrText = "500 Internal Server Error"
			}
			r.Err = timeline.ClassifyError(code, r.ErrText)
		}
		b.Request(r)
	}
	return b
}

func judge(t *testing.T, b *tt.Builder) verdict.Report {
	t.Helper()
	r := verdict.Judge(b.TL, verdict.DefaultThresholds())
	t.Logf("report:\n%s%s", r, r.Explain())
	return r
}

func status(t *testing.T, r verdict.Report, name string) verdict.Status {
	t.Helper()
	c, ok := r.Check(name)
	require.True(t, ok, "no check %q in\n%s", name, r)
	return c.Status
}

func TestHealthyRunPasses(t *testing.T) {
	r := judge(t, steady(func(time.Duration, string) (int, string) { return 0, "" }))
	assert.Equal(t, verdict.Pass, r.Outcome)
	assert.Equal(t, verdict.Pass, status(t, r, "error-rate/gateway"))
	assert.Equal(t, verdict.Pass, status(t, r, "baseline"))
	assert.Equal(t, verdict.Pass, status(t, r, "load"))
}

// A baseline with failures makes the whole rehearsal "cannot judge", even
// when the fault phase fails too: the fault's effect cannot be told apart.
func TestDirtyBaselineCannotJudge(t *testing.T) {
	r := judge(t, steady(func(at time.Duration, pod string) (int, string) {
		if pod == "web-b" && int(at/(10*time.Millisecond))%50 == 1 {
			return 500, ""
		}
		return 0, ""
	}))
	assert.Equal(t, verdict.CannotJudge, r.Outcome)
	assert.Contains(t, r.Reason, "baseline not clean")
	c, _ := r.Check("baseline")
	require.NotNil(t, c.Diagnosis)
	assert.Contains(t, c.Diagnosis.Evidence[0].Text, "web-b")
	assert.False(t, r.Passed())
}

// A starved load generator (a 2 s pause) cannot judge.
func TestStarvedLoadCannotJudge(t *testing.T) {
	b := steady(func(time.Duration, string) (int, string) { return 0, "" })
	s := b.Snapshot()
	var kept []timeline.Request
	for _, rq := range s.Requests {
		if rq.Offset < S(8) || rq.Offset >= S(10) {
			kept = append(kept, rq)
		}
	}
	s.Requests = kept
	r := verdict.JudgeSnapshot(&s, verdict.DefaultThresholds())
	t.Logf("%s%s", r, r.Explain())
	assert.Equal(t, verdict.CannotJudge, r.Outcome)
	assert.Contains(t, r.Reason, "load generator starved")
}

// The load generator's own failures are never blamed on the app.
func TestClientErrorsAreNotTheApps(t *testing.T) {
	r := judge(t, steady(func(at time.Duration, _ string) (int, string) {
		if at > S(6) && at < S(6.2) {
			return 0, "dial tcp 10.244.1.1:8080: socket: too many open files"
		}
		return 0, ""
	}))
	assert.Equal(t, verdict.Pass, status(t, r, "error-rate/gateway"), "client errors are left out of the error rate")
	assert.Equal(t, verdict.CannotJudge, status(t, r, "load"))
	assert.Equal(t, verdict.CannotJudge, r.Outcome)
}

// An outage is a run of time slices where most requests failed; one pod of
// three failing is not an outage.
func TestOutageIsMostRequestsFailing(t *testing.T) {
	onePod := judge(t, steady(func(at time.Duration, pod string) (int, string) {
		if pod == "web-a" && at > S(6) && at < S(9) {
			return 500, ""
		}
		return 0, ""
	}))
	assert.Equal(t, verdict.Pass, status(t, onePod, "longest-outage/gateway"))
	assert.Equal(t, verdict.Fail, status(t, onePod, "error-rate/gateway"))

	all := judge(t, steady(func(at time.Duration, _ string) (int, string) {
		if at >= S(6) && at < S(7.5) {
			return 0, "dial tcp 10.244.1.1:8080: connect: connection refused"
		}
		return 0, ""
	}))
	c, _ := all.Check("longest-outage/gateway")
	assert.Equal(t, verdict.Fail, c.Status)
	f, _ := c.Figure("longest_outage")
	assert.InDelta(t, 1.5, f.Value, 0.11)
}

func TestFailureRuns(t *testing.T) {
	b := steady(func(at time.Duration, _ string) (int, string) {
		if at >= S(6) && at < S(7) {
			return 500, ""
		}
		return 0, ""
	})
	s := b.Snapshot()
	runs := verdict.FailureRuns(&s, timeline.ClientGateway)
	require.Len(t, runs, 1)
	assert.Equal(t, 100, runs[0].Failed)
	assert.Equal(t, S(1), runs[0].Duration())
}

func TestUnknownCheck(t *testing.T) {
	assert.Error(t, verdict.ValidateChecks([]string{"error-rate", "vibes"}))
	assert.NoError(t, verdict.ValidateChecks(verdict.DefaultChecks))
}

// A request sent at the end of the baseline and broken by the fault's first
// eviction (it was still waiting for its answer) is the fault's, not a dirty
// baseline; one that failed and ended inside the baseline is the baseline's.
func TestInFlightAtBaselineEndBelongsToTheFault(t *testing.T) {
	b := steady(func(time.Duration, string) (int, string) { return 0, "" })
	for _, at := range []time.Duration{S(5) - 40*time.Millisecond, S(5) - 20*time.Millisecond, S(5) - 5*time.Millisecond} {
		b.Request(timeline.Request{Offset: at, Latency: 200 * time.Millisecond, Client: timeline.ClientGateway, Pod: "web-a",
			Via: timeline.ViaRoute, ErrText: "EOF", Err: timeline.ErrEOF})
	}
	r := judge(t, b)
	assert.Equal(t, verdict.Pass, status(t, r, verdict.CheckBaseline))
	er, _ := r.Check(verdict.CheckErrorRate + "/gateway")
	failed, _ := er.Figure("failed")
	assert.Equal(t, 3.0, failed.Value, "the fault window counts them")

	dirty := steady(func(time.Duration, string) (int, string) { return 0, "" })
	dirty.Request(timeline.Request{Offset: S(4), Latency: 200 * time.Millisecond, Client: timeline.ClientGateway, Pod: "web-a",
		Via: timeline.ViaRoute, ErrText: "EOF", Err: timeline.ErrEOF})
	assert.Equal(t, verdict.CannotJudge, status(t, judge(t, dirty), verdict.CheckBaseline))
}
