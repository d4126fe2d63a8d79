package dns

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// kubeadm's Corefile, as kind clusters have it.
const corefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`

func TestBreak(t *testing.T) {
	dead, err := Break(corefile, ModeDeadUpstream, "")
	require.NoError(t, err)
	assert.Contains(t, dead, "    forward . 192.0.2.53 {\n       max_concurrent 1000\n    }")
	assert.NotContains(t, dead, "/etc/resolv.conf")
	assert.Equal(t, strings.Count(corefile, "\n"), strings.Count(dead, "\n"), "only the forward line changed")

	sf, err := Break(corefile, ModeServfail, "svc.cluster.local")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(sf, "svc.cluster.local:53 {\n    errors\n    template ANY ANY svc.cluster.local {\n        rcode SERVFAIL\n    }\n}\n"))
	assert.True(t, strings.HasSuffix(sf, corefile), "the original follows unchanged")

	_, err = Break(".:53 {\n    errors\n}\n", ModeDeadUpstream, "")
	assert.ErrorContains(t, err, "no `forward . ...` line")
	_, err = Misconfig("meltdown", "", time.Second)
	assert.ErrorContains(t, err, "dead-upstream")
	_, err = Misconfig(ModeServfail, "", time.Second)
	assert.ErrorContains(t, err, "zone=")
}

// coreDNS is a fake kube-system with CoreDNS: its pods follow the
// Deployment's replicas (created ready, deleted on scale down) and a
// deleted pod is replaced, as the ReplicaSet would.
type coreDNS struct {
	cs     *fake.Clientset
	mu     sync.Mutex
	serial int
}

func newCoreDNS(t *testing.T, replicas int32) *coreDNS {
	t.Helper()
	c := &coreDNS{cs: fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: Deployment, Namespace: Namespace}, Spec: appsv1.DeploymentSpec{Replicas: &replicas}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMap, Namespace: Namespace}, Data: map[string]string{CorefileKey: corefile, "other": "kept"}},
	)}
	for range replicas {
		c.addPod()
	}
	c.cs.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		var want int
		if _, err := fmt.Sscanf(string(p.GetPatch()), `{"spec":{"replicas":%d}}`, &want); err == nil {
			go c.follow(want)
		}
		return false, nil, nil
	})
	c.cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		go func() {
			time.Sleep(20 * time.Millisecond)
			d, _ := c.cs.AppsV1().Deployments(Namespace).Get(context.Background(), Deployment, metav1.GetOptions{})
			c.follow(int(*d.Spec.Replicas))
		}()
		return false, nil, nil
	})
	return c
}

func (c *coreDNS) addPod() {
	c.mu.Lock()
	c.serial++
	name := fmt.Sprintf("coredns-%d", c.serial)
	c.mu.Unlock()
	_, _ = c.cs.CoreV1().Pods(Namespace).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: map[string]string{"k8s-app": "kube-dns"}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}, metav1.CreateOptions{})
}

func (c *coreDNS) pods() []string {
	list, _ := c.cs.CoreV1().Pods(Namespace).List(context.Background(), metav1.ListOptions{})
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	return out
}

// follow makes the pods as many as want.
func (c *coreDNS) follow(want int) {
	time.Sleep(20 * time.Millisecond)
	names := c.pods()
	for i := len(names); i < want; i++ {
		c.addPod()
	}
	for i := want; i < len(names); i++ {
		_ = c.cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), Namespace, names[i])
	}
}

func run(t *testing.T, client kubernetes.Interface, tgt target.Target, s scenario.Scenario) (scenario.Outcome, *scenario.Context) {
	t.Helper()
	j, err := journal.Open(context.Background(), client, "run-"+strings.ReplaceAll(t.Name(), "/", "-"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close(context.Background()) })
	sc := &scenario.Context{Client: client, Target: tgt, Timeline: timeline.New(time.Now()), Journal: j, Out: io.Discard}
	return scenario.Run(context.Background(), sc, s), sc
}

func revert(t *testing.T, sc *scenario.Context, tgt target.Target) {
	t.Helper()
	reg := journal.NewRegistry()
	RegisterUndos(reg, tgt)
	require.NoError(t, scenario.Revert(context.Background(), sc, reg))
}

func TestOutageScalesToZeroAndBack(t *testing.T) {
	c := newCoreDNS(t, 2)
	out, sc := run(t, c.cs, nil, Outage(50*time.Millisecond))
	require.NoError(t, out.Err)
	assert.Empty(t, c.pods(), "no CoreDNS pod during the outage")
	entries, err := sc.Journal.Entries(context.Background())
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, ScaleBack(Namespace, Deployment, 2), entries[0].Undo)

	revert(t, sc, nil)
	d, err := c.cs.AppsV1().Deployments(Namespace).Get(context.Background(), Deployment, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(2), *d.Spec.Replicas, "CoreDNS's replicas are back")
	assert.Len(t, c.pods(), 2, "and serving")
}

func TestMisconfigIsRestoredByteForByte(t *testing.T) {
	c := newCoreDNS(t, 2)
	before := c.pods()
	s, err := Misconfig(ModeServfail, "svc.cluster.local", 10*time.Millisecond)
	require.NoError(t, err)
	out, sc := run(t, c.cs, nil, s)
	require.NoError(t, out.Err)
	cm, err := c.cs.CoreV1().ConfigMaps(Namespace).Get(context.Background(), ConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Contains(t, cm.Data[CorefileKey], "rcode SERVFAIL")
	assert.NotContains(t, c.pods(), before[0], "the pods were replaced to load it")

	revert(t, sc, nil)
	cm, err = c.cs.CoreV1().ConfigMaps(Namespace).Get(context.Background(), ConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{CorefileKey: corefile, "other": "kept"}, cm.Data, "byte for byte, other keys untouched")
	assert.Len(t, c.pods(), 2)

	// Undone already: the undo changes nothing and replaces no pod.
	pods := c.pods()
	require.NoError(t, undoRestoreCorefile(context.Background(), c.cs, map[string]string{"corefile": corefile}))
	assert.Equal(t, pods, c.pods())
}

// nodeShell is a target whose nodes run commands: it keeps the packet
// filter rules that iptables commands add and delete.
type nodeShell struct {
	target.Target
	mu    sync.Mutex
	rules map[string][]string // node -> rules
	calls []string
}

func (n *nodeShell) Exec(_ context.Context, node string, _ io.Reader, cmd ...string) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	line := strings.Join(cmd, " ")
	n.calls = append(n.calls, node+": "+line)
	switch {
	case cmd[0] == "iptables" && cmd[5] == "-I":
		n.rules[node] = append(n.rules[node], strings.Join(cmd[6:], " "))
	case cmd[0] == "sh":
		var keep []string
		for _, r := range n.rules[node] {
			if !strings.Contains(r, dropComment) {
				keep = append(keep, r)
			}
		}
		n.rules[node] = keep
	}
	return nil, nil
}

func TestDropAddsRulesAndTheUndoRemovesThem(t *testing.T) {
	sh := &nodeShell{rules: map[string][]string{"w1": {"an earlier rule"}}}
	cs := fake.NewClientset()
	out, sc := run(t, cs, sh, Drop([]string{"w1", "w2"}, 10*time.Millisecond))
	require.NoError(t, out.Err)
	assert.Equal(t, []string{"an earlier rule",
		"PREROUTING -p udp --dport 53 -m comment --comment rehearse-dns-drop -j DROP",
		"PREROUTING -p tcp --dport 53 -m comment --comment rehearse-dns-drop -j DROP"}, sh.rules["w1"])
	assert.Len(t, sh.rules["w2"], 2)
	assert.Contains(t, sh.calls[0], "w1: iptables -w 5 -t raw -I PREROUTING -p udp --dport 53")

	revert(t, sc, sh)
	assert.Equal(t, []string{"an earlier rule"}, sh.rules["w1"], "only the rules dns-drop added are gone")
	assert.Empty(t, sh.rules["w2"])
	last := sh.calls[len(sh.calls)-1]
	assert.Contains(t, last, "while iptables -w 5 -t raw -D PREROUTING -p tcp --dport 53 -m comment --comment rehearse-dns-drop -j DROP 2>/dev/null; do :; done")

	// Without node access the undo says so and stays in the journal.
	j, err := journal.Open(context.Background(), cs, "run-no-node-access")
	require.NoError(t, err)
	_, err = j.Record(context.Background(), "drop", "packet filter on node w1", RemoveDrop("w1"))
	require.NoError(t, err)
	reg := journal.NewRegistry()
	RegisterUndos(reg, nil)
	err = scenario.Revert(context.Background(), &scenario.Context{Client: cs, Journal: j, Out: io.Discard}, reg)
	assert.ErrorContains(t, err, "not available on this target")
}
