package observe

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

const ns = "shop"

var bg = context.Background()

// rig is an observer on a fake clientset.
type rig struct {
	t  *testing.T
	cs *fake.Clientset
	tl *timeline.Timeline
	o  *Observer
}

// start starts an observer over a fake clientset holding objs, and waits
// until every watch is established: the fake's watches do not resume from
// a resource version, so a change made between an informer's list and its
// watch would be lost.
func start(t *testing.T, objs []runtime.Object, opts ...Option) *rig {
	t.Helper()
	return startOn(t, fake.NewClientset(objs...), nil, opts...)
}

// startOn is start over a given clientset (with the test's reactors), with
// before called between New and Start.
func startOn(t *testing.T, cs *fake.Clientset, before func(*Observer), opts ...Option) *rig {
	t.Helper()
	var mu sync.Mutex
	watching := map[string]bool{}
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		mu.Lock()
		watching[a.GetResource().Resource] = true
		mu.Unlock()
		return false, nil, nil
	})
	tl := timeline.New(time.Now())
	opts = append([]Option{WithSyncTimeout(5 * time.Second), WithEndpointSettle(50 * time.Millisecond)}, opts...)
	o, err := New(cs, tl, Target{Namespace: ns, PodSelector: "app=web", Service: "web"}, opts...)
	require.NoError(t, err)
	if before != nil {
		before(o)
	}
	require.NoError(t, o.Start(bg))
	t.Cleanup(o.Stop)
	want := []string{"pods", "endpointslices"}
	if o.nodes {
		want = append(want, "nodes")
	}
	if o.events {
		want = append(want, "events")
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range want {
			if !watching[r] {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "watches not established")
	return &rig{t: t, cs: cs, tl: tl, o: o}
}

// waitKinds waits until the timeline holds n events matching keep, and
// returns those.
func (r *rig) waitKinds(n int, keep func(timeline.Event) bool) []timeline.Event {
	r.t.Helper()
	var got []timeline.Event
	ok := assertEventually(func() bool {
		got = filter(r.tl.Events(), keep)
		return len(got) >= n
	})
	if !ok {
		r.t.Fatalf("waited for %d events, have %d:\n%s", n, len(got), dump(r.tl.Events()))
	}
	return got
}

func assertEventually(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

func filter(es []timeline.Event, keep func(timeline.Event) bool) []timeline.Event {
	var out []timeline.Event
	for _, e := range es {
		if keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func isPod(e timeline.Event) bool {
	switch e.Kind {
	case timeline.EvPodScheduled, timeline.EvPodReady, timeline.EvPodNotReady, timeline.EvPodDeletionRequested,
		timeline.EvContainerExited:
		return true
	}
	return e.Kind == timeline.EvNote && e.Reason == "PodDeleted"
}

func isEndpoint(e timeline.Event) bool { return e.Kind.IsEndpoint() }

func isNode(e timeline.Event) bool {
	switch e.Kind {
	case timeline.EvNodeAdded, timeline.EvNodeReady, timeline.EvNodeNotReady, timeline.EvNodeCordoned,
		timeline.EvNodeUncordoned, timeline.EvNodeDeleted, timeline.EvNodeVersionChanged:
		return true
	}
	return false
}

func kinds(es []timeline.Event) []timeline.EventKind {
	out := make([]timeline.EventKind, len(es))
	for i, e := range es {
		out[i] = e.Kind
	}
	return out
}

func dump(es []timeline.Event) string {
	var b strings.Builder
	for _, e := range es {
		code := ""
		if e.ExitCode != nil {
			code = fmt.Sprintf(" exit=%d", *e.ExitCode)
		}
		fmt.Fprintf(&b, "  %v %s pod=%s uid=%s node=%s ip=%s name=%s reason=%s%s value=%v %s\n",
			e.Offset, e.Kind, e.Pod, e.UID, e.Node, e.IP, e.Name, e.Reason, code, e.Value, e.Detail)
	}
	return b.String()
}

// ---- objects ----

func pod(name, node, ip string, ready bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
	setReady(p, ready)
	return p
}

func setReady(p *corev1.Pod, ready bool) {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}
}

func ptr[T any](v T) *T { return &v }

type ep struct {
	ip, pod, node      string
	ready, terminating bool
}

func slice(name string, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{
				Ready: ptr(e.ready), Serving: ptr(e.ready || e.terminating), Terminating: ptr(e.terminating),
			},
			NodeName:  ptr(e.node),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod, UID: types.UID("uid-" + e.pod)},
		})
	}
	return s
}

