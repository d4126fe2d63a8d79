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

// upgradeRun adds an upgrade of two nodes, one batch each, to a steady run:
// node w1 drains (one refusal by a budget, lifted), then w2, whose drain
// ends with err ("" when it emptied).
func upgradeRun(w2Err string) *tt.Builder {
	b := steady(func(time.Duration, string) (int, string) { return 0, "" })
	ev := func(at time.Duration, k timeline.EventKind, node, name, detail string) {
		b.Event(timeline.Event{Offset: at, Kind: k, Node: node, Name: name, Detail: detail})
	}
	ev(S(5), timeline.EvActionStart, "", "add 1 surge node", "")
	ev(S(5), timeline.EvNodeRequested, "k-surge1", "", "surge node from image new")
	ev(S(6), timeline.EvNodeReady, "k-surge1", "", "Ready")
	ev(S(6), timeline.EvActionEnd, "", "add 1 surge node", "")
	ev(S(6), timeline.EvBatchStarted, "", "batch 1", "w1")
	ev(S(6), timeline.EvDrainStarted, "w1", "", "")
	b.Event(timeline.Event{Offset: S(6), Kind: timeline.EvEvictionRequested, Node: "w1", Pod: "web-a"})
	b.Event(timeline.Event{Offset: S(6), Kind: timeline.EvEvictionRefused, Node: "w1", Pod: "web-a", Name: "app/web-pdb", Detail: "needs 2"})
	ev(S(8), timeline.EvDrainFinished, "w1", "", "")
	ev(S(8), timeline.EvNodeRequested, "w1", "", "reimage from image new")
	ev(S(9), timeline.EvNodeReady, "w1", "", "Ready")
	ev(S(9), timeline.EvBatchFinished, "", "batch 1", "")
	ev(S(9), timeline.EvBatchStarted, "", "batch 2", "w2")
	ev(S(9), timeline.EvDrainStarted, "w2", "", "")
	b.Event(timeline.Event{Offset: S(9), Kind: timeline.EvEvictionRequested, Node: "w2", Pod: "web-b"})
	if w2Err != "" {
		for at := S(9); at < S(12); at += S(1) {
			b.Event(timeline.Event{Offset: at, Kind: timeline.EvEvictionRefused, Node: "w2", Pod: "web-b", Name: "app/web-pdb", Detail: "needs 3"})
		}
	}
	ev(S(12), timeline.EvDrainFinished, "w2", "", w2Err)
	ev(S(12), timeline.EvBatchFinished, "", "batch 2", w2Err)
	ev(S(13), timeline.EvActionEnd, "", "upgrade 2 nodes", "")
	return b
}

func TestUpgradeFiguresAndExtrapolation(t *testing.T) {
	r := verdict.Judge(upgradeRun("").TL, verdict.DefaultThresholds(), verdict.CheckDrain, verdict.CheckUpgrade)
	t.Logf("%s%s", r, r.Explain())
	d, _ := r.Check(verdict.CheckDrain)
	assert.Equal(t, verdict.Pass, d.Status, d.Summary)
	assert.Contains(t, d.Summary, "1 refusal by a PodDisruptionBudget until replacements were ready")
	u, ok := r.Check(verdict.CheckUpgrade)
	require.True(t, ok)
	assert.Equal(t, verdict.Pass, u.Status)
	total, _ := u.Figure("upgrade_total")
	assert.InDelta(t, 8, total.Value, 0.01, "first step start to last step end")
	mean, _ := u.Figure("batch_mean")
	assert.InDelta(t, 3, mean.Value, 0.01)
	one, _ := u.Figure("extrapolated_40_nodes_surge_1")
	assert.InDelta(t, 2+40*3, one.Value, 0.01, "outside batches + 40 batches")
	third, _ := u.Figure("extrapolated_40_nodes_surge_14")
	assert.InDelta(t, 2+3*3, third.Value, 0.01)
	details := strings.Join(u.Details, "\n")
	for _, want := range []string{"node w1: drain 2 s, 1 eviction, 1 refusal", "node w1 (reimage from image new): requested -> Ready 1 s",
		"batch 2 (w2): 3 s", "formula: total ~ 2 s + ceil(40 / surge nodes) x 3 s per batch"} {
		assert.Contains(t, details, want)
	}
	assert.Contains(t, r.Explain(), "formula:", "the figures are printed whatever the status")
}

func TestBlockedDrainIsClassTwoNamingTheBudget(t *testing.T) {
	r := verdict.Judge(upgradeRun("drain of node w2 did not finish within 1m0s: PodDisruptionBudget app/web-pdb refused to evict web-b").TL,
		verdict.DefaultThresholds(), verdict.CheckDrain)
	d, _ := r.Check(verdict.CheckDrain)
	require.Equal(t, verdict.Fail, d.Status, d.Summary)
	require.NotNil(t, d.Diagnosis)
	assert.Equal(t, verdict.ClassPDBBlocksDrain, d.Diagnosis.Class)
	assert.Contains(t, d.Diagnosis.Fix, "app/web-pdb (pods web-b)")
	assert.Contains(t, d.Diagnosis.Fix, "maxUnavailable: 1")
	require.Len(t, d.Diagnosis.Evidence, 1)
	assert.Equal(t, "w2", d.Diagnosis.Evidence[0].Node)
	assert.Contains(t, d.Diagnosis.Evidence[0].Text, "refused 3 evictions of pod web-b on node w2")
}

