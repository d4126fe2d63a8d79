package verdict_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

func TestRepeatedPhaseNamesAreJudgedTogether(t *testing.T) {
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.Phase("fault", S(1), S(2)).Phase("fault", S(3), S(4)).Phase("fault", S(3.5), S(4.5)) // the last overlaps
	every(0, 5, 0.01, func(at float64) { b.OK(S(at), "web-a") })
	b.Fail(S(3.6), 503, "", "web-a")
	r := judge(t, b, verdict.DefaultThresholds())
	f := check(t, r, "error-rate/fault")
	assert.Equal(t, 251.0, figure(t, f, "requests"), "1-2 s, 3-4.5 s, each request once, and the failure")
	assert.Equal(t, 1.0, figure(t, f, "failed"))
}

func TestTerminatingHeaderWithoutDeletionEvent(t *testing.T) {
	// The pod watch missed the deletion, but the pod said it was terminating.
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker", "10.244.1.2", 0, 0)
	every(0, 10, 0.01, func(at float64) { b.OK(S(at), []string{"web-a", "web-b"}[int(at*100+0.5)%2]) })
	b.Request(timeline.Request{Offset: S(5), Latency: time.Millisecond, Code: 503, Err: timeline.ErrHTTP5xx, Pod: "web-a", Terminating: true})
	r := judge(t, b, verdict.DefaultThresholds())
	sh := check(t, r, verdict.CheckGracefulShutdown)
	require.False(t, sh.Passed)
	assert.Equal(t, verdict.ClassNoGracefulShutdown, sh.Diagnosis.Class)
	assert.Contains(t, evidenceText(sh.Diagnosis), "web-a (node kind-worker): deletion requested at 5.000s, exit not observed, endpoint removal not observed")
	assert.True(t, check(t, r, verdict.CheckReadiness).Passed)
}

func TestNoEndpointEvents(t *testing.T) {
	b := tt.New()
	every(0, 5, 0.01, func(at float64) { b.OK(S(at), "web-a") })
	r := judge(t, b, verdict.DefaultThresholds())
	re := check(t, r, verdict.CheckReadyEndpoints)
	assert.False(t, re.Passed)
	assert.Equal(t, "no endpoint events: cannot judge", re.Summary)
	assert.Equal(t, []string{verdict.CheckReadyEndpoints}, failedNames(r))
}

func TestNewPodRefusingConnectionsIsCorrelated(t *testing.T) {
	// No readiness probe: the new pod is Ready before it listens, so the
	// first connections routed to it are refused.
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-new", "kind-worker2", "10.244.2.1", S(4), S(5))
	b.Load(0, S(10), 10*time.Millisecond, func(at time.Duration, p *timeline.PodLifecycle) (int, string) {
		if p.Pod == "web-new" && at < S(5.8) {
			return 0, tt.RefusedText
		}
		return 200, ""
	})
	r := judge(t, b, verdict.DefaultThresholds())
	rd := check(t, r, verdict.CheckReadiness)
	require.False(t, rd.Passed)
	assert.Equal(t, verdict.ClassNotReadyTraffic, rd.Diagnosis.Class)
	assert.Equal(t, 40.0, figure(t, rd, "failed_correlated_new_pod"))
	assert.Contains(t, evidenceText(rd.Diagnosis), "web-new (node kind-worker2, Ready at 5.000s): 40 failed from 5.010s to 5.790s (40 refused): 40 connection failures right after its endpoint became ready, before it served anything (attributed by correlation)")
	assert.True(t, check(t, r, verdict.CheckGracefulShutdown).Passed)
	assert.Equal(t, verdict.ClassNotReadyTraffic, check(t, r, verdict.CheckErrorRate).Diagnosis.Class)
}

func TestShutdownsAndAttributionsExported(t *testing.T) {
	s := abruptRun().Snapshot()
	sh := verdict.Shutdowns(&s, verdict.DefaultThresholds())
	require.Len(t, sh, 3)
	assert.Equal(t, "web-a", sh[0].Pod)
	assert.Equal(t, S(1.2), sh[0].EndpointLag())
	assert.True(t, sh[0].StoppedEarly)
	assert.Equal(t, S(7.2), sh[0].StoppedAt)
	assert.Equal(t, 28, sh[0].Errors)
	assert.Equal(t, 28, sh[0].ErrorKinds[timeline.ErrRefused])
}