func node(name string, ready, cordoned bool) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec:       corev1.NodeSpec{Unschedulable: cordoned},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: "KubeletReady"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.33.1"},
		},
	}
}

func (r *rig) updatePod(p *corev1.Pod) {
	r.t.Helper()
	_, err := r.cs.CoreV1().Pods(ns).Update(bg, p, metav1.UpdateOptions{})
	require.NoError(r.t, err)
}

func (r *rig) applySlice(s *discoveryv1.EndpointSlice, create bool) {
	r.t.Helper()
	var err error
	if create {
		_, err = r.cs.DiscoveryV1().EndpointSlices(ns).Create(bg, s, metav1.CreateOptions{})
	} else {
		_, err = r.cs.DiscoveryV1().EndpointSlices(ns).Update(bg, s, metav1.UpdateOptions{})
	}
	require.NoError(r.t, err)
}

func (r *rig) updateNode(n *corev1.Node) {
	r.t.Helper()
	_, err := r.cs.CoreV1().Nodes().Update(bg, n, metav1.UpdateOptions{})
	require.NoError(r.t, err)
}

// ---- tests ----

func TestInitialSnapshot(t *testing.T) {
	old := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "old", Namespace: ns, UID: "ev-old"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1"},
		Type:           corev1.EventTypeWarning, Reason: "Unhealthy", Message: "Readiness probe failed", Count: 3,
	}
	other := pod("db-1", "n1", "10.0.0.9", true)
	other.Labels = map[string]string{"app": "db"}
	r := start(t, []runtime.Object{
		pod("web-1", "n1", "10.0.0.1", true),
		pod("web-2", "n2", "10.0.0.2", false),
		other,
		slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}, ep{"10.0.0.2", "web-2", "n2", false, false}),
		node("n1", true, false), node("n2", false, true),
		old,
	})
	es := r.tl.Events()
	for _, e := range es {
		assert.Equal(t, r.o.startAt, e.Offset, "every snapshot event is at the start offset: %s", e.Kind)
		assert.Contains(t, e.Detail, "initial state", e.Kind)
		assert.NotEqual(t, "db-1", e.Pod, "a pod outside the selector is not observed")
	}

	pods := filter(es, isPod)
	require.Len(t, pods, 4, dump(es))
	byPod := map[string][]timeline.EventKind{}
	for _, e := range pods {
		byPod[e.Pod] = append(byPod[e.Pod], e.Kind)
	}
	assert.Equal(t, []timeline.EventKind{timeline.EvPodScheduled, timeline.EvPodReady}, byPod["web-1"])
	assert.Equal(t, []timeline.EventKind{timeline.EvPodScheduled, timeline.EvPodNotReady}, byPod["web-2"])

	eps := filter(es, isEndpoint)
	require.Len(t, eps, 2, dump(es))
	assert.Equal(t, timeline.Event{Offset: r.o.startAt, Kind: timeline.EvEndpointAdded, Pod: "web-1", UID: "uid-web-1", Node: "n1", IP: "10.0.0.1", Detail: eps[0].Detail}, eps[0])
	assert.Equal(t, timeline.EvEndpointNotReady, eps[1].Kind)
	assert.Equal(t, "web-2", eps[1].Pod)

	nodes := filter(es, isNode)
	require.Len(t, nodes, 3, dump(es))
	assert.Equal(t, []timeline.EventKind{timeline.EvNodeReady, timeline.EvNodeNotReady, timeline.EvNodeCordoned}, kinds(nodes))
	assert.Equal(t, []string{"n1", "n2", "n2"}, []string{nodes[0].Node, nodes[1].Node, nodes[2].Node})

	assert.Empty(t, filter(es, func(e timeline.Event) bool { return e.Reason == "Unhealthy" }), "events from before the start are not recorded")

	// What a verdict derives from the snapshot.
	assert.Equal(t, 1, timeline.ReadyEndpoints(es).At(r.o.startAt))
}

