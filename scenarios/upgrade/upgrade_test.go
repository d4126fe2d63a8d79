package upgrade

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strings"
	"sync"
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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

const (
	oldImage = "node:old"
	newImage = "node:new"
)

// pool is a simulated cluster: a control plane, workers w1 and w2 with an
// app pod each, nodes added and removed like kind's, and evictions answered
// like the API server's (blocked pods are refused by budget "app/web-pdb").
type pool struct {
	c         *fake.Clientset
	mu        sync.Mutex
	images    map[string]string
	blocked   map[string]bool // pods whose eviction a budget refuses
	added     []string
	removed   []string
	cpUpgrade string
}

func newPool(t *testing.T, blocked ...string) *pool {
	t.Helper()
	p := &pool{c: fake.NewClientset(), images: map[string]string{}, blocked: map[string]bool{}}
	for _, b := range blocked {
		p.blocked[b] = true
	}
	ctx := context.Background()
	p.node(ctx, "k-control-plane", oldImage, map[string]string{"node-role.kubernetes.io/control-plane": ""})
	for _, w := range []string{"w1", "w2"} {
		p.node(ctx, w, oldImage, nil)
		_, err := p.c.CoreV1().Pods("app").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + w, Namespace: "app", Labels: map[string]string{"app": "web"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web", APIVersion: "apps/v1", Controller: ptr(true)}}},
			Spec: corev1.PodSpec{NodeName: w},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	p.c.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}}}
	// The fake lists ignore field selectors: a drain must see only its node's pods.
	p.c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		node, ok := a.(k8stesting.ListAction).GetListRestrictions().Fields.RequiresExactMatch("spec.nodeName")
		if !ok {
			return false, nil, nil
		}
		obj, err := p.c.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "pods"},
			schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "")
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		var keep []corev1.Pod
		for _, pod := range list.Items {
			if pod.Spec.NodeName == node {
				keep = append(keep, pod)
			}
		}
		list.Items = keep
		return true, list, nil
	})
	p.c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if p.blocked[ev.Name] {
			err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause,
				Message: "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}}
			return true, nil, err
		}
		return true, nil, p.c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "app", ev.Name)
	})
	return p
}

func ptr[T any](v T) *T { return &v }

func (p *pool) node(ctx context.Context, name, image string, labels map[string]string) {
	p.mu.Lock()
	p.images[name] = image
	p.mu.Unlock()
	_, _ = p.c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}, metav1.CreateOptions{})
}

// target is the pool as a target.Target (the operations an upgrade uses).
type fakeTarget struct {
	target.Target
	p *pool
}

func (f fakeTarget) Client() kubernetes.Interface { return f.p.c }
func (f fakeTarget) RESTConfig() *rest.Config     { return nil }

func (f fakeTarget) Nodes(ctx context.Context) ([]target.Node, error) {
	list, err := f.p.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	var out []target.Node
	for _, n := range list.Items {
		_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
		pool := "workers"
		if cp {
			pool = "control-plane"
		}
		out = append(out, target.Node{Name: n.Name, Pool: pool, ControlPlane: cp, Image: f.p.images[n.Name], Cordoned: n.Spec.Unschedulable})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f fakeTarget) AddNode(ctx context.Context, spec target.NodeSpec) (string, error) {
	f.p.mu.Lock()
	f.p.added = append(f.p.added, spec.Name)
	f.p.mu.Unlock()
	f.p.node(ctx, spec.Name, spec.Image, spec.Labels)
	return spec.Name, nil
}

func (f fakeTarget) RemoveNode(ctx context.Context, name string) error {
	f.p.mu.Lock()
	f.p.removed = append(f.p.removed, name)
	delete(f.p.images, name)
	f.p.mu.Unlock()
	err := f.p.c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func fast(t *testing.T) {
	m, r := minute, retryDelay
	minute, retryDelay = 300*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { minute, retryDelay = m, r })
}

// rehearse plans and runs an upgrade of the pool to newImage, and returns
// the outcome, the context (journal, timeline) and the target.
func rehearse(t *testing.T, p *pool, st Settings) (scenario.Outcome, *scenario.Context, fakeTarget) {
	t.Helper()
	ctx := context.Background()
	tgt := fakeTarget{p: p}
	nodes, err := tgt.Nodes(ctx)
	require.NoError(t, err)
	s, err := Scenario(KindNodeImage, Options{Image: newImage, Settings: st}, nodes)
	require.NoError(t, err)
	j, err := journal.Open(ctx, p.c, "run-"+strings.ReplaceAll(t.Name(), "/", "-"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close(context.Background()) })
	sc := &scenario.Context{Client: p.c, Target: tgt, Timeline: timeline.New(time.Now()), Journal: j, Out: io.Discard}
	return scenario.Run(ctx, sc, s), sc, tgt
}

func state(t *testing.T, p *pool) map[string]string {
	t.Helper()
	list, err := p.c.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, n := range list.Items {
		s := p.images[n.Name]
		if n.Spec.Unschedulable {
			s += " cordoned"
		}
		if v := n.Labels[QuarantineLabel]; v != "" {
			s += " " + v
		}
		out[n.Name] = s
	}
	return out
}

func revert(t *testing.T, sc *scenario.Context, tgt fakeTarget) {
	t.Helper()
	reg := journal.NewRegistry()
	RegisterUndos(reg, tgt)
	require.NoError(t, scenario.Revert(context.Background(), sc, reg))
}

func TestSurgeOneUpgradesNodeByNode(t *testing.T) {
	fast(t)
	p := newPool(t)
	out, sc, tgt := rehearse(t, p, Settings{MaxSurge: "1"})
	require.NoError(t, out.Err)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": newImage, "w2": newImage}, state(t, p))
	assert.Equal(t, []string{"k-surge1", "w1", "w2"}, p.added, "one surge node, then each old node reimaged in turn")
	var batches []string
	for _, e := range sc.Timeline.Events() {
		if e.Kind == timeline.EvBatchStarted {
			batches = append(batches, e.Name+": "+e.Detail)
		}
	}
	assert.Equal(t, []string{"batch 1: w1", "batch 2: w2"}, batches)
	revert(t, sc, tgt)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": newImage, "w2": newImage}, state(t, p),
		"a completed upgrade is not rolled back, and its revert leaves no surge node")
}

