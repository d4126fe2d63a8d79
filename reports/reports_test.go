package reports_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/reports"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

func TestWriteLeavesEveryReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r := reporttest.Restart("no-drain", 50, 3*time.Second)
	files, err := reports.Write(dir, r)
	require.NoError(t, err)
	for _, name := range []string{"run.json", "verdict.txt", "report.html", "junit.xml", "summary.md"} {
		assert.FileExists(t, filepath.Join(dir, name))
	}
	assert.Len(t, files.List(), 5)
	back, err := record.Read(files.Record)
	require.NoError(t, err)
	assert.Equal(t, reports.Text(r), reports.Text(back), "the text of a saved run is the same")
	txt, err := os.ReadFile(files.Text)
	require.NoError(t, err)
	assert.Contains(t, string(txt), "load gateway: sent")
	assert.Contains(t, string(txt), "FAIL graceful-shutdown")
	assert.Contains(t, string(txt), "fix: add a preStop wait")
}