func TestPodLifecycle(t *testing.T) {
	r := start(t, nil)
	p := pod("web-1", "", "", false)
	_, err := r.cs.CoreV1().Pods(ns).Create(bg, p, metav1.CreateOptions{})
	require.NoError(t, err)
	// A pod of another app: nothing is recorded for it.
	q := pod("db-1", "n1", "10.0.0.9", true)
	q.Labels = map[string]string{"app": "db"}
	_, err = r.cs.CoreV1().Pods(ns).Create(bg, q, metav1.CreateOptions{})
	require.NoError(t, err)

	p.Spec.NodeName = "n1"
	r.updatePod(p)
	r.waitKinds(1, isPod)

	p.Status.PodIP = "10.0.0.1"
	setReady(p, true)
	r.updatePod(p)
	r.waitKinds(2, isPod)

	p.Labels["unrelated"] = "change" // no transition: nothing recorded
	r.updatePod(p)
	setReady(p, false)
	r.updatePod(p)
	r.waitKinds(3, isPod)

	p.DeletionTimestamp = ptr(metav1.Now())
	p.DeletionGracePeriodSeconds = ptr(int64(30))
	r.updatePod(p)
	r.waitKinds(4, isPod)

	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		// The kubelet reports the exit 5 s after it happened.
		ExitCode: 137, Reason: "Error", Signal: 0, ContainerID: "containerd://abc", FinishedAt: metav1.NewTime(time.Now().Add(-5 * time.Second)),
	}}
	r.updatePod(p)
	r.updatePod(p) // delivered twice: recorded once
	r.waitKinds(5, isPod)

	require.NoError(t, r.cs.CoreV1().Pods(ns).Delete(bg, "web-1", metav1.DeleteOptions{}))
	got := r.waitKinds(6, isPod)

	require.Equal(t, []timeline.EventKind{
		timeline.EvPodScheduled, timeline.EvPodReady, timeline.EvPodNotReady,
		timeline.EvPodDeletionRequested, timeline.EvContainerExited, timeline.EvNote,
	}, kinds(got), dump(got))
	for i, e := range got {
		assert.Equal(t, "web-1", e.Pod)
		assert.Equal(t, "uid-web-1", e.UID, e.Kind)
		assert.Equal(t, "n1", e.Node)
		if i > 0 {
			assert.Equal(t, "10.0.0.1", e.IP, e.Kind)
			assert.GreaterOrEqual(t, e.Offset, got[i-1].Offset)
		}
		assert.Greater(t, e.Offset, r.o.startAt)
	}
	assert.Contains(t, got[3].Detail, "grace period 30s")
	exit := got[4]
	require.NotNil(t, exit.ExitCode)
	assert.Equal(t, 137, *exit.ExitCode)
	assert.Equal(t, "Error", exit.Reason)
	assert.Contains(t, exit.Detail, "container app exited with code 137")
	// finishedAt has whole seconds: the exit is known to be at least 3 s
	// (5 s less the second finishedAt rounds off, less a margin) before it was seen.
	assert.Greater(t, exit.Value, 3*time.Second, "how late the exit was seen")
	assert.LessOrEqual(t, exit.Value, 5*time.Second)
	assert.Equal(t, "PodDeleted", got[5].Reason)

	// What a verdict derives.
	lc := timeline.PodLifecycles(r.tl.Events())
	require.Len(t, lc, 1)
	assert.True(t, lc[0].DeletionRequested.Known)
	assert.True(t, lc[0].Exited.Known)
	assert.Equal(t, exit.Offset-exit.Value, lc[0].Exited.At, "the exit the kubelet reported, not when it was seen")
	assert.Equal(t, 137, *lc[0].ExitCode)
	assert.Len(t, lc[0].ReadyIntervals, 1)
	time.Sleep(20 * time.Millisecond)
	assert.Len(t, filter(r.tl.Events(), isPod), 6, dump(r.tl.Events()))
}