func TestFullSurgeDrainsThePoolAtOnce(t *testing.T) {
	fast(t)
	p := newPool(t)
	out, sc, _ := rehearse(t, p, Settings{MaxSurge: "100%"})
	require.NoError(t, out.Err)
	n := 0
	for _, e := range sc.Timeline.Events() {
		if e.Kind == timeline.EvBatchStarted {
			n++
			assert.Equal(t, "w1, w2", e.Detail)
		}
	}
	assert.Equal(t, 1, n)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": newImage, "w2": newImage}, state(t, p))
}

func TestBlockedNodeWithScheduleIsMadeSchedulableAndNotUpgraded(t *testing.T) {
	fast(t)
	p := newPool(t, "web-w1")
	out, sc, tgt := rehearse(t, p, Settings{MaxSurge: "1", DrainTimeoutInMinutes: 1})
	require.Error(t, out.Err)
	assert.Equal(t, "remove the surge nodes", out.FailedStep)
	assert.Contains(t, out.Err.Error(), "upgrade failed: 1 of 2 nodes upgraded")
	assert.Contains(t, out.Err.Error(), "node w1 was made schedulable again and not upgraded")
	assert.Contains(t, out.Err.Error(), "PodDisruptionBudget app/web-pdb refused to evict web-w1")
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": oldImage, "w2": newImage}, state(t, p))
	revert(t, sc, tgt)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": oldImage, "w2": newImage}, state(t, p))
}

func TestBlockedNodeWithCordonKeepsItsSurgeNode(t *testing.T) {
	fast(t)
	p := newPool(t, "web-w1")
	out, sc, tgt := rehearse(t, p, Settings{MaxSurge: "2", DrainTimeoutInMinutes: 1, UndrainableNodeBehavior: Cordon})
	require.Error(t, out.Err)
	assert.Contains(t, out.Err.Error(), "upgrade failed: 1 of 2 nodes upgraded")
	assert.Contains(t, out.Err.Error(), "node w1 stays cordoned, labelled "+QuarantineLabel+"=Quarantined, surge node k-surge1 kept")
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": oldImage + " cordoned Quarantined", "w2": newImage,
		"k-surge1": newImage}, state(t, p))
	revert(t, sc, tgt)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": oldImage, "w2": newImage}, state(t, p),
		"the revert uncordons, unlabels and removes the kept surge node")
}

func TestCordonWithoutSurgeLeftCancels(t *testing.T) {
	fast(t)
	p := newPool(t, "web-w1")
	out, sc, tgt := rehearse(t, p, Settings{MaxSurge: "1", DrainTimeoutInMinutes: 1, UndrainableNodeBehavior: Cordon})
	require.Error(t, out.Err)
	assert.Contains(t, out.Err.Error(), "upgrade canceled: 0 of 2 nodes upgraded")
	assert.Contains(t, out.Err.Error(), "not reached: w2")
	revert(t, sc, tgt)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": oldImage, "w2": oldImage}, state(t, p))
}

// A run stopped midway is reverted to the nodes it started with: no surge
// node, no cordon.
func TestInterruptedUpgradeIsReverted(t *testing.T) {
	fast(t)
	p := newPool(t, "web-w1") // the drain of w1 hangs until the context ends
	ctx, cancel := context.WithCancel(context.Background())
	tgt := fakeTarget{p: p}
	nodes, err := tgt.Nodes(ctx)
	require.NoError(t, err)
	s, err := Scenario(KindNodeImage, Options{Image: newImage, Settings: Settings{MaxSurge: "1", DrainTimeoutInMinutes: 30}}, nodes)
	require.NoError(t, err)
	j, err := journal.Open(ctx, p.c, "run-interrupted")
	require.NoError(t, err)
	defer j.Close(context.Background())
	sc := &scenario.Context{Client: p.c, Target: tgt, Timeline: timeline.New(time.Now()), Journal: j, Out: &bytes.Buffer{}}
	time.AfterFunc(500*time.Millisecond, cancel)
	out := scenario.Run(ctx, sc, s)
	require.Error(t, out.Err)
	assert.Contains(t, state(t, p)["w1"], "cordoned")
	assert.Contains(t, state(t, p), "k-surge1")
	revert(t, sc, tgt)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": oldImage, "w2": oldImage}, state(t, p))
}

