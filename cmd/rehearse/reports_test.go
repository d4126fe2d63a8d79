package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

// saved writes a simulated rehearsal's record into its own directory.
func saved(t *testing.T, dir, app string, started time.Time) string {
	t.Helper()
	r := reporttest.Restart(app, 50, 3*time.Second)
	r.Started, r.Run = started, r.Run+started.Format("-0102-150405")
	r.Ended = started.Add(r.Duration())
	d := filepath.Join(dir, r.Run)
	require.NoError(t, os.MkdirAll(d, 0o755))
	require.NoError(t, record.Write(filepath.Join(d, record.FileName), r))
	return filepath.Join(d, record.FileName)
}

func TestJudgeAndReportASavedRun(t *testing.T) {
	dir := t.TempDir()
	run := saved(t, dir, "no-drain", reporttest.Start)

	r := rehearse(t, "judge", run)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stdout, "class 8")
	assert.Contains(t, r.stdout, "rehearsal FAILED")

	// Loose enough thresholds pass the same timeline; the original stays.
	out := filepath.Join(dir, "lenient")
	r = rehearse(t, "judge", run, "--checks", "load,baseline,error-rate", "--threshold", "max-error-rate=20%", "--out", out)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "rehearsal passed")
	again, err := record.Read(out)
	require.NoError(t, err)
	assert.Equal(t, 0.2, again.Thresholds.MaxErrorRate)
	orig, err := record.Read(run)
	require.NoError(t, err)
	assert.Equal(t, 0.001, orig.Thresholds.MaxErrorRate)

	r = rehearse(t, "judge", run, "--threshold", "max-outage=forever")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "a duration")
	r = rehearse(t, "judge", run, "--out", filepath.Dir(run))
	assert.Equal(t, 2, r.code, "the record's own directory is refused")

	r = rehearse(t, "report", run)
	assert.Equal(t, 0, r.code, r.stderr)
	for _, f := range []string{"report.html", "junit.xml", "summary.md", "verdict.txt"} {
		assert.FileExists(t, filepath.Join(filepath.Dir(run), f))
		assert.Contains(t, r.stdout, f)
	}
}

func TestCompareFlagsARegression(t *testing.T) {
	dir := t.TempDir()
	good := saved(t, dir, "well-behaved", reporttest.Start)
	bad := saved(t, dir, "no-drain", reporttest.Start.Add(24*time.Hour))

	r := rehearse(t, "compare", good, good)
	assert.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "no regression")

	r = rehearse(t, "compare", good, bad)
	assert.Equal(t, 1, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "REGRESSED")
	assert.Contains(t, r.stdout, "graceful-shutdown: pass before, fail now")
	assert.Contains(t, r.stdout, "error_rate")
}

func TestTrendJudgesTheLatestRun(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 5; i++ {
		saved(t, dir, "well-behaved", reporttest.Start.Add(time.Duration(i)*24*time.Hour))
	}
	r := rehearse(t, "trend", dir, "--judge-latest")
	assert.Equal(t, 3, r.code, "4 earlier runs are too few: %s", r.stdout)
	assert.Contains(t, r.stdout, "CANNOT JUDGE")

	// The same rehearsal name, a regression on the sixth night.
	bad := reporttest.Restart("no-drain", 50, 3*time.Second)
	bad.Name, bad.Run = "rolling-restart/well-behaved", "night-6"
	bad.Started = reporttest.Start.Add(5 * 24 * time.Hour)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "night-6"), 0o755))
	require.NoError(t, record.Write(filepath.Join(dir, "night-6", record.FileName), bad))
	r = rehearse(t, "trend", dir, "--judge-latest", "--out", filepath.Join(dir, "t.html"))
	assert.Equal(t, 1, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "REGRESSED")
	assert.Contains(t, r.stdout, "passed in each of the last 5 runs")
	assert.FileExists(t, filepath.Join(dir, "t.html"))
}