func TestContainerRestarts(t *testing.T) {
	p := pod("web-1", "n1", "10.0.0.1", true)
	// An exit from before the start: remembered, not recorded.
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, ContainerID: "c0"}
	p.Status.ContainerStatuses[0].RestartCount = 1
	r := start(t, []runtime.Object{p}, WithoutNodes(), WithoutEvents())
	exits := func(e timeline.Event) bool { return e.Kind == timeline.EvContainerExited }

	cs := &p.Status.ContainerStatuses[0]
	cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", ContainerID: "c1"}}
	r.updatePod(p)
	r.waitKinds(1, exits)

	// Restarted: the same exit now in the last state.
	cs.LastTerminationState.Terminated, cs.RestartCount = cs.State.Terminated, 2
	cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	r.updatePod(p)
	// An OOM kill the watch never saw as the current state.
	cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", ContainerID: "c2"}
	cs.RestartCount = 3
	r.updatePod(p)
	got := r.waitKinds(2, exits)
	time.Sleep(20 * time.Millisecond)
	got = filter(r.tl.Events(), exits)
	require.Len(t, got, 2, dump(got))
	assert.Equal(t, 1, *got[0].ExitCode)
	assert.Equal(t, 137, *got[1].ExitCode)
	assert.Equal(t, "OOMKilled", got[1].Reason)
	assert.Contains(t, got[1].Detail, "restart count 3")
}

func TestEndpointReadyTerminatingRemoved(t *testing.T) {
	r := start(t, []runtime.Object{slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false})})
	// Snapshot: the address is already there.
	r.waitKinds(1, isEndpoint)

	r.applySlice(slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}, ep{"10.0.0.2", "web-2", "n2", true, false}), false)
	r.waitKinds(2, isEndpoint)
	r.applySlice(slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}, ep{"10.0.0.2", "web-2", "n2", false, true}), false)
	r.waitKinds(3, isEndpoint)
	gone := r.tl.Now()
	r.applySlice(slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}), false)
	got := r.waitKinds(4, isEndpoint)

	assert.Equal(t, []timeline.EventKind{timeline.EvEndpointAdded, timeline.EvEndpointAdded, timeline.EvEndpointNotReady,
		timeline.EvEndpointRemoved}, kinds(got), dump(got))
	for _, e := range got[1:] {
		assert.Equal(t, "10.0.0.2", e.IP)
		assert.Equal(t, "web-2", e.Pod)
		assert.Equal(t, "n2", e.Node)
	}
	assert.Contains(t, got[2].Detail, "terminating=true")
	// The removal is recorded at the moment the address left, not when the
	// settle window closed.
	assert.GreaterOrEqual(t, got[3].Offset, gone)
	assert.Less(t, got[3].Offset, gone+40*time.Millisecond)

	series := timeline.ReadyEndpoints(r.tl.Events())
	assert.Equal(t, 2, series.At(got[1].Offset))
	assert.Equal(t, 1, series.At(got[2].Offset))
}

func TestEndpointFirstSeenNotReadyThenReady(t *testing.T) {
	r := start(t, nil, WithoutNodes(), WithoutEvents())
	r.applySlice(slice("web-a", ep{"10.0.0.3", "web-3", "n1", false, false}), true)
	r.waitKinds(1, isEndpoint)
	r.applySlice(slice("web-a", ep{"10.0.0.3", "web-3", "n1", true, false}), false)
	got := r.waitKinds(2, isEndpoint)
	assert.Equal(t, []timeline.EventKind{timeline.EvEndpointNotReady, timeline.EvEndpointReady}, kinds(got))
	assert.Equal(t, "web-3", got[1].Pod)

	// The slice is deleted: the address is removed.
	require.NoError(t, r.cs.DiscoveryV1().EndpointSlices(ns).Delete(bg, "web-a", metav1.DeleteOptions{}))
	got = r.waitKinds(3, isEndpoint)
	assert.Equal(t, timeline.EvEndpointRemoved, got[2].Kind)
}