func TestNoDrainCannotJudge(t *testing.T) {
	r := verdict.Judge(steady(func(time.Duration, string) (int, string) { return 0, "" }).TL, verdict.DefaultThresholds(),
		verdict.CheckDrain, verdict.CheckUpgrade)
	for _, c := range r.Checks {
		assert.Equal(t, verdict.CannotJudge, c.Status, c.Name)
	}
}

func TestBlockedBatchIsNotExtrapolated(t *testing.T) {
	b := upgradeRun("")
	b.Event(timeline.Event{Offset: S(13), Kind: timeline.EvBatchStarted, Name: "batch 3", Detail: "w3"})
	b.Event(timeline.Event{Offset: S(14), Kind: timeline.EvBatchFinished, Name: "batch 3", Detail: "drain of node w3 did not finish"})
	r := verdict.Judge(b.TL, verdict.DefaultThresholds(), verdict.CheckUpgrade)
	u, _ := r.Check(verdict.CheckUpgrade)
	mean, _ := u.Figure("batch_mean")
	assert.InDelta(t, 3, mean.Value, 0.01, "the blocked batch is left out")
	assert.Equal(t, verdict.Pass, u.Status)

	only := tt.New()
	only.Phase(timeline.PhaseFault, 0, S(5))
	only.Event(timeline.Event{Offset: S(1), Kind: timeline.EvBatchStarted, Name: "batch 1", Detail: "w1"})
	only.Event(timeline.Event{Offset: S(3), Kind: timeline.EvBatchFinished, Name: "batch 1", Detail: "blocked"})
	r = verdict.Judge(only.TL, verdict.DefaultThresholds(), verdict.CheckUpgrade)
	u, _ = r.Check(verdict.CheckUpgrade)
	assert.Equal(t, verdict.CannotJudge, u.Status)
	assert.Contains(t, u.Summary, "nothing can be extrapolated")
}

// A budget that allowed one disruption and spent it on a pod whose
// replacement never became Ready (OOM-killed on its new node) was right to
// refuse the rest: the drain fails, but not as class 2, and the evidence
// names the replacement and how it died. A replacement that became Ready
// leaves the budget to blame.
func TestBlockedDrainWaitingForAStuckReplacementIsNotTheBudgets(t *testing.T) {
	blocked := "drain of node w2 did not finish within 1m0s: PodDisruptionBudget app/web-pdb refused to evict web-b"
	b := upgradeRun(blocked)
	b.Event(timeline.Event{Offset: S(9.5), Kind: timeline.EvPodScheduled, Pod: "web-c", Node: "k-surge1"})
	b.Event(timeline.Event{Offset: S(10), Kind: timeline.EvContainerExited, Pod: "web-c", Node: "k-surge1", Reason: "OOMKilled"})
	b.Event(timeline.Event{Offset: S(11), Kind: timeline.EvContainerExited, Pod: "web-c", Node: "k-surge1", Reason: "OOMKilled"})
	r := verdict.Judge(b.TL, verdict.DefaultThresholds(), verdict.CheckDrain, verdict.CheckSteps)
	d, _ := r.Check(verdict.CheckDrain)
	require.Equal(t, verdict.Fail, d.Status, d.Summary)
	require.NotNil(t, d.Diagnosis)
	assert.Equal(t, verdict.ClassNone, d.Diagnosis.Class)
	assert.Equal(t, "the drain waited for replacements that never became Ready", d.Diagnosis.Title)
	assert.Contains(t, d.Diagnosis.Fix, "the budget needs no change")
	require.NotEmpty(t, d.Diagnosis.Evidence)
	assert.Equal(t, "web-c", d.Diagnosis.Evidence[0].Pod)
	assert.Contains(t, d.Diagnosis.Evidence[0].Text, "OOMKilled 2×")

	b = upgradeRun(blocked)
	b.Event(timeline.Event{Offset: S(9.5), Kind: timeline.EvPodScheduled, Pod: "web-c", Node: "k-surge1"})
	b.Event(timeline.Event{Offset: S(10), Kind: timeline.EvPodReady, Pod: "web-c"})
	r = verdict.Judge(b.TL, verdict.DefaultThresholds(), verdict.CheckDrain)
	d, _ = r.Check(verdict.CheckDrain)
	assert.Equal(t, verdict.ClassPDBBlocksDrain, d.Diagnosis.Class, "a Ready replacement: the budget allowed no disruption")
}
