package markdown_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/markdown"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

func TestGolden(t *testing.T) {
	for _, app := range []string{"no-drain", "well-behaved"} {
		t.Run(app, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, markdown.Write(&b, reporttest.Restart(app, 100, 5*time.Second), markdown.Options{ReportLink: "report.html"}))
			reporttest.Golden(t, app+".md", b.Bytes())
		})
	}
}

func TestCellsAndLongEvidenceStayReadable(t *testing.T) {
	r := reporttest.Restart("no-drain", 100, 5*time.Second)
	c := verdict.Check{Name: "drain", Status: verdict.Fail, Summary: "a | b\nc", Diagnosis: &verdict.Diagnosis{Class: verdict.ClassPDBBlocksDrain}}
	for i := 0; i < 8; i++ {
		c.Diagnosis.Evidence = append(c.Diagnosis.Evidence, verdict.Evidence{Text: "refused"})
	}
	r.Verdict.Checks = append(r.Verdict.Checks, c)
	var b bytes.Buffer
	require.NoError(t, markdown.Write(&b, r, markdown.Options{}))
	s := b.String()
	assert.Contains(t, s, `| ❌ | `+"`drain`"+` | a \| b c | class 2: PodDisruptionBudget blocks the drain |`)
	assert.Contains(t, s, "… and 3 more")
	assert.NotContains(t, s, "Full report", "no link without one")
	assert.Equal(t, 5, strings.Count(s, "- refused"))
}