func TestEndpointMovesBetweenSlices(t *testing.T) {
	const settle = 300 * time.Millisecond
	a := ep{"10.0.0.1", "web-1", "n1", true, false}
	b := ep{"10.0.0.2", "web-2", "n2", true, false}
	r := start(t, []runtime.Object{slice("web-a", a, b)}, WithEndpointSettle(settle), WithoutNodes(), WithoutEvents())
	r.waitKinds(2, isEndpoint)

	// The new slice first, then the old one without the address.
	r.applySlice(slice("web-b", a), true)
	r.applySlice(slice("web-a", b), false)
	// The old slice first, then the new one: a transient absence.
	r.applySlice(slice("web-a"), false)
	r.applySlice(slice("web-b", a, b), false)
	// A slice replaced by another.
	r.applySlice(slice("web-c", a, b), true)
	require.NoError(t, r.cs.DiscoveryV1().EndpointSlices(ns).Delete(bg, "web-b", metav1.DeleteOptions{}))
	time.Sleep(2 * settle)
	assert.Len(t, filter(r.tl.Events(), isEndpoint), 2, "moves between slices are not changes:\n%s", dump(r.tl.Events()))

	// The address reappears for another pod (IP reuse) within the window:
	// that is a removal and an addition.
	require.NoError(t, r.cs.DiscoveryV1().EndpointSlices(ns).Delete(bg, "web-c", metav1.DeleteOptions{}))
	r.applySlice(slice("web-d", ep{"10.0.0.1", "web-9", "n3", false, false}, b), true)
	got := r.waitKinds(4, isEndpoint)
	assert.Equal(t, []timeline.EventKind{timeline.EvEndpointRemoved, timeline.EvEndpointNotReady}, kinds(got[2:]), dump(got))
	assert.Equal(t, "web-1", got[2].Pod)
	assert.Equal(t, "web-9", got[3].Pod)
	time.Sleep(2 * settle)
	assert.Len(t, filter(r.tl.Events(), isEndpoint), 4, dump(r.tl.Events()))
}

func TestStopFlushesSettlingRemovals(t *testing.T) {
	r := start(t, []runtime.Object{slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false})},
		WithEndpointSettle(time.Hour), WithoutNodes(), WithoutEvents())
	r.applySlice(slice("web-a"), false)
	require.Eventually(t, func() bool {
		r.o.eps.mu.Lock()
		defer r.o.eps.mu.Unlock()
		return len(r.o.eps.pending) == 1
	}, 5*time.Second, 5*time.Millisecond)
	stopAt := r.tl.Now()
	r.o.Stop()
	r.o.Stop()
	got := filter(r.tl.Events(), isEndpoint)
	require.Len(t, got, 2)
	assert.Equal(t, timeline.EvEndpointRemoved, got[1].Kind)
	assert.Less(t, got[1].Offset, stopAt)

	// Nothing is recorded after Stop.
	r.applySlice(slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}), false)
	time.Sleep(30 * time.Millisecond)
	_, n := r.tl.Len()
	assert.Equal(t, 2, n)
}

func TestNodes(t *testing.T) {
	r := start(t, []runtime.Object{node("n1", true, false)})
	r.waitKinds(1, isNode)
	n2 := node("n2", false, false)
	_, err := r.cs.CoreV1().Nodes().Create(bg, n2, metav1.CreateOptions{})
	require.NoError(t, err)
	r.waitKinds(2, isNode)
	n2.Status.Conditions[0].Status = corev1.ConditionTrue
	r.updateNode(n2)
	r.waitKinds(3, isNode)

	n1 := node("n1", true, true)
	n1.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule}}
	r.updateNode(n1)
	r.waitKinds(4, isNode)
	n1 = node("n1", true, false)
	r.updateNode(n1)
	r.waitKinds(5, isNode)
	n1.Status.Conditions[0] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
		Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}
	r.updateNode(n1)
	r.waitKinds(6, isNode)
	require.NoError(t, r.cs.CoreV1().Nodes().Delete(bg, "n1", metav1.DeleteOptions{}))
	got := r.waitKinds(7, isNode)

	assert.Equal(t, []timeline.EventKind{
		timeline.EvNodeReady, timeline.EvNodeAdded, timeline.EvNodeReady, timeline.EvNodeCordoned,
		timeline.EvNodeUncordoned, timeline.EvNodeNotReady, timeline.EvNodeDeleted,
	}, kinds(got), dump(got))
	assert.Equal(t, []string{"n1", "n2", "n2", "n1", "n1", "n1", "n1"},
		[]string{got[0].Node, got[1].Node, got[2].Node, got[3].Node, got[4].Node, got[5].Node, got[6].Node})
	assert.Contains(t, got[1].Detail, "kubelet v1.33.1")
	assert.Contains(t, got[3].Detail, "node.kubernetes.io/unschedulable")
	assert.Contains(t, got[5].Detail, "NodeStatusUnknown")
}

