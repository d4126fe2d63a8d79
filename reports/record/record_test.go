package record_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

func TestRoundTrip(t *testing.T) {
	r := reporttest.Restart("no-drain", 50, 3*time.Second)
	dir := t.TempDir()
	path := filepath.Join(dir, record.FileName)
	require.NoError(t, record.Write(path, r))

	got, err := record.Read(dir) // a results directory works too
	require.NoError(t, err)
	assert.Equal(t, record.Schema, got.Schema)
	assert.Equal(t, record.SchemaVersion, got.SchemaVersion)
	assert.Equal(t, r.Name, got.Name)
	assert.Equal(t, r.Scenarios, got.Scenarios)
	assert.Equal(t, r.Thresholds, got.Thresholds)
	assert.Equal(t, r.Verdict, got.Verdict)
	assert.Equal(t, r.Loads, got.Loads)
	assert.Equal(t, r.Target, got.Target)
	wantReq, wantEv := r.Timeline.Len()
	gotReq, gotEv := got.Timeline.Len()
	assert.Equal(t, [2]int{wantReq, wantEv}, [2]int{gotReq, gotEv})

	// A saved run judged again with the same thresholds says the same.
	assert.Equal(t, r.Verdict, got.Rejudge(got.Thresholds).Verdict)
}

func TestTheSavedFormIsReadable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, reporttest.Restart("well-behaved", 20, time.Second).Encode(&b))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &doc))
	for _, k := range []string{"schema", "schema_version", "tool", "run", "name", "started", "target", "app", "plan", "scenarios", "thresholds", "checks", "loads", "verdict", "timeline"} {
		assert.Contains(t, doc, k)
	}
	th := doc["thresholds"].(map[string]any)
	assert.Equal(t, 1e9, th["max_outage_ns"], "durations are integer nanoseconds, named so")
	v := doc["verdict"].(map[string]any)
	assert.Equal(t, "pass", v["outcome"])
	tl := doc["timeline"].([]any)
	assert.Equal(t, "timeline", tl[0].(map[string]any)["type"], "the timeline's header line first")
}

func TestRejudgeWithOtherThresholds(t *testing.T) {
	r := reporttest.Restart("no-drain", 50, 3*time.Second)
	require.Equal(t, verdict.Fail, r.Verdict.Outcome)
	th := r.Thresholds
	th.MaxErrorRate = 0.5
	again := r.Rejudge(th, verdict.CheckLoad, verdict.CheckBaseline, verdict.CheckErrorRate)
	assert.Equal(t, verdict.Pass, again.Verdict.Outcome)
	assert.Equal(t, verdict.Fail, r.Verdict.Outcome, "the record itself is unchanged")
	assert.Equal(t, 0.001, r.Thresholds.MaxErrorRate)
}

func TestBadRecordsAreRefusedWithTheReason(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"not json":       "hello",
		"other document": `{"schema":"something.else","schema_version":1}`,
		"future version": `{"schema":"rehearse.run","schema_version":99}`,
		"no timeline":    `{"schema":"rehearse.run","schema_version":1}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
			_, err := record.Read(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p)
		})
	}
	_, err := record.Read(filepath.Join(dir, "missing.json"))
	assert.Error(t, err)
	assert.Error(t, (&record.Record{}).Encode(&bytes.Buffer{}), "a record without a timeline is not written")
}

func TestThisTool(t *testing.T) {
	tool := record.ThisTool()
	assert.Equal(t, "rehearse", tool.Name)
	assert.NotEmpty(t, tool.Version)
	assert.True(t, strings.HasPrefix(tool.Go, "go"))
}
