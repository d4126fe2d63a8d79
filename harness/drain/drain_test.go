package drain

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// world is a fake cluster with one node and its pods, whose evictions are
// answered by answer (nil: the pod is deleted, as the API server does).
func world(t *testing.T, answer func(pod string) error, pods ...string) *fake.Clientset {
	t.Helper()
	objs := []runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}
	for _, p := range pods {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p, Namespace: "app", UID: k8stypes.UID("uid-" + p), Labels: map[string]string{"app": "web"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", APIVersion: "apps/v1", Controller: ptr(true)}}},
			Spec: corev1.PodSpec{NodeName: "n1"},
		})
	}
	c := fake.NewClientset(objs...)
	c.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"},
	}}}
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if err := answer(ev.Name); err != nil {
			return true, nil, err
		}
		return true, nil, c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "app", ev.Name)
	})
	return c
}

func ptr[T any](v T) *T { return &v }

func pdbRefusal(name string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause,
		Message: "The disruption budget " + name + " needs 2 healthy pods and has 2 currently"}}
	return err
}

func TestDrainEvictsEveryPod(t *testing.T) {
	c := world(t, func(string) error { return nil }, "web-a", "web-b")
	tl := timeline.New(time.Now())
	res := Node(context.Background(), c, "n1", Options{Timeout: 20 * time.Second, RetryDelay: 10 * time.Millisecond}, tl)
	require.NoError(t, res.Err)
	assert.ElementsMatch(t, []string{"app/web-a", "app/web-b"}, res.Evicted)
	assert.Empty(t, res.Refusals)
	kinds := map[timeline.EventKind]int{}
	for _, e := range tl.Events() {
		kinds[e.Kind]++
	}
	assert.Equal(t, 1, kinds[timeline.EvDrainStarted])
	assert.Equal(t, 2, kinds[timeline.EvEvictionRequested])
	assert.Equal(t, 1, kinds[timeline.EvDrainFinished])
}

func TestDrainBlockedByPDBNamesIt(t *testing.T) {
	c := world(t, func(pod string) error {
		if pod == "web-b" {
			return pdbRefusal("web-pdb")
		}
		return nil
	}, "web-a", "web-b")
	tl := timeline.New(time.Now())
	res := Node(context.Background(), c, "n1", Options{Timeout: 2 * time.Second, RetryDelay: 200 * time.Millisecond}, tl)
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "PodDisruptionBudget app/web-pdb refused to evict web-b")
	assert.Contains(t, res.Err.Error(), "disruption budget")
	assert.Equal(t, map[string][]string{"app/web-pdb": {"web-b"}}, res.BlockingPDBs())
	assert.Equal(t, []string{"app/web-a"}, res.Evicted)
	var refused, asked int
	for _, e := range tl.Events() {
		switch e.Kind {
		case timeline.EvEvictionRefused:
			refused++
			assert.Equal(t, "app/web-pdb", e.Name)
			assert.Equal(t, "web-b", e.Pod)
			assert.Equal(t, "n1", e.Node)
		case timeline.EvEvictionRequested:
			asked++
		case timeline.EvDrainFinished:
			assert.Contains(t, e.Detail, "web-pdb")
		}
	}
	assert.Greater(t, refused, 2, "every refused attempt is on the timeline")
	assert.Equal(t, 2, asked, "a retried eviction is asked for once on the timeline")
}

func TestThrottlingIsNotAPDB(t *testing.T) {
	calls := 0
	c := world(t, func(string) error {
		calls++
		if calls <= 2 {
			return apierrors.NewTooManyRequests("too many requests, please try again later", 1)
		}
		return nil
	}, "web-a")
	res := Node(context.Background(), c, "n1", Options{Timeout: 10 * time.Second, RetryDelay: 10 * time.Millisecond}, nil)
	require.NoError(t, res.Err)
	require.Len(t, res.Refusals, 2)
	for _, f := range res.Refusals {
		assert.True(t, f.Throttled)
		assert.Empty(t, f.PDB)
	}
	assert.Empty(t, res.BlockingPDBs())
}

func TestUnnamedBudgetIsLookedUp(t *testing.T) {
	c := world(t, func(string) error {
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause, Message: "budget exhausted"}}
		return err
	}, "web-a")
	_, err := c.PolicyV1().PodDisruptionBudgets("app").Create(context.Background(), &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: "app"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	res := Node(context.Background(), c, "n1", Options{Timeout: time.Second, RetryDelay: 100 * time.Millisecond}, nil)
	require.Error(t, res.Err)
	assert.True(t, strings.Contains(res.Err.Error(), "app/strict"), res.Err.Error())
}

func TestCordon(t *testing.T) {
	c := world(t, func(string) error { return nil })
	require.NoError(t, Cordon(context.Background(), c, "n1", true))
	n, _ := c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	assert.True(t, n.Spec.Unschedulable)
	require.NoError(t, Cordon(context.Background(), c, "n1", false))
	n, _ = c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	assert.False(t, n.Spec.Unschedulable)
}
