package journal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"
)

func TestRecordIsInTheClusterWhenItReturns(t *testing.T) {
	cs := clientWith(newNode("n1"))
	c := newClock()
	j := open(t, cs, WithClock(c.Now))
	assert.Equal(t, run, j.Run())

	e, err := j.Record(bg, "cordon", "cordon node n1", Uncordon("n1"))
	require.NoError(t, err)
	assert.Equal(t, Entry{Seq: 1, Step: "cordon", Change: "cordon node n1", Undo: Uncordon("n1"), At: c.Now()}, e)

	ns, err := cs.CoreV1().Namespaces().Get(bg, Namespace, metav1.GetOptions{})
	require.NoError(t, err, "the namespace is created on first use")
	assert.Equal(t, ManagedBy, ns.Labels[LabelManagedBy])

	cm := journalMap(t, cs, run)
	assert.Equal(t, "journal-"+run, cm.Name)
	assert.Equal(t, map[string]string{LabelManagedBy: ManagedBy, LabelJournal: "true"}, cm.Labels)
	assert.Equal(t, strconv.Itoa(os.Getpid()), cm.Annotations[annOwnerPID])
	assert.Equal(t, thisHost().host, cm.Annotations[annOwnerHost])
	assert.Equal(t, thisHost().bootID, cm.Annotations[annOwnerBootID])
	assert.Equal(t, formatTime(c.Now()), cm.Annotations[annHeartbeat])
	require.Contains(t, cm.Data, "entry-0001")
	var stored Entry
	require.NoError(t, json.Unmarshal([]byte(cm.Data["entry-0001"]), &stored))
	assert.Equal(t, e, stored)

	es, err := j.Entries(bg)
	require.NoError(t, err)
	assert.Equal(t, []Entry{e}, es)
}

func TestRecordRefusesAnEntryWithoutUndo(t *testing.T) {
	j := open(t, clientWith())
	_, err := j.Record(bg, "s", "cordon node n1", Undo{})
	assert.ErrorContains(t, err, "undo kind")
}

// probe is an undo kind that notes, each time it runs, its entry's id and
// the entry keys the journal held at that moment.
type probe struct {
	mu    sync.Mutex
	ids   []string
	held  [][]string
	fails map[string]error
}

func (p *probe) undo(ctx context.Context, client kubernetes.Interface, params map[string]string) error {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, ConfigMapName(params["run"]), metav1.GetOptions{})
	var keys []string
	if err == nil {
		for k := range cm.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, params["id"])
	p.held = append(p.held, keys)
	return p.fails[params["id"]]
}

func probeUndo(r, id string) Undo {
	return Undo{Kind: "probe", Params: map[string]string{"run": r, "id": id}}
}

func TestRevertUndoesNewestFirstAndRemovesEachEntryAtOnce(t *testing.T) {
	cs := clientWith()
	j := open(t, cs)
	for _, id := range []string{"a", "b", "c"} {
		_, err := j.Record(bg, "step-"+id, "change "+id, probeUndo(run, id))
		require.NoError(t, err)
	}
	p := &probe{}
	reg := NewRegistry()
	reg.Register("probe", p.undo)
	var heard []int
	require.NoError(t, j.Revert(bg, reg, func(e Entry, err error) {
		assert.NoError(t, err)
		heard = append(heard, e.Seq)
	}))

	assert.Equal(t, []string{"c", "b", "a"}, p.ids)
	assert.Equal(t, [][]string{
		{"entry-0001", "entry-0002", "entry-0003"},
		{"entry-0001", "entry-0002"},
		{"entry-0001"},
	}, p.held, "each entry leaves the journal as soon as it is undone")
	assert.Equal(t, []int{3, 2, 1}, heard)
	es, err := j.Entries(bg)
	require.NoError(t, err)
	assert.Empty(t, es)

	// Numbers keep increasing after a revert: a Node marker never names
	// two changes.
	e, err := j.Record(bg, "later", "change d", probeUndo(run, "d"))
	require.NoError(t, err)
	assert.Equal(t, 4, e.Seq)
}

