package verdict_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// A VM node under software emulation that goes NotReady with no step
// stopping it stalled on its own: the rehearsal cannot be judged, whatever
// the clients saw of its pods (they would be blamed on the app).
func TestEmulatedNodeStallCannotJudge(t *testing.T) {
	stall := func(node, reason string, stopped bool) verdict.Report {
		b := tt.New().Phase(timeline.PhaseBaseline, S(0), S(5)).Phase(timeline.PhaseFault, S(5), S(20)).Phase(timeline.PhaseRecovery, S(20), S(25))
		b.Event(timeline.Event{Offset: S(0), Kind: timeline.EvNodeCgroup, Node: "w1", Name: "v1"})
		if stopped {
			b.Event(timeline.Event{Offset: S(11), Kind: timeline.EvNodeStopped, Node: node})
		}
		b.Event(timeline.Event{Offset: S(12), Kind: timeline.EvNodeNotReady, Node: node, Detail: "Kubelet stopped posting node status."})
		// Recorded after the stall: a node is recorded when first sampled.
		b.Event(timeline.Event{Offset: S(13), Kind: timeline.EvNodeCgroup, Node: "vm", Name: "v2", Reason: reason})
		s := b.Snapshot()
		return verdict.JudgeSnapshot(&s, verdict.DefaultThresholds(), verdict.CheckObservation, verdict.CheckSteps)
	}

	r := stall("vm", "emulated", false)
	require.Equal(t, verdict.CannotJudge, r.Outcome, r.Reason)
	c, ok := r.Check(verdict.CheckObservation)
	require.True(t, ok)
	assert.Contains(t, c.Summary, "node vm, a VM under software emulation, went NotReady 12")
	require.NotNil(t, c.Diagnosis)
	assert.Equal(t, "an emulated VM node stalled: cannot judge", c.Diagnosis.Title)
	assert.Contains(t, c.Diagnosis.Fix, "remove-node")

	for name, r := range map[string]verdict.Report{
		"a node with KVM (not emulated)":        stall("vm", "", false),
		"a container node":                      stall("w1", "emulated", false),
		"an emulated node a step stopped first": stall("vm", "emulated", true),
	} {
		c, ok := r.Check(verdict.CheckObservation)
		require.True(t, ok, name)
		assert.Equal(t, verdict.Pass, c.Status, "%s: %s", name, c.Summary)
	}
}
