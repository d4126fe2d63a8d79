package scenario_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func setup(t *testing.T) (*scenario.Context, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}})
	j, err := journal.Open(context.Background(), client, "test-run")
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close(context.Background()) })
	return &scenario.Context{Client: client, Timeline: timeline.New(time.Now()), Journal: j, Out: &bytes.Buffer{}}, client
}

func cordon(ctx context.Context, sc *scenario.Context) error {
	return sc.Change(ctx, "cordon node w1", journal.Uncordon("w1"), func(ctx context.Context) error {
		n, err := sc.Client.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Unschedulable = true
		_, err = sc.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// A change is in the journal before it is applied, and Revert undoes it from
// the journal.
func TestChangeIsJournaledFirstAndReverted(t *testing.T) {
	ctx := context.Background()
	sc, client := setup(t)
	var journaledBefore int
	s := scenario.Scenario{Kind: "test", Steps: []scenario.Step{
		scenario.Do("cordon", func(ctx context.Context, sc *scenario.Context) error {
			return sc.Change(ctx, "cordon node w1", journal.Uncordon("w1"), func(ctx context.Context) error {
				es, err := sc.Journal.Entries(ctx)
				journaledBefore = len(es)
				if err != nil {
					return err
				}
				return cordon(ctx, &scenario.Context{Client: sc.Client, Journal: sc.Journal, Step: "inner"})
			})
		}),
	}}
	out := scenario.Run(ctx, sc, s)
	require.NoError(t, out.Err)
	assert.Equal(t, 1, journaledBefore, "the entry exists when the change is applied")
	n, _ := client.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	assert.True(t, n.Spec.Unschedulable)

	require.NoError(t, scenario.Revert(ctx, sc, journal.NewRegistry()))
	n, _ = client.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	assert.False(t, n.Spec.Unschedulable)
	es, err := sc.Journal.Entries(ctx)
	require.NoError(t, err)
	assert.Empty(t, es)

	var kinds []timeline.EventKind
	for _, e := range sc.Timeline.Events() {
		kinds = append(kinds, e.Kind)
	}
	assert.Contains(t, kinds, timeline.EvFaultInjected)
	assert.Contains(t, kinds, timeline.EvFaultReverted)
}

// A failing step stops the scenario, names the step, and is on the
// timeline as the action's error.
func TestRunStopsAtTheFailedStep(t *testing.T) {
	sc, _ := setup(t)
	ran := 0
	s := scenario.Scenario{Kind: "test", Steps: []scenario.Step{
		scenario.Do("one", func(context.Context, *scenario.Context) error { ran++; return nil }),
		scenario.Do("two", func(context.Context, *scenario.Context) error { ran++; return errors.New("boom") }),
		scenario.Do("three", func(context.Context, *scenario.Context) error { ran++; return nil }),
	}}
	out := scenario.Run(context.Background(), sc, s)
	assert.Equal(t, 2, ran)
	assert.Equal(t, "two", out.FailedStep)
	assert.EqualError(t, out.Err, "boom")
	snap := sc.Timeline.Snapshot()
	acts := snap.Actions()
	require.Len(t, acts, 2)
	var detail string
	for _, e := range snap.Events {
		if e.Kind == timeline.EvActionEnd && e.Name == "two" {
			detail = e.Detail
		}
	}
	assert.Equal(t, "boom", detail)
	assert.Contains(t, s.String(), "2. two")
}

// Without a journal no change is made.
func TestChangeNeedsAJournal(t *testing.T) {
	sc := &scenario.Context{}
	applied := false
	err := sc.Change(context.Background(), "x", journal.Uncordon("w1"), func(context.Context) error { applied = true; return nil })
	assert.Error(t, err)
	assert.False(t, applied)
}
