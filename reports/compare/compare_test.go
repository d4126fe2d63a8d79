package compare_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/compare"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

func TestAnIdenticalRunIsNoRegression(t *testing.T) {
	r := reporttest.Restart("no-drain", 50, 3*time.Second)
	res := compare.Compare(r, r, compare.DefaultRules)
	assert.False(t, res.Regressed(), res.String())
	assert.Contains(t, res.String(), "no regression")
}

func TestAnInjectedRegressionIsFlagged(t *testing.T) {
	base := reporttest.Restart("well-behaved", 50, 3*time.Second)
	cur := reporttest.Restart("no-drain", 50, 3*time.Second)
	res := compare.Compare(base, cur, compare.DefaultRules)
	require.True(t, res.Regressed())
	regs := res.Regressions()
	assert.Contains(t, regs, "graceful-shutdown: pass before, fail now")
	found := false
	for _, d := range res.Deltas {
		if d.Check == "error-rate/gateway" && d.Figure == "error_rate" {
			found = true
			assert.True(t, d.Worse, "the error rate rose from %v to %v", d.Base, d.Current)
			assert.Equal(t, "rolling-restart", d.Scenario)
		}
	}
	assert.True(t, found)
	assert.Contains(t, res.String(), "REGRESSED")
}

// A figure's noise allowance: a small rise is noise, a large one is not.
func TestRules(t *testing.T) {
	rules := append(compare.Rules{}, compare.DefaultRules...)
	r, ok := rules.Find("error_rate_fault")
	require.True(t, ok, "a prefix rule")
	assert.Equal(t, "error_rate*", r.Figure)
	worse, _ := r.Worse(0.001, 0.0012)
	assert.False(t, worse, "0.02 points is noise")
	worse, why := r.Worse(0.001, 0.01)
	assert.True(t, worse)
	assert.Contains(t, why, "up 0.009")

	up, _ := rules.Find("upgrade_total")
	worse, _ = up.Worse(100, 120)
	assert.False(t, worse, "20 %% slower is within 25 %%")
	worse, _ = up.Worse(100, 130)
	assert.True(t, worse)

	require.NoError(t, rules.Set("upgrade_total=50%"))
	require.NoError(t, rules.Set("longest_drain=1m"))
	require.NoError(t, rules.Set("new_figure=3"))
	up, _ = rules.Find("upgrade_total")
	assert.Equal(t, 0.5, up.Rel)
	ld, _ := rules.Find("longest_drain")
	assert.Equal(t, 60.0, ld.Abs)
	nf, ok := rules.Find("new_figure")
	assert.True(t, ok)
	assert.Equal(t, 3.0, nf.Abs)
	for _, bad := range []string{"x", "x=", "x=-1", "x=abc%", "x=2q"} {
		assert.Error(t, rules.Set(bad), bad)
	}
	_, ok = rules.Find("achieved_rate_gateway_fault")
	assert.False(t, ok, "the load generator's own figures are never judged")
}

func history(n int, app string) []*record.Record {
	var out []*record.Record
	for i := 0; i < n; i++ {
		r := reporttest.Restart(app, 50, 3*time.Second)
		r.Run = r.Run + "-" + string(rune('a'+i))
		r.Started = reporttest.Start.Add(time.Duration(i) * 24 * time.Hour)
		r.Name = "nightly"
		out = append(out, r)
	}
	return out
}

func TestJudgeAgainstHistory(t *testing.T) {
	past := history(6, "well-behaved")
	good := past[len(past)-1]
	h := compare.JudgeHistory(past, good, compare.HistoryOptions{})
	assert.Empty(t, h.CannotJudge)
	assert.False(t, h.Regressed(), h.String())
	assert.Equal(t, 5, h.Runs)

	bad := reporttest.Restart("no-drain", 50, 3*time.Second)
	bad.Name, bad.Run, bad.Started = "nightly", "tonight", reporttest.Start.Add(30*24*time.Hour)
	h = compare.JudgeHistory(append(past, bad), bad, compare.HistoryOptions{Last: 4, MinRuns: 3})
	require.True(t, h.Regressed(), h.String())
	assert.Equal(t, 4, h.Runs)
	s := h.String()
	assert.Contains(t, s, "graceful-shutdown: fail now, passed in each of the last 4 runs")
	assert.Contains(t, s, "error_rate")
	assert.Contains(t, s, "95th percentile of 4 runs")

	h = compare.JudgeHistory(past[:2], bad, compare.HistoryOptions{})
	assert.Contains(t, h.CannotJudge, "2 earlier runs")
	assert.False(t, h.Regressed())
}

func TestTrendSeries(t *testing.T) {
	series := compare.Trend(history(3, "no-drain"))
	var er *compare.Series
	for i := range series {
		if series[i].Check == "error-rate/gateway" && series[i].Figure == "error_rate" {
			er = &series[i]
		}
	}
	require.NotNil(t, er)
	assert.True(t, er.Judged)
	assert.Len(t, er.Points, 3)
	assert.Equal(t, verdict.UnitRatio, er.Unit)
	assert.True(t, er.Points[0].At.Before(er.Points[2].At), "oldest first")
	assert.InDelta(t, 50.0, compare.Percentile([]float64{0, 100}, 50), 1e-9)
}