func TestRevertKeepsAndReportsWhatFails(t *testing.T) {
	cs := clientWith()
	j := open(t, cs)
	p := &probe{fails: map[string]error{"broken": errors.New("api server said no")}}
	reg := NewRegistry()
	reg.Register("probe", p.undo)
	_, err := j.Record(bg, "s1", "change ok1", probeUndo(run, "ok1"))
	require.NoError(t, err)
	_, err = j.Record(bg, "s2", "change broken", probeUndo(run, "broken"))
	require.NoError(t, err)
	_, err = j.Record(bg, "s3", "scale coredns to 0", Undo{Kind: "scale-back", Params: map[string]string{"deployment": "kube-system/coredns", "replicas": "2"}})
	require.NoError(t, err)
	_, err = j.Record(bg, "s4", "change ok2", probeUndo(run, "ok2"))
	require.NoError(t, err)

	heard := map[int]error{}
	err = j.Revert(bg, reg, func(e Entry, err error) { heard[e.Seq] = err })
	require.Error(t, err)
	assert.ErrorContains(t, err, "api server said no")
	assert.ErrorContains(t, err, `undo kind "scale-back" is unknown to this harness`)
	assert.ErrorContains(t, err, "rehearse restore")
	var unknown *UnknownKindError
	require.ErrorAs(t, err, &unknown)
	assert.Equal(t, "scale-back", unknown.Kind)
	assert.Contains(t, unknown.Known, KindUncordon)

	assert.Equal(t, []string{"ok2", "broken", "ok1"}, p.ids, "a failure does not stop the older entries")
	assert.Len(t, heard, 4)
	assert.NoError(t, heard[1])
	assert.Error(t, heard[2])
	assert.Error(t, heard[3])
	assert.NoError(t, heard[4])
	es, err := j.Entries(bg)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 3}, seqs(es), "failed entries stay for a later restore")
}

func TestNodesAreMarkedWhileChangedAndUnmarkedWhenUndone(t *testing.T) {
	n1 := newNode("n1")
	n1.Annotations = map[string]string{"someone.else/note": "keep me"}
	cs := clientWith(n1, newNode("n2"))
	j := open(t, cs)
	key := NodeAnnotation(run)
	assert.Equal(t, "journal.rehearse.io/"+run, key)

	noSchedule := corev1.Taint{Key: "rehearse.io/fault", Value: "x", Effect: corev1.TaintEffectNoSchedule}
	_, err := j.Record(bg, "cordon", "cordon node n1", Uncordon("n1"))
	require.NoError(t, err)
	cordon(t, cs, "n1")
	_, err = j.Record(bg, "label", "label node n2 with pool=old", RemoveNodeLabel("n2", "pool"))
	require.NoError(t, err)
	_, err = j.Record(bg, "taint", "taint node n1 with rehearse.io/fault=x:NoSchedule", RemoveTaint("n1", noSchedule))
	require.NoError(t, err)
	taint(t, cs, "n1", noSchedule)
	_, err = j.Record(bg, "gone", "cordon node ghost", Uncordon("ghost"))
	require.NoError(t, err, "a Node that does not exist is not an error")

	assert.Equal(t, "1,3", getNode(t, cs, "n1").Annotations[key])
	assert.Equal(t, "2", getNode(t, cs, "n2").Annotations[key])

	var undone []int
	require.NoError(t, j.Revert(bg, NewRegistry(), func(e Entry, err error) {
		if err == nil {
			undone = append(undone, e.Seq)
		}
		if e.Seq == 3 {
			// The taint's mark is gone, the cordon's is still there.
			assert.Equal(t, "1", getNode(t, cs, "n1").Annotations[key])
		}
	}))
	assert.Equal(t, []int{4, 3, 2, 1}, undone)
	got := getNode(t, cs, "n1")
	assert.Equal(t, map[string]string{"someone.else/note": "keep me"}, got.Annotations, "the marker goes, other annotations stay")
	assert.False(t, got.Spec.Unschedulable)
	assert.Empty(t, got.Spec.Taints)
	assert.NotContains(t, getNode(t, cs, "n2").Annotations, key)
}

func TestCloseDeletesAnEmptyJournal(t *testing.T) {
	cs := clientWith()
	j := open(t, cs)
	_, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)
	reg := NewRegistry()
	reg.Register("probe", (&probe{}).undo)
	require.NoError(t, j.Revert(bg, reg, nil))
	require.NoError(t, j.Close(bg))
	_, err = cs.CoreV1().ConfigMaps(Namespace).Get(bg, ConfigMapName(run), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "got %v", err)
	require.NoError(t, j.Close(bg), "Close after Close does nothing")
}

