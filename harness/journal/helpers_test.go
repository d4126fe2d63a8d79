package journal

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

var bg = context.Background()

const run = "20261123-115012-a1b2"

// clock is a settable clock for WithClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 11, 50, 12, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func clientWith(objs ...runtime.Object) *fake.Clientset { return fake.NewClientset(objs...) }

// open opens run's journal and closes it when the test ends (Close of a
// closed journal does nothing).
func open(t *testing.T, cs kubernetes.Interface, opts ...Option) *Journal {
	t.Helper()
	j, err := Open(bg, cs, run, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { j.stopBeat(); <-j.beatDone })
	return j
}

// kill leaves the journal as SIGKILL would: no more heartbeats, no Close.
func kill(j *Journal) {
	j.stopBeat()
	<-j.beatDone
}

// deadOwner is this machine with the pid of a process that has exited and
// been reaped.
func deadOwner(t *testing.T) Owner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	require.NoError(t, cmd.Run())
	o := self(time.Now())
	o.PID = cmd.Process.Pid
	return o
}

func journalMap(t *testing.T, cs kubernetes.Interface, r string) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(Namespace).Get(bg, ConfigMapName(r), metav1.GetOptions{})
	require.NoError(t, err)
	return cm
}

func getNode(t *testing.T, cs kubernetes.Interface, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(bg, name, metav1.GetOptions{})
	require.NoError(t, err)
	return n
}

// cordon and taint make the changes the way a step would, after Record.
func cordon(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	n := getNode(t, cs, name)
	n.Spec.Unschedulable = true
	_, err := cs.CoreV1().Nodes().Update(bg, n, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func taint(t *testing.T, cs kubernetes.Interface, name string, tt corev1.Taint) {
	t.Helper()
	n := getNode(t, cs, name)
	n.Spec.Taints = append(n.Spec.Taints, tt)
	_, err := cs.CoreV1().Nodes().Update(bg, n, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func seqs(es []Entry) []int {
	out := []int{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}
