package deploy

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPodTroubleSaysWhyPodsDoNotStart(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}
	pod := func(name string, st corev1.PodStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "shop"}}, Status: st}
	}
	ctx := context.Background()

	pulling := fake.NewClientset(pod("shop-1", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", Image: "rehearse/app:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}},
	}}}))
	why := podTrouble(ctx, pulling, "ns", sel)
	assert.Contains(t, why, "pod shop-1: container app ImagePullBackOff")
	assert.Contains(t, why, "rehearse/app:1")

	pending := fake.NewClientset(pod("shop-2", corev1.PodStatus{Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/3 nodes are available: 3 Insufficient cpu.",
	}}}))
	assert.Equal(t, "pod shop-2 not scheduled: 0/3 nodes are available: 3 Insufficient cpu.", podTrouble(ctx, pending, "ns", sel))

	starting := fake.NewClientset(pod("shop-3", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
	}}}))
	assert.Empty(t, podTrouble(ctx, starting, "ns", sel), "starting is no trouble")
}
