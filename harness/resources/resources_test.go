package resources

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Stats taken before a pod was Ready are of an app still starting (its
// heap not yet allocated): not counted; a pod that is not Ready takes any.
func TestStatsFreshOnlyAfterReadiness(t *testing.T) {
	ready := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	pod := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(ready)}}}}
	at := func(d time.Duration) statsv1.PodStats {
		ts := metav1.NewTime(ready.Add(d))
		return statsv1.PodStats{Memory: &statsv1.MemoryStats{Time: ts}, CPU: &statsv1.CPUStats{Time: ts}}
	}
	assert.False(t, statsFresh(pod, at(-time.Second)), "taken while the app started")
	assert.True(t, statsFresh(pod, at(time.Second)))
	assert.False(t, statsFresh(pod, statsv1.PodStats{}), "no memory stats: not fresh")
	assert.True(t, statsFresh(&corev1.Pod{}, at(-time.Hour)), "a pod that is not Ready takes any")
}