func TestNodeVersionChangedInPlace(t *testing.T) {
	r := start(t, []runtime.Object{node("n1", true, false)})
	r.waitKinds(1, isNode)
	n1 := node("n1", true, false)
	n1.Status.NodeInfo.KubeletVersion = "v1.34.4"
	r.updateNode(n1)
	got := r.waitKinds(2, isNode)
	assert.Equal(t, []timeline.EventKind{timeline.EvNodeReady, timeline.EvNodeVersionChanged}, kinds(got), dump(got))
	assert.Equal(t, "kubelet v1.33.1 -> v1.34.4", got[1].Detail)
}

func TestKubernetesEvents(t *testing.T) {
	r := start(t, []runtime.Object{pod("web-1", "n1", "10.0.0.1", true)})
	notes := func(e timeline.Event) bool { return e.Kind == timeline.EvNote }
	mk := func(name, kind, obj, typ, reason string, count int32) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name)},
			InvolvedObject: corev1.ObjectReference{Kind: kind, Name: obj, Namespace: ns},
			Type:           typ, Reason: reason, Message: reason + " message", Count: count,
			Source: corev1.EventSource{Component: "kubelet", Host: "n1"},
		}
	}
	create := func(e *corev1.Event) {
		_, err := r.cs.CoreV1().Events(ns).Create(bg, e, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	update := func(e *corev1.Event) {
		_, err := r.cs.CoreV1().Events(ns).Update(bg, e, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	unhealthy := mk("u", "Pod", "web-1", corev1.EventTypeWarning, "Unhealthy", 1)
	create(unhealthy)
	create(mk("pulled", "Pod", "web-1", corev1.EventTypeNormal, "Pulled", 1))              // not relevant
	create(mk("stranger", "Pod", "db-1", corev1.EventTypeWarning, "BackOff", 1))           // not the app's pod
	create(mk("rs", "ReplicaSet", "web-x", corev1.EventTypeNormal, "SuccessfulCreate", 1)) // not a pod
	update(unhealthy)                                                                      // same occurrence again
	unhealthy.Count = 2
	update(unhealthy)
	create(mk("kill", "Pod", "web-1", corev1.EventTypeNormal, "Killing", 1))
	got := r.waitKinds(3, notes)
	time.Sleep(20 * time.Millisecond)
	got = filter(r.tl.Events(), notes)
	require.Len(t, got, 3, dump(got))
	assert.Equal(t, []string{"Unhealthy", "Unhealthy", "Killing"}, []string{got[0].Reason, got[1].Reason, got[2].Reason})
	for _, e := range got {
		assert.Equal(t, "web-1", e.Pod)
		assert.Equal(t, "n1", e.Node)
	}
	assert.Contains(t, got[0].Detail, "Warning event Unhealthy on Pod web-1: Unhealthy message")
	assert.Contains(t, got[1].Detail, "occurrence 2")
}

func TestStartForbidden(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", fmt.Errorf("RBAC: no"))
	})
	o, err := New(cs, timeline.New(time.Now()), Target{Namespace: ns, Service: "web"}, WithSyncTimeout(5*time.Second))
	require.NoError(t, err)
	began := time.Now()
	err = o.Start(bg)
	require.Error(t, err)
	assert.Less(t, time.Since(began), 4*time.Second, "a refusal ends Start without waiting for the timeout")
	assert.Contains(t, err.Error(), "nodes")
	assert.Contains(t, err.Error(), "WithoutNodes")
	o.Stop()
	assert.Error(t, o.Start(bg), "an observer starts once")
}

func TestStartTimeout(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, fmt.Errorf("dial tcp 127.0.0.1:6443: connect: connection refused")
	})
	o, err := New(cs, timeline.New(time.Now()), Target{Namespace: ns, PodSelector: "app=web"},
		WithSyncTimeout(300*time.Millisecond), WithoutNodes(), WithoutEvents())
	require.NoError(t, err)
	err = o.Start(bg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pods with app=web in namespace shop")
	assert.Contains(t, err.Error(), "connection refused")
}

