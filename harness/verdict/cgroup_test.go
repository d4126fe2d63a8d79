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

// auditWithOOM is audit with the new pod's container OOM-killed on w2
// during the fault, and no sample after (a runtime that sized itself from
// the node dies before it serves or reports).
func auditWithOOM(w1, w2 string, before timeline.ResourceSample) verdict.Check {
	b := tt.New().Phase(timeline.PhaseBaseline, S(0), S(5)).Phase(timeline.PhaseFault, S(5), S(20)).Phase(timeline.PhaseRecovery, S(20), S(25))
	b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "w1", Name: w1})
	b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "w2", Name: w2})
	b.Event(timeline.Event{Offset: S(4.9), Kind: timeline.EvResourceSample, Pod: "web-1", Node: "w1", Name: "baseline", Detail: before.Encode()})
	b.Event(timeline.Event{Offset: S(9), Kind: timeline.EvContainerExited, Pod: "web-2", Node: "w2", Reason: "OOMKilled"})
	s := b.Snapshot()
	r := verdict.JudgeSnapshot(&s, verdict.DefaultThresholds(), verdict.CheckCgroup)
	c, _ := r.Check(verdict.CheckCgroup)
	return c
}

// A v1-only runtime moved to a v2 node sizes its heap from the node and is
// OOM-killed before it can report: the kills, only where the cgroup version
// changed, are class 5. The same kills on a node of the same version are
// not (the limits seen did not change).
func TestCgroupOOMKilledAfterMovingToTheOtherVersion(t *testing.T) {
	c := auditWithOOM("v1", "v2", limits("v1-only", "v1", 70*mib))
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	require.NotNil(t, c.Diagnosis)
	assert.Equal(t, verdict.ClassCgroup, c.Diagnosis.Class)
	assert.Contains(t, c.Summary, "OOM-killed on cgroup v2 nodes after the pods moved there from cgroup v1 nodes")
	assert.Contains(t, c.Diagnosis.Fix, "reads only cgroup v1 files finds no limit on cgroup v2 nodes")
	require.Len(t, c.Diagnosis.Evidence, 1)
	assert.Equal(t, "web-2", c.Diagnosis.Evidence[0].Pod)

	c = auditWithOOM("v1", "v1", limits("v1-only", "v1", 70*mib))
	require.Equal(t, verdict.Fail, c.Status, c.Summary)
	assert.Equal(t, verdict.ClassNone, c.Diagnosis.Class, "same cgroup version: not class 5")
}

// CPU measured on a VM under software emulation reads about 15 times
// higher: the verdict says so next to the figures.
func TestCgroupSaysWhichNodesWereEmulated(t *testing.T) {
	b := tt.New().Phase(timeline.PhaseBaseline, S(0), S(5)).Phase(timeline.PhaseFault, S(5), S(20)).Phase(timeline.PhaseRecovery, S(20), S(25))
	b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "w1", Name: "v1"})
	b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "vm", Name: "v2", Reason: "emulated"})
	b.Event(timeline.Event{Offset: S(4.9), Kind: timeline.EvResourceSample, Pod: "web-1", Node: "w1", Name: "baseline", Detail: limits("both", "v1", 60*mib).Encode()})
	b.Event(timeline.Event{Offset: S(24.9), Kind: timeline.EvResourceSample, Pod: "web-2", Node: "vm", Name: "recovery", Detail: limits("both", "v2", 62*mib).Encode()})
	s := b.Snapshot()
	r := verdict.JudgeSnapshot(&s, verdict.DefaultThresholds(), verdict.CheckCgroup)
	c, _ := r.Check(verdict.CheckCgroup)
	assert.Equal(t, verdict.Pass, c.Status, c.Summary)
	require.NotEmpty(t, c.Details)
	last := c.Details[len(c.Details)-1]
	assert.Contains(t, last, "pods sampled after on vm: VMs under QEMU's software emulation")
	assert.NotContains(t, last, "before on")
}
