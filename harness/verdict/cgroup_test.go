package verdict_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

const mib = 1 << 20

// audit builds the timeline of a rehearsal whose pods were sampled at the
// end of the baseline (before, on w1) and of the recovery (after, on w2),
// with the nodes' cgroup versions.
func audit(w1, w2 string, before, after timeline.ResourceSample) verdict.Check {
	b := tt.New().Phase(timeline.PhaseBaseline, S(0), S(5)).Phase(timeline.PhaseFault, S(5), S(20)).Phase(timeline.PhaseRecovery, S(20), S(25))
	b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "w1", Name: w1})
	b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "w2", Name: w2})
	b.Event(timeline.Event{Offset: S(4.9), Kind: timeline.EvResourceSample, Pod: "web-1", Node: "w1", Name: "baseline", Detail: before.Encode()})
	b.Event(timeline.Event{Offset: S(24.9), Kind: timeline.EvResourceSample, Pod: "web-2", Node: "w2", Name: "recovery", Detail: after.Encode()})
	s := b.Snapshot()
	r := verdict.JudgeSnapshot(&s, verdict.DefaultThresholds(), verdict.CheckCgroup)
	c, _ := r.Check(verdict.CheckCgroup)
	return c
}

// limits is a pod with 0.5 CPU and 256 MiB whose runtime (mode) saw them.
func limits(mode, from string, mem int64) timeline.ResourceSample {
	return timeline.ResourceSample{CPULimit: 0.5, MemoryLimit: 256 * mib, RuntimeMode: mode, RuntimeFrom: from,
		CPUSeen: 0.5, MemorySeen: 256 * mib, CPUUsage: 0.05, MemoryWorkingSet: mem}
}

// blind is the same pod whose runtime found no limit in the files it reads.
func blind(mode string, mem int64) timeline.ResourceSample {
	s := limits(mode, "none", mem)
	s.CPUSeen, s.MemorySeen, s.CPUFromHost, s.MemFromHost = 2, 24<<30, true, true
	return s
}

// A runtime that reads both versions sees its limits on v1 nodes: pass, and
// the verdict says plainly that v2 could not be rehearsed.
func TestCgroupBothPassesAndSaysWhatWasNotRehearsed(t *testing.T) {
	c := audit("v1", "v1", limits("both", "v1", 40*mib), limits("both", "v1", 42*mib))
	assert.Equal(t, verdict.Pass, c.Status, c.Summary)
	assert.Contains(t, c.Summary, "cgroup v1 nodes only")
	assert.Contains(t, c.Details[0], "could not be rehearsed")
}

// A runtime that reads only v2 files, on v1 nodes, finds no limit and sizes
// itself from the host: class 5 with the runtime fix.
func TestCgroupV2OnlyOnV1IsFlagged(t *testing.T) {
	c := audit("v1", "v1", blind("v2-only", 40*mib), blind("v2-only", 40*mib))
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Equal(t, verdict.ClassCgroup, c.Diagnosis.Class)
	assert.Contains(t, c.Diagnosis.Evidence[0].Text, "reads cgroup v2 files only and found no limit")
	assert.Contains(t, c.Diagnosis.Evidence[0].Text, "24.0 GiB from the host (its limit is 256 MiB)")
	assert.Contains(t, c.Diagnosis.Fix, "JDK 8u372")
}

// The v1 -> v2 move AKS made with its node images: a v1-only runtime loses
// its limits on the v2 node, and its heap, sized from the host, makes its
// memory jump: class 5, both the blindness and the growth measured.
func TestCgroupV1OnlyMovingToV2(t *testing.T) {
	c := audit("v1", "v2", limits("v1-only", "v1", 70*mib), blind("v1-only", 200*mib))
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Equal(t, verdict.ClassCgroup, c.Diagnosis.Class)
	assert.Contains(t, c.Summary, "nodes on cgroup v1 (1) and v2 (1)")
	g, ok := c.Figure("memory_growth")
	require.True(t, ok)
	assert.InDelta(t, 130.0/70, g.Value, 0.01)
}

// Memory that jumps after a move, with a runtime that says nothing, fails
// as a resource regression: class 5 where the move changed the cgroup
// version, no class where it did not (the limits seen did not change).
func TestCgroupMemoryJumpIsARegression(t *testing.T) {
	quiet := func(mem int64) timeline.ResourceSample {
		return timeline.ResourceSample{MemoryLimit: 512 * mib, ContainerSee: "v1", MemoryWorkingSet: mem}
	}
	c := audit("v1", "v2", quiet(60*mib), quiet(300*mib))
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Equal(t, verdict.ClassCgroup, c.Diagnosis.Class)
	c = audit("v1", "v1", quiet(60*mib), quiet(300*mib))
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Contains(t, c.Diagnosis.Title, "memory use jumped")
	assert.Equal(t, verdict.ClassNone, c.Diagnosis.Class, "the same cgroup version before and after: not class 5")
	assert.Contains(t, c.Summary, "same cgroup version")
	assert.Contains(t, c.Details[1], "does not say what its runtime detected")
	c = audit("v1", "v1", quiet(60*mib), quiet(65*mib))
	assert.Equal(t, verdict.Pass, c.Status, c.Summary)
	assert.Contains(t, c.Summary, "use judged only")
}

// Nothing sampled: cannot judge.
func TestCgroupWithoutSamplesCannotJudge(t *testing.T) {
	b := tt.New().Phase(timeline.PhaseFault, S(0), S(10))
	s := b.Snapshot()
	r := verdict.JudgeSnapshot(&s, verdict.DefaultThresholds(), verdict.CheckCgroup)
	c, _ := r.Check(verdict.CheckCgroup)
	assert.Equal(t, verdict.CannotJudge, c.Status)
}
