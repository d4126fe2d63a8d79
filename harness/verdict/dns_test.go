package verdict_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// dnsRun is a DNS rehearsal: three pods serving, resolution broken from
// 7 s to 17 s (the fault phase is 5-20 s, recovery 20-25 s). fail decides
// what a request sent at an offset meets: 0 for a success, or the status
// the app answers and what it says went wrong downstream.
func dnsRun(fail func(at time.Duration) (int, string)) *tt.Builder {
	b := tt.New()
	for i, pod := range []string{"web-1", "web-2", "web-3"} {
		b.PodStart(pod, "kind-worker", "10.244.1."+string(rune('1'+i)), 0, S(0.5))
	}
	b.Phase(timeline.PhaseBaseline, 0, S(5)).Phase(timeline.PhaseFault, S(5), S(20)).Phase(timeline.PhaseRecovery, S(20), S(25))
	b.Event(timeline.Event{Offset: S(7), Kind: timeline.EvFaultInjected, Name: "coredns-outage", Detail: "scale kube-system/coredns from 2 to 0 replicas"})
	b.Event(timeline.Event{Offset: S(17), Kind: timeline.EvFaultReverted, Name: "coredns-outage", Detail: "scale kube-system/coredns from 2 to 0 replicas"})
	b.TL.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), "100")
	pods := []string{"web-1", "web-2", "web-3"}
	n := 0
	for at := time.Duration(0); at < S(25); at += 10 * time.Millisecond {
		pod := pods[n%3]
		n++
		r := timeline.Request{Offset: at, Latency: 2 * time.Millisecond, Code: 200, Pod: pod, Client: timeline.ClientGateway, Via: timeline.ViaRoute}
		if code, down := fail(at); code != 0 {
			r.Code, r.Err, r.ErrText, r.Downstream = code, timeline.ErrHTTP5xx, "502 Bad Gateway", down
		}
		b.Request(r)
	}
	return b
}

func judgeDNS(t *testing.T, b *tt.Builder) verdict.Check {
	t.Helper()
	rep := verdict.Judge(b.TL, verdict.DefaultThresholds(), verdict.CheckLoad, verdict.CheckBaseline, verdict.CheckErrorRate, verdict.CheckDNS)
	c, ok := rep.Check(verdict.CheckDNS)
	require.True(t, ok)
	return c
}

func TestDNSResilientAppPasses(t *testing.T) {
	c := judgeDNS(t, dnsRun(func(time.Duration) (int, string) { return 0, "" }))
	assert.Equal(t, verdict.Pass, c.Status, c.Summary)
	assert.Contains(t, c.Summary, "no request failed while name resolution was broken for 10 s")
	f, _ := c.Figure("broken_for")
	assert.Equal(t, 10.0, f.Value)
}

func TestDNSFragileAppFailsWithClass6(t *testing.T) {
	// Every request fails while resolution is broken, and for 1.5 s after.
	b := dnsRun(func(at time.Duration) (int, string) {
		if at >= S(7) && at < S(18.5) {
			return 502, "dns"
		}
		return 0, ""
	})
	c := judgeDNS(t, b)
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	require.NotNil(t, c.Diagnosis)
	assert.Equal(t, verdict.ClassDNS, c.Diagnosis.Class)
	rec, _ := c.Figure("recovery_after_repair")
	assert.InDelta(t, 1.49, rec.Value, 0.02, "the last failure came about 1.5 s after the repair")
	said, _ := c.Figure("failed_said_dns")
	assert.Equal(t, 1150.0, said.Value)
	text := strings.Join(evidenceTexts(c.Diagnosis), "\n")
	assert.Contains(t, text, "the app said a name did not resolve for 1150 of them")
	assert.Contains(t, text, "no pod went NotReady meanwhile")
	assert.Contains(t, c.Diagnosis.Fix, "serve stale")
}

// An app that does not say why it failed is judged by when it failed.
func TestDNSFailuresWithoutTheAppsWordAreTheFaults(t *testing.T) {
	c := judgeDNS(t, dnsRun(func(at time.Duration) (int, string) {
		if at >= S(8) && at < S(16) {
			return 500, ""
		}
		return 0, ""
	}))
	require.Equal(t, verdict.Fail, c.Status)
	assert.Contains(t, evidenceTexts(c.Diagnosis)[0], "the app did not say why")
}

// The other checks tell the same story: failures nothing else explains,
// while resolution was broken, are name resolution's too; the same
// failures in a rehearsal that broke nothing stay unexplained.
func TestSilentFailuresWhileDNSIsBrokenAreBlamedOnIt(t *testing.T) {
	silent := func(at time.Duration) (int, string) {
		if at >= S(8) && at < S(16) {
			return 500, ""
		}
		return 0, ""
	}
	th := verdict.DefaultThresholds()
	rep := verdict.Judge(dnsRun(silent).TL, th, verdict.CheckErrorRate, verdict.CheckDNS)
	c, ok := rep.Check(verdict.CheckErrorRate + "/gateway")
	require.True(t, ok)
	require.Equal(t, verdict.Fail, c.Status)
	assert.Equal(t, verdict.ClassDNS, c.Diagnosis.Class, c.Diagnosis.Title)

	rep = verdict.Judge(dnsRun(silent).TL, th, verdict.CheckErrorRate)
	c, _ = rep.Check(verdict.CheckErrorRate + "/gateway")
	require.Equal(t, verdict.Fail, c.Status)
	assert.NotEqual(t, verdict.ClassDNS, c.Diagnosis.Class, "without the dns check nothing says resolution was broken")
}

