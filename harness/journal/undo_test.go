package journal

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// undoTwice runs u twice on cs, as a restore after a crash may: both must
// succeed.
func undoTwice(t *testing.T, cs kubernetes.Interface, u Undo) {
	t.Helper()
	fn := NewRegistry().lookup(u.Kind)
	require.NotNil(t, fn, u.Kind)
	require.NoError(t, runUndo(bg, cs, fn, u))
	require.NoError(t, runUndo(bg, cs, fn, u), "a second undo succeeds")
}

func TestBuiltInUndos(t *testing.T) {
	fault := corev1.Taint{Key: "rehearse.io/fault", Value: "x", Effect: corev1.TaintEffectNoSchedule}
	n := newNode("n1")
	n.Spec.Unschedulable = true
	n.Labels = map[string]string{"added": "yes", "pool": "new", "other": "stays"}
	n.Spec.Taints = []corev1.Taint{
		fault,
		{Key: "rehearse.io/fault", Value: "x", Effect: corev1.TaintEffectNoExecute},  // other effect
		{Key: "rehearse.io/fault", Value: "y", Effect: corev1.TaintEffectNoSchedule}, // changed since: not ours
	}
	cs := clientWith(n)

	undoTwice(t, cs, Uncordon("n1"))
	undoTwice(t, cs, RemoveTaint("n1", fault))
	undoTwice(t, cs, RemoveNodeLabel("n1", "added"))
	undoTwice(t, cs, RestoreNodeLabel("n1", "pool", "old"))

	got := getNode(t, cs, "n1")
	assert.False(t, got.Spec.Unschedulable)
	assert.Equal(t, n.Spec.Taints[1:], got.Spec.Taints, "exactly that taint goes")
	assert.Equal(t, map[string]string{"pool": "old", "other": "stays"}, got.Labels)

	undoTwice(t, cs, Cordon("n1"))
	assert.True(t, getNode(t, cs, "n1").Spec.Unschedulable, "an uncordoned node is cordoned again")
}

func TestBuiltInUndosOfAGoneNodeSucceed(t *testing.T) {
	cs := clientWith()
	for _, u := range []Undo{
		Uncordon("gone"),
		Cordon("gone"),
		RemoveTaint("gone", corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}),
		RemoveNodeLabel("gone", "k"),
		RestoreNodeLabel("gone", "k", "v"),
	} {
		undoTwice(t, cs, u)
	}
}

func TestBuiltInUndosNameMissingParams(t *testing.T) {
	cs := clientWith(newNode("n1"))
	reg := NewRegistry()
	err := runUndo(bg, cs, reg.lookup(KindRemoveTaint), Undo{Kind: KindRemoveTaint, Params: map[string]string{"node": "n1"}})
	assert.EqualError(t, err, "undo params lack key, effect")
	err = runUndo(bg, cs, reg.lookup(KindRestoreNodeLabel), Undo{Kind: KindRestoreNodeLabel, Params: map[string]string{"node": "n1", "key": "k"}})
	assert.EqualError(t, err, "undo params lack value")
	// An empty value is a value: the label was empty before.
	require.NoError(t, runUndo(bg, cs, reg.lookup(KindRestoreNodeLabel), RestoreNodeLabel("n1", "k", "")))
	assert.Equal(t, map[string]string{"k": ""}, getNode(t, cs, "n1").Labels)
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	assert.Equal(t, []string{KindCordon, KindRemoveNodeLabel, KindRemoveTaint, KindRestoreNodeLabel, KindUncordon}, reg.Kinds())
	reg.Register("scale-back", func(context.Context, kubernetes.Interface, map[string]string) error { return nil })
	assert.Contains(t, reg.Kinds(), "scale-back")
	assert.Panics(t, func() { reg.Register("", nil) })
	var zero Registry
	zero.Register("k", func(context.Context, kubernetes.Interface, map[string]string) error { return nil })
	assert.NotNil(t, zero.lookup("k"), "the zero Registry is usable")
	assert.Nil(t, (*Registry)(nil).lookup("k"))
	assert.Empty(t, (*Registry)(nil).Kinds(), "a nil Registry knows no kinds, and does not panic")
}

func TestUndoErrorsNameTheFix(t *testing.T) {
	e := &UnknownKindError{Kind: "scale-back", WrittenBy: "v0.9.0", Here: "v0.8.0", Known: []string{"uncordon"}}
	assert.Equal(t, `undo kind "scale-back" is unknown to this harness (v0.8.0, which knows uncordon); the journal was written by harness v0.9.0, which knows it: run `+"`rehearse restore`"+` from that version`, e.Error())
	e.WrittenBy = "v0.8.0"
	assert.Contains(t, e.Error(), "a build of this version that registers more undos")

	h := &OtherHostError{Host: "laptop/b1", Here: "ci-7/b2", Key: "entry-0002", ConfigMap: "journal-r"}
	assert.Equal(t, "made on host laptop: run `rehearse restore` there", h.Error())
	h.Here = "laptop/b3"
	assert.Contains(t, h.Error(), "before it rebooted")
	assert.Contains(t, h.Error(), "delete data key entry-0002 of configmap rehearse-system/journal-r")
}