func TestNewValidates(t *testing.T) {
	cs := fake.NewClientset()
	tl := timeline.New(time.Now())
	_, err := New(nil, tl, Target{Namespace: ns})
	assert.Error(t, err)
	_, err = New(cs, nil, Target{Namespace: ns})
	assert.Error(t, err)
	_, err = New(cs, tl, Target{})
	assert.Error(t, err)
	_, err = New(cs, tl, Target{Namespace: ns, PodSelector: "app in ("})
	assert.Error(t, err)
	o, err := New(cs, tl, Target{Namespace: ns})
	require.NoError(t, err)
	o.Stop() // without Start
	o.Stop()
}

func TestStopWhileStarting(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, fmt.Errorf("connection refused")
	})
	o, err := New(cs, timeline.New(time.Now()), Target{Namespace: ns}, WithSyncTimeout(10*time.Second), WithoutNodes(), WithoutEvents())
	require.NoError(t, err)
	time.AfterFunc(100*time.Millisecond, o.Stop)
	began := time.Now()
	err = o.Start(bg)
	require.Error(t, err)
	assert.Less(t, time.Since(began), 5*time.Second)
	assert.Contains(t, err.Error(), "stopped while starting")
}

func TestForceDeletedReadyPod(t *testing.T) {
	r := start(t, []runtime.Object{pod("web-1", "n1", "10.0.0.1", true)}, WithoutNodes(), WithoutEvents())
	r.waitKinds(2, isPod)
	require.NoError(t, r.cs.CoreV1().Pods(ns).Delete(bg, "web-1", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}))
	got := r.waitKinds(5, isPod)
	assert.Equal(t, []timeline.EventKind{timeline.EvPodDeletionRequested, timeline.EvPodNotReady, timeline.EvNote}, kinds(got[2:]), dump(got))
	for _, e := range got[2:] {
		assert.Equal(t, "web-1", e.Pod)
		assert.Equal(t, "10.0.0.1", e.IP)
	}
	lc := timeline.PodLifecycles(r.tl.Events())
	require.Len(t, lc, 1)
	assert.Equal(t, []timeline.Interval{{From: r.o.startAt, To: got[3].Offset}}, lc[0].ReadyIntervals)
}

func dnsSlice(ready ...bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kube-dns-x", Namespace: ClusterDNSNamespace, Labels: map[string]string{discoveryv1.LabelServiceName: ClusterDNSService}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, r := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.0.%d", i+2)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(r)},
			NodeName:   ptr("cp"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("coredns-%d", i)},
		})
	}
	return s
}

func isClusterDNS(e timeline.Event) bool { return e.Kind == timeline.EvClusterDNS }

// The cluster's DNS is the second target: its ready endpoints at the start
// and whenever their number changes, never the app's endpoint events.
func TestClusterDNS(t *testing.T) {
	r := start(t, []runtime.Object{dnsSlice(true, true)})
	got := r.waitKinds(1, isClusterDNS)
	assert.Equal(t, "2", got[0].Name)
	assert.True(t, got[0].Initial())
	assert.Contains(t, got[0].Detail, "coredns-0 on cp")
	s := dnsSlice(false, false)
	_, err := r.cs.DiscoveryV1().EndpointSlices(ClusterDNSNamespace).Update(bg, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	got = r.waitKinds(2, isClusterDNS)
	assert.Equal(t, "0", got[1].Name)
	assert.Empty(t, filter(r.tl.Events(), isEndpoint), "CoreDNS's endpoints are not the app's")
}

// An identity that may not read kube-system rehearses without it, saying so.
func TestClusterDNSForbiddenIsANote(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != ClusterDNSNamespace {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "endpointslices"}, "", fmt.Errorf("RBAC: no"))
	})
	r := startOn(t, cs, nil)
	notes := r.waitKinds(1, func(e timeline.Event) bool { return e.Kind == timeline.EvNote && e.Name == "cluster DNS not watched" })
	assert.Contains(t, notes[0].Detail, "forbidden")
	assert.Empty(t, filter(r.tl.Events(), isClusterDNS))
}
