package smoke

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
)

func node(name string, controlPlane bool) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if controlPlane {
		n.Labels[nodeinfo.LabelControlPlane] = ""
	}
	return n
}

func TestPickNodes(t *testing.T) {
	for _, c := range []struct {
		name     string
		nodes    []corev1.Node
		from, to string
	}{
		{"two workers", []corev1.Node{node("d-control-plane", true), node("d-worker2", false), node("d-worker", false)}, "d-worker", "d-worker2"},
		// The VM worker of `add-worker --vm` is named <cluster>-vm: one
		// container worker and the VM, no "worker2".
		{"a worker and a VM worker", []corev1.Node{node("d-control-plane", true), node("d-worker", false), node("d-vm", false)}, "d-vm", "d-worker"},
		{"one worker", []corev1.Node{node("d-control-plane", true), node("d-worker", false)}, "d-worker", "d-worker"},
		{"control plane only", []corev1.Node{node("d-control-plane", true)}, "d-control-plane", "d-control-plane"},
	} {
		t.Run(c.name, func(t *testing.T) {
			from, to, err := pickNodes(c.nodes)
			require.NoError(t, err)
			assert.Equal(t, c.from, from)
			assert.Equal(t, c.to, to)
		})
	}
	_, _, err := pickNodes(nil)
	assert.ErrorContains(t, err, "no node")
}
