package nodeloss

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// machines is a simulated cluster's nodes: a Node object each, and a
// machine that is running or stopped.
type machines struct {
	target.Target
	c       *fake.Clientset
	mu      sync.Mutex
	running map[string]bool
	log     []string
}

func newMachines(t *testing.T) *machines {
	t.Helper()
	m := &machines{c: fake.NewClientset(), running: map[string]bool{}}
	for _, n := range []string{"w1", "w2"} {
		m.add(n)
	}
	tol := int64(30)
	for i, node := range []string{"w1", "w1", "w2"} {
		_, err := m.c.CoreV1().Pods("app").Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + string(rune('a'+i)), Namespace: "app", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: node, Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tol}}},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	return m
}

func (m *machines) add(name string) {
	m.mu.Lock()
	m.running[name] = true
	m.mu.Unlock()
	_, _ = m.c.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}, metav1.CreateOptions{})
}

func (m *machines) Client() kubernetes.Interface { return m.c }

func (m *machines) StopNode(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running[name] = false
	m.log = append(m.log, "stop "+name)
	return nil
}

func (m *machines) RemoveNode(ctx context.Context, name string) error {
	m.mu.Lock()
	delete(m.running, name)
	m.log = append(m.log, "remove "+name)
	m.mu.Unlock()
	return m.c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
}

func (m *machines) AddNode(_ context.Context, spec target.NodeSpec) (string, error) {
	m.mu.Lock()
	m.log = append(m.log, "add "+spec.Name+" from "+spec.Image)
	m.mu.Unlock()
	m.add(spec.Name)
	return spec.Name, nil
}

func (m *machines) Exec(_ context.Context, node string, _ io.Reader, _ ...string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running[node] {
		return nil, errors.New("container is not running")
	}
	return nil, nil
}

func run(t *testing.T, m *machines, o Options) (*scenario.Context, *journal.Registry) {
	t.Helper()
	ctx := context.Background()
	s, err := Scenario(o)
	require.NoError(t, err)
	j, err := journal.Open(ctx, m.c, "run-1")
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close(context.Background()) })
	sc := &scenario.Context{Client: m.c, Target: m, Timeline: timeline.New(time.Now()), Journal: j, Out: &bytes.Buffer{}, Namespace: "app"}
	reg := journal.NewRegistry()
	RegisterUndos(reg, m)
	// The cluster's response, as the taint manager and the Deployment
	// would give it: the lost pods replaced on w2 a moment later.
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, n := range []string{"web-x", "web-y"} {
			_, _ = m.c.CoreV1().Pods("app").Create(context.Background(), &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "app", Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{NodeName: "w2"},
				Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			}, metav1.CreateOptions{})
		}
	}()
	out := scenario.Run(ctx, sc, s)
	require.NoError(t, out.Err)
	return sc, reg
}

// The power-off is journaled before it is made, recorded on the timeline
// with the pods' tolerations, and the wait ends when the replicas serve
// from other nodes; the revert brings a new machine under the old name.
func TestPowerOffIsJournaledAndRevertedByANewMachine(t *testing.T) {
	m := newMachines(t)
	sc, reg := run(t, m, Options{Node: "w1", Pool: "workers", Image: "node:1", Selector: "app=web", Replicas: 3, Timeout: 5 * time.Second})
	es, err := sc.Journal.Entries(context.Background())
	require.NoError(t, err)
	require.Len(t, es, 1)
	assert.Equal(t, KindReplaceNode, es[0].Undo.Kind)
	assert.Equal(t, []string{"stop w1"}, m.log)

	var stopped, notes int
	for _, e := range sc.Timeline.Events() {
		switch {
		case e.Kind == timeline.EvNodeStopped && e.Node == "w1":
			stopped++
		case e.Kind == timeline.EvNote && e.Name == TolerationNote:
			notes++
			assert.Equal(t, 30*time.Second, e.Value)
		}
	}
	assert.Equal(t, 1, stopped)
	assert.Equal(t, 2, notes, "one per pod of the lost node")

	require.NoError(t, scenario.Revert(context.Background(), sc, reg))
	assert.Equal(t, []string{"stop w1", "remove w1", "add w1 from node:1"}, m.log)
	left, err := sc.Journal.Entries(context.Background())
	require.NoError(t, err)
	assert.Empty(t, left)
}

// An undo that finds the node alive and Ready (the run was stopped between
// the journal entry and the power-off) leaves it alone.
func TestReplaceNodeLeavesALiveNodeAlone(t *testing.T) {
	m := newMachines(t)
	ctx := context.Background()
	reg := journal.NewRegistry()
	RegisterUndos(reg, m)
	j, err := journal.Open(ctx, m.c, "run-2")
	require.NoError(t, err)
	defer j.Close(ctx)
	_, err = j.Record(ctx, "power off", "power off node w1", ReplaceNode("w1", "workers", "node:1"))
	require.NoError(t, err)
	sc := &scenario.Context{Client: m.c, Target: m, Journal: j}
	require.NoError(t, scenario.Revert(ctx, sc, reg))
	assert.Empty(t, m.log)
}

func TestUnreachableToleration(t *testing.T) {
	secs := func(n int64) *int64 { return &n }
	pod := func(ts ...corev1.Toleration) *corev1.Pod { return &corev1.Pod{Spec: corev1.PodSpec{Tolerations: ts}} }
	assert.Equal(t, DefaultToleration, UnreachableToleration(pod()))
	assert.Equal(t, 30*time.Second, UnreachableToleration(pod(corev1.Toleration{Key: corev1.TaintNodeUnreachable,
		Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs(30)})))
	assert.Equal(t, time.Duration(-1), UnreachableToleration(pod(corev1.Toleration{Operator: corev1.TolerationOpExists})))
	assert.Equal(t, DefaultToleration, UnreachableToleration(pod(corev1.Toleration{Key: "other", Operator: corev1.TolerationOpExists})))
}
