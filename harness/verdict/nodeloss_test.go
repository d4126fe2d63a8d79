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

// The checks of scenarios/nodeloss (abrupt mode), repeated here: the
// verdict package does not import scenarios.
var nodeLossChecks = []string{"load", "baseline", "observation", "steps", "node-loss",
	"longest-outage", "ready-endpoints", "readiness"}

// nodeLoss simulates the rehearsal of a node lost without a drain: three
// pods placed on nodes as given, a warm-up (0-3 s) and a baseline (3-8 s),
// node "kind-worker" powered off at 8 s, its pods evicted when their
// toleration runs out and replaced on "kind-worker2"; the fault phase lasts
// until the replacements have served a while, then 5 s of recovery. Both
// client kinds at rate requests/s.
func nodeLoss(t *testing.T, placement []string, toleration time.Duration, headers bool, rate int) *timeline.Timeline {
	t.Helper()
	app := wellBehaved
	app.Headers = headers
	w := tt.NewWorld()
	for i, node := range placement {
		w.Pod(fmt.Sprintf("web-%d", i+1), node, fmt.Sprintf("10.244.%d.%d", map[string]int{"kind-worker": 1, "kind-worker2": 2}[node], i+10), -S(30), app)
	}
	_, repl := w.NodeLoss(S(8), "kind-worker", toleration, "kind-worker2")
	faultEnd := S(8) + w.NodeGrace + toleration + S(10)
	if len(repl) == 0 {
		faultEnd = S(8) + w.NodeGrace + S(10)
	}
	end := faultEnd + S(5)
	w.Phase(timeline.PhaseWarmup, 0, S(3)).Phase(timeline.PhaseBaseline, S(3), S(8)).
		Phase(timeline.PhaseFault, S(8), faultEnd).Phase(timeline.PhaseRecovery, faultEnd, end)
	clients := []tt.Client{{Kind: timeline.ClientGateway, Rate: rate, To: end}, {Kind: timeline.ClientService, Rate: rate, To: end}}
	tl := w.Run(clients...)
	for _, c := range clients {
		tl.SetMeta(verdict.RateMetaKey(c.Kind), fmt.Sprint(c.Rate))
	}
	return tl
}

func judgeNodeLoss(t *testing.T, tl *timeline.Timeline) verdict.Report {
	t.Helper()
	r := verdict.Judge(tl, verdict.DefaultThresholds(), nodeLossChecks...)
	t.Logf("report:\n%s%s", r, r.Explain())
	return r
}

// A well-spread app whose pods tolerate an unreachable node for 30 s keeps
// serving from its other node and has its pods back within two minutes: it
// passes, although the requests sent to the lost node's pods before
// Kubernetes noticed failed (they are accounted to the loss, named, and
// no pod setting could have saved them). With or without headers.
func TestNodeLossWellSpreadPasses(t *testing.T) {
	for _, headers := range []bool{true, false} {
		t.Run(fmt.Sprintf("headers=%t", headers), func(t *testing.T) {
			tl := nodeLoss(t, []string{"kind-worker", "kind-worker2", "kind-worker"}, 30*time.Second, headers, 100)
			r := judgeNodeLoss(t, tl)
			require.Equal(t, verdict.Pass, r.Outcome, r.Reason)
			c, ok := r.Check(verdict.CheckNodeLoss)
			require.True(t, ok)
			for _, k := range bothKind {
				lost, _ := c.Figure("lost_to_node_" + k.String())
				assert.Greater(t, lost.Value, 100.0, "%s requests to the dead pods before they left the endpoints", k)
				other, _ := c.Figure("other_failed_" + k.String())
				assert.Zero(t, other.Value, "%s: every failure is the loss's", k)
			}
			notReady, _ := c.Figure("time_to_node_not_ready")
			assert.InDelta(t, 50, notReady.Value, 0.5)
			back, _ := c.Figure("time_to_serving_again")
			assert.InDelta(t, 50+30+3, back.Value, 3, "NotReady, the toleration, the replacement's start")
			assert.Contains(t, c.Summary, "no pod setting saves these")
		})
	}
}

// Every replica on the lost node: nothing serves from the power-off until
// replacements start elsewhere. Fails with class 10 and the spread fix,
// with or without headers.
func TestNodeLossAllOnOneNodeFailsWithSpreadFix(t *testing.T) {
	for _, headers := range []bool{true, false} {
		t.Run(fmt.Sprintf("headers=%t", headers), func(t *testing.T) {
			tl := nodeLoss(t, []string{"kind-worker", "kind-worker", "kind-worker"}, 30*time.Second, headers, 100)
			r := judgeNodeLoss(t, tl)
			require.Equal(t, verdict.Fail, r.Outcome, r.Reason)
			c, _ := r.Check(verdict.CheckNodeLoss)
			require.Equal(t, verdict.Fail, c.Status, c.Summary)
			require.NotNil(t, c.Diagnosis)
			assert.Equal(t, verdict.ClassZeroReady, c.Diagnosis.Class)
			assert.Contains(t, c.Diagnosis.Fix, "whenUnsatisfiable DoNotSchedule")
			assert.Contains(t, c.Diagnosis.Evidence[0].Text, "3 pods of the app's 3 ready pods ran on node kind-worker")
		})
	}
}

// Pods that keep Kubernetes' default toleration (300 s) leave the app short
// of pods for six minutes: the check fails naming the toleration.
func TestNodeLossDefaultTolerationIsTooSlow(t *testing.T) {
	tl := nodeLoss(t, []string{"kind-worker", "kind-worker2", "kind-worker"}, 300*time.Second, true, 20)
	tl.AddEvent(timeline.Event{Offset: S(8), Kind: timeline.EvNote, Name: "unreachable-toleration", Pod: "web-1", Value: 300 * time.Second})
	r := judgeNodeLoss(t, tl)
	require.Equal(t, verdict.Fail, r.Outcome, r.Reason)
	c, _ := r.Check(verdict.CheckNodeLoss)
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Contains(t, c.Diagnosis.Title, "replaced late")
	assert.Contains(t, c.Diagnosis.Fix, "300 s (Kubernetes' default)")
	assert.Contains(t, c.Diagnosis.Fix, "tolerationSeconds: 30")
	assert.Contains(t, c.Diagnosis.Evidence[0].Text, "after it was NotReady: their toleration")
}
