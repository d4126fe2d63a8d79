package cordon

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/scenario"
)

// The kubelet writes the Node between our read and our patch: the taint
// is retried on the fresh object, and another writer's taint is kept.
func TestAddTaintRetriesAConflict(t *testing.T) {
	other := corev1.Taint{Key: "example.com/other", Effect: corev1.TaintEffectNoSchedule}
	cs := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{other}}})
	conflicts := 0
	cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts < 2 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "w1", nil)
		}
		return false, nil, nil
	})
	sc := &scenario.Context{Client: cs}
	require.NoError(t, addTaint(context.Background(), sc, "w1"))
	assert.Equal(t, 2, conflicts)
	n, err := cs.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []corev1.Taint{other, Taint}, n.Spec.Taints)
}