func TestSettings(t *testing.T) {
	d := Defaults()
	assert.Equal(t, 4, d.Surge(40), "10% of 40")
	assert.Equal(t, 1, d.Surge(3), "10% of 3 rounds up")
	assert.Equal(t, 10, d.Batches(40))
	assert.Equal(t, 14, Settings{MaxSurge: "33%"}.Surge(40))
	assert.Equal(t, 3, Settings{MaxSurge: "33%"}.Batches(40))
	assert.Equal(t, 2, Settings{MaxSurge: "1", MaxUnavailable: "1"}.BatchSize(5))
	assert.Equal(t, 30*time.Minute, d.DrainTimeout())
	err := Settings{MaxSurge: "0", MaxUnavailable: "0", DrainTimeoutInMinutes: -1, UndrainableNodeBehavior: "Drop"}.Validate()
	require.Error(t, err)
	for _, want := range []string{"both 0", "drainTimeoutInMinutes -1", `undrainableNodeBehavior "Drop"`} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Error(t, Settings{MaxSurge: "150%"}.Validate())
	assert.Error(t, Settings{MaxSurge: "two"}.Validate())
}

func (f fakeTarget) UpgradeControlPlane(ctx context.Context, version, image string, _ io.Writer) error {
	f.p.mu.Lock()
	f.p.cpUpgrade = version + " from " + image
	f.p.mu.Unlock()
	return nil
}

func TestKubernetesUpgradeDoesTheControlPlaneFirst(t *testing.T) {
	fast(t)
	p := newPool(t)
	ctx := context.Background()
	tgt := fakeTarget{p: p}
	nodes, err := tgt.Nodes(ctx)
	require.NoError(t, err)
	for i := range nodes {
		nodes[i].Version = "v1.33.13"
	}
	s, err := KubernetesScenario("v1.34.4", Options{Image: newImage, Settings: Settings{MaxSurge: "100%"}}, nodes)
	require.NoError(t, err)
	require.Len(t, s.Steps, 4)
	assert.Equal(t, "upgrade the control plane k-control-plane to v1.34.4 in place", s.Steps[0].Name())
	j, err := journal.Open(ctx, p.c, "run-k8s")
	require.NoError(t, err)
	defer j.Close(ctx)
	sc := &scenario.Context{Client: p.c, Target: tgt, Timeline: timeline.New(time.Now()), Journal: j, Out: io.Discard}
	out := scenario.Run(ctx, sc, s)
	require.NoError(t, out.Err)
	assert.Equal(t, "v1.34.4 from "+newImage, p.cpUpgrade)
	assert.Equal(t, map[string]string{"k-control-plane": oldImage, "w1": newImage, "w2": newImage}, state(t, p))

	_, err = KubernetesScenario("v1.35.0", Options{Image: newImage}, nodes)
	assert.ErrorContains(t, err, "one minor version at a time")
	_, err = KubernetesScenario("v1.32.0", Options{Image: newImage}, nodes)
	assert.ErrorContains(t, err, "downgrade")
}

// The undo of a reimage after the run stopped in its middle: a node that
// is back and Ready is left alone; a missing node is added from its old
// image; a node registered but never Ready (its join cut short) is replaced.
func TestRestoreNodeUndo(t *testing.T) {
	was := rejoinWait
	rejoinWait = 100 * time.Millisecond
	t.Cleanup(func() { rejoinWait = was })
	ctx := context.Background()
	undo := func(p *pool, node string) {
		t.Helper()
		j, err := journal.Open(ctx, p.c, "run-restore-node")
		require.NoError(t, err)
		defer j.Close(ctx)
		tgt := fakeTarget{p: p}
		sc := &scenario.Context{Client: p.c, Target: tgt, Timeline: timeline.New(time.Now()), Journal: j, Out: io.Discard}
		require.NoError(t, sc.Change(ctx, "reimage node "+node, RestoreNode(node, "workers", oldImage),
			func(context.Context) error { return nil }))
		revert(t, sc, tgt)
	}

	p := newPool(t)
	undo(p, "w1")
	assert.Empty(t, p.added, "a Ready node is left alone")

	p = newPool(t)
	require.NoError(t, fakeTarget{p: p}.RemoveNode(ctx, "w1"))
	undo(p, "w1")
	assert.Equal(t, []string{"w1"}, p.added)
	assert.Equal(t, oldImage, state(t, p)["w1"])

	p = newPool(t)
	n, err := p.c.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	require.NoError(t, err)
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
	_, err = p.c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
	undo(p, "w1")
	assert.Equal(t, []string{"w1"}, p.removed, "the half-joined node is removed")
	assert.Equal(t, []string{"w1"}, p.added, "and added again")
}