func TestCloseKeepsAJournalWithEntriesForRestore(t *testing.T) {
	cs := clientWith(newNode("n1"))
	c := newClock()
	j := open(t, cs, WithClock(c.Now))
	_, err := j.Record(bg, "cordon", "cordon node n1", Uncordon("n1"))
	require.NoError(t, err)
	c.Advance(time.Minute)
	require.NoError(t, j.Close(bg))

	cm := journalMap(t, cs, run)
	assert.Equal(t, formatTime(c.Now()), cm.Annotations[annClosed])
	assert.Len(t, cm.Data, 1)
	_, err = j.Record(bg, "late", "cordon node n1", Uncordon("n1"))
	assert.ErrorContains(t, err, "closed")

	// A closed journal is a leftover at once, though its owner (this
	// process) still runs.
	left, err := Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Contains(t, left[0].Why, "closed by its owner")
}

func TestHeartbeatIsRefreshedUntilClose(t *testing.T) {
	cs := clientWith()
	c := newClock()
	j := open(t, cs, WithClock(c.Now), WithHeartbeat(5*time.Millisecond))
	_, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)
	c.Advance(42 * time.Second)
	want := formatTime(c.Now())
	require.Eventually(t, func() bool {
		return journalMap(t, cs, run).Annotations[annHeartbeat] == want
	}, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, j.Close(bg))
	c.Advance(time.Hour)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, want, journalMap(t, cs, run).Annotations[annHeartbeat], "no heartbeat after Close")
}

func TestRecordRetriesOnConflict(t *testing.T) {
	cs := clientWith()
	j := open(t, cs)
	var mu sync.Mutex
	updates := 0
	cs.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		updates++
		if updates == 1 {
			return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), ConfigMapName(run), errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	e, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)
	assert.Equal(t, 2, updates, "one conflict, one retry")
	es, err := j.Entries(bg)
	require.NoError(t, err)
	assert.Equal(t, []Entry{e}, es)
}

func TestRecordWritesAgainAJournalDeletedUnderIt(t *testing.T) {
	cs := clientWith()
	j := open(t, cs)
	require.NoError(t, cs.CoreV1().ConfigMaps(Namespace).Delete(bg, ConfigMapName(run), metav1.DeleteOptions{}))
	e, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)
	es, err := j.Entries(bg)
	require.NoError(t, err)
	assert.Equal(t, []Entry{e}, es)
}

func TestOpenRefusesAJournalThatIsNotItsOwn(t *testing.T) {
	t.Run("live owner", func(t *testing.T) {
		cs := clientWith()
		open(t, cs)
		_, err := Open(bg, cs, run)
		assert.ErrorContains(t, err, "already has a journal")
		assert.ErrorContains(t, err, "is running")
	})
	t.Run("gone owner with entries", func(t *testing.T) {
		// Its changes must be restored, not taken over.
		cs := clientWith()
		first := open(t, cs, withOwner(deadOwner(t)))
		_, err := first.Record(bg, "s", "change a", probeUndo(run, "a"))
		require.NoError(t, err)
		kill(first)
		_, err = Open(bg, cs, run)
		assert.ErrorContains(t, err, "1 entries; owner pid")
		assert.ErrorContains(t, err, "run `rehearse restore`, or use a new run id")
	})
}

func TestOpenAdoptsAnEmptyJournalOfAGoneOwner(t *testing.T) {
	cs := clientWith()
	dead := deadOwner(t)
	kill(open(t, cs, withOwner(dead)))
	j := open(t, cs)
	assert.Equal(t, strconv.Itoa(os.Getpid()), journalMap(t, cs, run).Annotations[annOwnerPID])
	_, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)
}

func TestOpenRefusesANamespaceBeingDeleted(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	_, err := Open(bg, clientWith(ns), run)
	assert.ErrorContains(t, err, "being deleted")
}

func TestRunNamesAreDNSLabels(t *testing.T) {
	assert.Equal(t, "journal-"+run, ConfigMapName(run), "run ids pass unchanged")
	for _, r := range []string{run, "Run_1", "a.b", "a_b", "--x--", "ü", strings.Repeat("long-run-", 20)} {
		name := ConfigMapName(r)
		assert.Empty(t, validation.IsDNS1123Label(name), "%q -> %q", r, name)
		assert.Empty(t, validation.IsQualifiedName(NodeAnnotation(r)), "%q -> %q", r, NodeAnnotation(r))
	}
	assert.NotEqual(t, ConfigMapName("a.b"), ConfigMapName("a_b"), "sanitising does not merge runs")
	assert.NotEqual(t, ConfigMapName("a-b"), ConfigMapName("a_b"))
}
