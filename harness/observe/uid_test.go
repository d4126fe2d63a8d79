package observe

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// A StatefulSet's pod comes back under the same name: each pod's events,
// and each endpoint's, carry its own UID, so verdicts keep them apart.
func TestUIDsAcrossAStatefulSetReplacement(t *testing.T) {
	old := pod("web-0", "n1", "10.0.0.1", true)
	r := start(t, []runtime.Object{old, slice("web-a", ep{"10.0.0.1", "web-0", "n1", true, false})},
		WithoutNodes(), WithoutEvents(), WithoutAppLogs(), WithLagProbe(0))
	r.waitKinds(2, isPod)
	r.waitKinds(1, isEndpoint)

	// The StatefulSet controller deletes the pod, then creates it again.
	require.NoError(t, r.cs.CoreV1().Pods(ns).Delete(bg, "web-0", metav1.DeleteOptions{}))
	r.waitKinds(5, isPod) // + DeletionRequested, NotReady, PodDeleted
	nu := pod("web-0", "n2", "10.0.0.1", false)
	nu.UID = "uid-web-0-new"
	_, err := r.cs.CoreV1().Pods(ns).Create(bg, nu, metav1.CreateOptions{})
	require.NoError(t, err)
	r.waitKinds(6, isPod) // + Scheduled
	setReady(nu, true)
	r.updatePod(nu)
	r.waitKinds(7, isPod)

	// Its endpoint has the same IP (and name) but the new pod's UID.
	s := slice("web-a", ep{"10.0.0.1", "web-0", "n2", true, false})
	s.Endpoints[0].TargetRef.UID = "uid-web-0-new"
	r.applySlice(s, false)
	eps := r.waitKinds(3, isEndpoint)

	// A watch that missed the deletion sees the pod replaced in one update.
	again := pod("web-0", "n1", "10.0.0.2", true)
	again.UID = "uid-web-0-third"
	r.updatePod(again)
	pods := r.waitKinds(12, isPod) // + the second's end, the third's Scheduled and Ready

	uids := func(es []timeline.Event) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.UID)
		}
		return out
	}
	assert.Equal(t, []timeline.EventKind{
		timeline.EvPodScheduled, timeline.EvPodReady,
		timeline.EvPodDeletionRequested, timeline.EvPodNotReady, timeline.EvNote,
		timeline.EvPodScheduled, timeline.EvPodReady,
		timeline.EvPodDeletionRequested, timeline.EvPodNotReady, timeline.EvNote,
		timeline.EvPodScheduled, timeline.EvPodReady,
	}, kinds(pods), dump(pods))
	assert.Equal(t, []string{
		"uid-web-0", "uid-web-0", "uid-web-0", "uid-web-0", "uid-web-0",
		"uid-web-0-new", "uid-web-0-new", "uid-web-0-new", "uid-web-0-new", "uid-web-0-new",
		"uid-web-0-third", "uid-web-0-third",
	}, uids(pods), dump(pods))
	assert.Equal(t, "PodDeleted", pods[4].Reason)
	assert.Equal(t, "PodDeleted", pods[9].Reason)
	assert.Contains(t, pods[9].Detail, "replaced by a new pod of the same name")

	// The address changed pods without leaving the slice: the old pod's
	// endpoint is removed and the new one's added.
	assert.Equal(t, []timeline.EventKind{timeline.EvEndpointAdded, timeline.EvEndpointRemoved, timeline.EvEndpointAdded},
		kinds(eps), dump(eps))
	assert.Equal(t, []string{"uid-web-0", "uid-web-0", "uid-web-0-new"}, uids(eps))
	for _, e := range eps {
		assert.Equal(t, "web-0", e.Pod)
		assert.Equal(t, "10.0.0.1", e.IP)
	}
	assert.Contains(t, eps[1].Detail, "uid-web-0-new")

	// What a verdict derives: three pods, not one.
	lcs := timeline.PodLifecycles(r.tl.Events())
	require.Len(t, lcs, 3, dump(r.tl.Events()))
	byUID := map[string]*timeline.PodLifecycle{}
	for i := range lcs {
		byUID[lcs[i].UID] = &lcs[i]
	}
	require.Contains(t, byUID, "uid-web-0")
	require.Contains(t, byUID, "uid-web-0-new")
	require.Contains(t, byUID, "uid-web-0-third")
	assert.True(t, byUID["uid-web-0"].DeletionRequested.Known)
	assert.True(t, byUID["uid-web-0-new"].EndpointReady.Known)
	assert.False(t, byUID["uid-web-0"].EndpointReadyAt(eps[2].Offset), "the old pod's endpoint is not the new one's")
	assert.False(t, byUID["uid-web-0-third"].DeletionRequested.Known)
	assert.Equal(t, 1, timeline.ReadyEndpoints(r.tl.Events()).At(eps[2].Offset))
}

// A Kubernetes Event about a pod carries the UID of the pod it names.
func TestKubernetesEventCarriesPodUID(t *testing.T) {
	r := start(t, []runtime.Object{pod("web-1", "n1", "10.0.0.1", true)}, WithoutNodes(), WithoutAppLogs(), WithLagProbe(0))
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "kill", Namespace: ns, UID: "uid-kill"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1", Namespace: ns, UID: "uid-web-1"},
		Type:           corev1.EventTypeNormal, Reason: "Killing", Message: "Stopping container app", Count: 1,
	}
	_, err := r.cs.CoreV1().Events(ns).Create(bg, ev, metav1.CreateOptions{})
	require.NoError(t, err)
	got := r.waitKinds(1, func(e timeline.Event) bool { return e.Reason == "Killing" })
	assert.Equal(t, "uid-web-1", got[0].UID)
}