func TestDNSWithoutAFaultCannotJudge(t *testing.T) {
	b := tt.New()
	b.Phase(timeline.PhaseBaseline, 0, S(5)).Phase(timeline.PhaseFault, S(5), S(20))
	rep := verdict.Judge(b.TL, verdict.DefaultThresholds(), verdict.CheckDNS)
	c, _ := rep.Check(verdict.CheckDNS)
	assert.Equal(t, verdict.CannotJudge, c.Status)
}

func evidenceTexts(d *verdict.Diagnosis) []string {
	var out []string
	for _, e := range d.Evidence {
		out = append(out, e.Text)
	}
	return out
}

// The rehearsal asks, right after the baseline, whether it can be judged
// at all: a clean baseline with no fault phase yet is not "cannot judge".
func TestTheGateBeforeTheFault(t *testing.T) {
	b := dnsRun(func(time.Duration) (int, string) { return 0, "" })
	cut := tt.New()
	snap := b.Snapshot()
	for _, e := range snap.Events {
		if e.Offset < S(5) && e.Kind != timeline.EvFaultInjected {
			cut.Event(e)
		}
	}
	cut.TL.EndPhaseAt(timeline.PhaseBaseline, S(5))
	for _, r := range snap.Requests {
		if r.Offset < S(5) {
			cut.Request(r)
		}
	}
	cut.TL.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), "100")
	rep := verdict.Judge(cut.TL, verdict.DefaultThresholds(), verdict.CheckLoad, verdict.CheckBaseline)
	assert.NotEqual(t, verdict.CannotJudge, rep.Outcome, rep.String())

	dirty := tt.New()
	for _, e := range cut.Snapshot().Events {
		dirty.Event(e)
	}
	for i, r := range cut.Snapshot().Requests {
		if i%20 == 0 {
			r.Code, r.Err = 500, timeline.ErrHTTP5xx
		}
		dirty.Request(r)
	}
	dirty.TL.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), "100")
	rep = verdict.Judge(dirty.TL, verdict.DefaultThresholds(), verdict.CheckLoad, verdict.CheckBaseline)
	assert.Equal(t, verdict.CannotJudge, rep.Outcome)
	assert.Contains(t, rep.Reason, "baseline not clean")
}

// A rehearsal that stopped after its baseline (its gate could not judge it)
// never passes: with no fault on the timeline, the verdict cannot judge and
// says why, even though every check it could run passed.
func TestNoFaultNeverPasses(t *testing.T) {
	b := tt.New().Phase(timeline.PhaseWarmup, 0, S(2)).Phase(timeline.PhaseBaseline, S(2), S(7))
	b.PodStart("web-1", "w1", "10.0.0.1", -S(10), -S(9))
	for at := S(0); at < S(7); at += 10 * time.Millisecond {
		b.OK(at, "web-1")
	}
	b.Event(timeline.Event{Offset: S(7), Kind: timeline.EvNote, Name: verdict.NoteScenariosNotRun,
		Detail: "scenarios not run: load: load generator starved"})
	rep := verdict.Judge(b.TL, verdict.DefaultThresholds())
	assert.Equal(t, verdict.CannotJudge, rep.Outcome, rep.String())
	assert.Contains(t, rep.Reason, "load generator starved")
	rep = verdict.Judge(b.TL, verdict.DefaultThresholds(), verdict.CheckLoad, verdict.CheckBaseline)
	assert.NotEqual(t, verdict.CannotJudge, rep.Outcome, "the gate's own checks need no fault: %s", rep.String())
}

// The cluster's DNS watched as a second target: down with the outage, the
// dns check says when and measures recovery from CoreDNS serving again; up
// throughout (packets dropped on the way), it says so, pointing elsewhere.
func TestDNSCheckTellsWhatCoreDNSDid(t *testing.T) {
	failing := func(at time.Duration) (int, string) {
		if at >= S(7) && at < S(17.5) {
			return 502, "dns"
		}
		return 0, ""
	}
	b := dnsRun(failing)
	b.Event(timeline.Event{Offset: 0, Kind: timeline.EvClusterDNS, Name: "2", Detail: timeline.InitialState + "kube-system/kube-dns: 2 ready endpoints"})
	b.Event(timeline.Event{Offset: S(7.5), Kind: timeline.EvClusterDNS, Name: "0"})
	b.Event(timeline.Event{Offset: S(16.5), Kind: timeline.EvClusterDNS, Name: "1"})
	c := judgeDNS(t, b)
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	low, ok := c.Figure("coredns_ready_lowest")
	require.True(t, ok)
	assert.Zero(t, low.Value)
	rec, ok := c.Figure("recovery_after_coredns_ready")
	require.True(t, ok)
	assert.InDelta(t, 1.0, rec.Value, 0.02, "the last failure 1 s after CoreDNS was ready again")
	assert.Contains(t, strings.Join(evidenceTexts(c.Diagnosis), "\n"), "had no ready endpoint from 7.500s to 16.500s")

	b = dnsRun(failing)
	b.Event(timeline.Event{Offset: 0, Kind: timeline.EvClusterDNS, Name: "2", Detail: timeline.InitialState + "kube-system/kube-dns: 2 ready endpoints"})
	c = judgeDNS(t, b)
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Contains(t, strings.Join(evidenceTexts(c.Diagnosis), "\n"), "kept at least 2 ready endpoints meanwhile: it was up")
}