func BenchmarkJudgeHourAt100rps(b *testing.B) {
	bl := tt.New()
	var pods []string
	for i := range 6 {
		pod := fmt.Sprintf("web-%d", i)
		pods = append(pods, pod)
		bl.PodStart(pod, "kind-worker", fmt.Sprintf("10.244.1.%d", i), 0, 0)
	}
	for i := range 20 {
		old := pods[i%6]
		nw := fmt.Sprintf("web-n%d", i)
		at := S(float64(60 + i*150))
		bl.PodStart(nw, "kind-worker2", fmt.Sprintf("10.244.2.%d", i), at, at+S(2))
		bl.PodStop(old, fmt.Sprintf("10.244.1.%d", i%6), at+S(3), at+S(4), at+S(3.1))
		pods[i%6] = nw
	}
	bl.Load(0, time.Hour, 10*time.Millisecond, tt.Alive)
	s := bl.Snapshot()
	th := verdict.DefaultThresholds()
	b.ReportAllocs()
	for b.Loop() {
		r := verdict.JudgeSnapshot(&s, th)
		if r.Passed() {
			b.Fatal("expected failures")
		}
	}
	b.ReportMetric(float64(len(s.Requests)), "requests")
}

func TestReadyPodRemovedBeforeServingIsNotSlow(t *testing.T) {
	// web-b is Ready at 2 s but deleted at 3 s before any request reached
	// it: too short to say it was slow.
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker", "10.244.1.2", S(1), S(2))
	b.PodStop("web-b", "10.244.1.2", S(3), S(3.1), S(3.2))
	every(0, 20, 0.01, func(at float64) { b.OK(S(at), "web-a") })
	r := judge(t, b, verdict.DefaultThresholds())
	rs := check(t, r, verdict.CheckReadyToServe)
	assert.True(t, rs.Passed)
	assert.Equal(t, 1.0, figure(t, rs, "pods_judged"))

	// A Ready pod that gets nothing for 18 s could not show whether it
	// serves: it is reported as idle, not failed (keep-alive clients stay
	// on older pods; a well-behaved app must pass).
	b = tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker", "10.244.1.2", S(1), S(2))
	every(0, 20, 0.01, func(at float64) { b.OK(S(at), "web-a") })
	rs = check(t, judge(t, b, verdict.DefaultThresholds()), verdict.CheckReadyToServe)
	require.True(t, rs.Passed)
	assert.Equal(t, 1.0, figure(t, rs, "pods_idle_after_ready"))
	assert.Contains(t, rs.Summary, "1 pod got no traffic for up to 17.99 s after Ready")
}

func TestGapEvidenceNamesOnlyTheDescent(t *testing.T) {
	// web-a is swapped for web-b (count stays 1), later web-b goes and the
	// count drops to 0: only web-b made the gap.
	b := tt.New()
	b.PodStart("web-a", "kind-worker", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "kind-worker", "10.244.1.2", S(1), S(2))
	b.PodStop("web-a", "10.244.1.1", S(2), S(2), S(2.5))
	b.PodStop("web-b", "10.244.1.2", S(8), S(8.1), S(8.2))
	b.PodStart("web-c", "kind-worker2", "10.244.2.1", S(8), S(9))
	b.Load(0, S(12), 10*time.Millisecond, tt.Alive)
	re := check(t, judge(t, b, verdict.DefaultThresholds()), verdict.CheckReadyEndpoints)
	require.False(t, re.Passed)
	ev := evidenceText(re.Diagnosis)
	assert.Contains(t, ev, "web-b (node kind-worker): endpoint not ready at 8.100s")
	assert.NotContains(t, ev, "web-a")
}

func TestPodStartsExported(t *testing.T) {
	s := cleanRun().Snapshot()
	starts, never := verdict.PodStarts(&s, verdict.DefaultThresholds())
	assert.Empty(t, never)
	require.Len(t, starts, 6)
	assert.Equal(t, "web-d", starts[3].Pod)
	assert.Equal(t, S(7), starts[3].Ready.At)
	assert.True(t, starts[3].Judged)
	assert.Less(t, starts[3].Delay, 50*time.Millisecond)
	assert.Equal(t, 0, starts[3].Errors)
}
