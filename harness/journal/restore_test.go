package journal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestADeadOwnerOnThisHostIsALeftoverAtOnce(t *testing.T) {
	cs := clientWith()
	c := newClock()
	j := open(t, cs, WithClock(c.Now), withOwner(deadOwner(t)))
	_, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)
	kill(j)

	left, err := Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	require.Len(t, left, 1, "the heartbeat is fresh, the process table decides")
	assert.Equal(t, run, left[0].Run)
	assert.Equal(t, j.Owner(), left[0].Owner)
	assert.True(t, c.Now().Equal(left[0].Heartbeat), "heartbeat %s", left[0].Heartbeat)
	assert.Equal(t, []int{1}, seqs(left[0].Entries))
	assert.Regexp(t, `^owner pid \d+ on this host has exited$`, left[0].Why)
}

func TestALiveOwnerIsNotALeftoverUnlessForced(t *testing.T) {
	cs := clientWith()
	c := newClock()
	j := open(t, cs, WithClock(c.Now)) // this process: os.Getpid()
	_, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
	require.NoError(t, err)

	left, err := Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	assert.Empty(t, left)

	// On this host the process table wins over a stalled heartbeat: the
	// owner is alive and will revert its own changes.
	kill(j)
	c.Advance(10 * time.Minute)
	left, err = Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	assert.Empty(t, left)

	report, err := Restore(bg, cs, NewRegistry(), WithClock(c.Now))
	require.NoError(t, err)
	assert.Empty(t, report.Journals)
	require.Len(t, report.InUse, 1)
	assert.Regexp(t, `^owner pid \d+ on this host is running$`, report.InUse[0].Why)
	assert.Contains(t, report.String(), "in use, not touched")

	left, err = Leftovers(bg, cs, WithClock(c.Now), Force())
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Contains(t, left[0].Why, "taken by force")
}

func TestAPidNowHeldByAnotherProcessIsALeftover(t *testing.T) {
	cs := clientWith()
	o := self(time.Now())
	o.Started = o.Started.Add(-time.Hour)
	kill(open(t, cs, withOwner(o)))
	left, err := Leftovers(bg, cs)
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Contains(t, left[0].Why, "is now another process")
}

func TestAnOwnerOnAnotherHostIsJudgedByItsHeartbeat(t *testing.T) {
	cs := clientWith()
	c := newClock()
	ci := Owner{Host: "ci-7", BootID: "0c1d2e3f", PID: 1234, Started: c.Now().Add(-time.Minute)}
	kill(open(t, cs, WithClock(c.Now), withOwner(ci)))

	c.Advance(10 * time.Second)
	left, err := Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	assert.Empty(t, left, "a heartbeat 10 s old is fresh")

	c.Advance(2 * time.Minute)
	left, err = Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Equal(t, "no heartbeat from host ci-7 (pid 1234) for 2m10s", left[0].Why)

	left, err = Leftovers(bg, cs, WithClock(c.Now), WithStaleAfter(5*time.Minute))
	require.NoError(t, err)
	assert.Empty(t, left, "the stale window is an option")
}

func TestAnotherBootOfThisHostNameIsJudgedByItsHeartbeat(t *testing.T) {
	// Same name, other boot id: this machine rebooted, or another machine
	// with the same name; its pids mean nothing here.
	cs := clientWith()
	c := newClock()
	o := self(c.Now())
	o.BootID = "another-boot"
	o.PID = 1 // alive here, but not the same process
	kill(open(t, cs, WithClock(c.Now), withOwner(o)))
	left, err := Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	assert.Empty(t, left)
	c.Advance(time.Minute)
	left, err = Leftovers(bg, cs, WithClock(c.Now))
	require.NoError(t, err)
	assert.Len(t, left, 1)
}

func TestRestoreUndoesAKilledRunAndLeavesTheNodeClean(t *testing.T) {
	n1 := newNode("n1")
	theirs := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	n1.Spec.Taints = []corev1.Taint{theirs}
	cs := clientWith(n1)
	c := newClock()

	// The run: journal, then change; then SIGKILL.
	j := open(t, cs, WithClock(c.Now), withOwner(deadOwner(t)))
	_, err := j.Record(bg, "cordon", "cordon node n1", Uncordon("n1"))
	require.NoError(t, err)
	cordon(t, cs, "n1")
	ours := corev1.Taint{Key: "rehearse.io/fault", Value: "dns", Effect: corev1.TaintEffectNoExecute}
	_, err = j.Record(bg, "taint", "taint node n1 with rehearse.io/fault=dns:NoExecute", RemoveTaint("n1", ours))
	require.NoError(t, err)
	taint(t, cs, "n1", ours)
	kill(j)
	require.Equal(t, "1,2", getNode(t, cs, "n1").Annotations[NodeAnnotation(run)])

	// Later, another process.
	report, err := Restore(bg, cs, NewRegistry(), WithClock(c.Now))
	require.NoError(t, err)
	require.Len(t, report.Journals, 1)
	rj := report.Journals[0]
	assert.Equal(t, run, rj.Run)
	assert.Contains(t, rj.Why, "has exited")
	assert.Equal(t, []int{2, 1}, seqs(rj.Undone), "newest first")
	assert.Empty(t, rj.Failed)
	assert.True(t, rj.Deleted)
	assert.Contains(t, report.String(), "undone #2 taint node n1 with rehearse.io/fault=dns:NoExecute (step taint)")

	got := getNode(t, cs, "n1")
	assert.False(t, got.Spec.Unschedulable)
	assert.Equal(t, []corev1.Taint{theirs}, got.Spec.Taints, "only our taint goes")
	assert.NotContains(t, got.Annotations, NodeAnnotation(run))
	_, err = cs.CoreV1().ConfigMaps(Namespace).Get(bg, ConfigMapName(run), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the emptied journal is deleted: %v", err)

	// Nothing left: a second restore has nothing to do.
	report, err = Restore(bg, cs, NewRegistry())
	require.NoError(t, err)
	assert.Empty(t, report.Journals)
	assert.Equal(t, "no leftover journals\n", report.String())
}

func TestRestoreReportsAndKeepsAnUnknownUndoKind(t *testing.T) {
	cs := clientWith(newNode("n1"))
	j := open(t, cs, withOwner(deadOwner(t)))
	_, err := j.Record(bg, "cordon", "cordon node n1", Uncordon("n1"))
	require.NoError(t, err)
	cordon(t, cs, "n1")
	_, err = j.Record(bg, "dns", "scale deployment kube-system/coredns from 2 to 0", Undo{Kind: "scale-deployment", Params: map[string]string{"name": "coredns"}})
	require.NoError(t, err)
	kill(j)
	// Written by a newer harness.
	cm := journalMap(t, cs, run)
	cm.Annotations[annVersion] = "v0.9.0"
	_, err = cs.CoreV1().ConfigMaps(Namespace).Update(bg, cm, metav1.UpdateOptions{})
	require.NoError(t, err)

	report, err := Restore(bg, cs, NewRegistry())
	require.Error(t, err)
	assert.ErrorContains(t, err, `undo kind "scale-deployment" is unknown`)
	assert.ErrorContains(t, err, "written by harness v0.9.0, which knows it: run `rehearse restore` from that version")
	rj := report.Journals[0]
	assert.Equal(t, []int{1}, seqs(rj.Undone), "the other entries are still undone")
	require.Len(t, rj.Failed, 1)
	assert.Equal(t, 2, rj.Failed[0].Entry.Seq)
	var unknown *UnknownKindError
	assert.ErrorAs(t, rj.Failed[0].Err, &unknown)
	assert.False(t, rj.Deleted)
	assert.Contains(t, report.String(), "FAILED #2 scale deployment kube-system/coredns from 2 to 0")
	assert.Contains(t, report.String(), "journal kept")

	left, err := Leftovers(bg, cs)
	require.NoError(t, err)
	require.Len(t, left, 1)
	assert.Equal(t, []int{2}, seqs(left[0].Entries))
	assert.False(t, getNode(t, cs, "n1").Spec.Unschedulable)
}

func TestRestoreLeavesAnotherHostsChangesToIt(t *testing.T) {
	cs := clientWith()
	j := open(t, cs, withOwner(deadOwner(t)))
	_, err := j.Record(bg, "route", "ip route add 10.244.1.0/24 via 172.18.0.3", Undo{Kind: "remove-route", Params: map[string]string{"dst": "10.244.1.0/24"}, Host: "laptop/1234-abcd"})
	require.NoError(t, err)
	kill(j)

	report, err := Restore(bg, cs, NewRegistry())
	require.Error(t, err)
	assert.ErrorContains(t, err, "made on host laptop: run `rehearse restore` there")
	var other *OtherHostError
	require.ErrorAs(t, report.Journals[0].Failed[0].Err, &other)
	assert.Equal(t, "laptop/1234-abcd", other.Host)
	assert.Len(t, journalMap(t, cs, run).Data, 1, "kept")
}

func TestRestoreTakesTheOldestJournalFirst(t *testing.T) {
	cs := clientWith()
	p := &probe{}
	reg := NewRegistry()
	reg.Register("probe", p.undo)
	older, newer := deadOwner(t), deadOwner(t)
	older.Started = older.Started.Add(-time.Hour)
	for _, w := range []struct {
		run   string
		owner Owner
	}{{"run-new", newer}, {"run-old", older}} {
		j, err := Open(bg, cs, w.run, withOwner(w.owner))
		require.NoError(t, err)
		kill(j)
		for _, id := range []string{"1", "2"} {
			_, err := j.Record(bg, "s", "change "+id, probeUndo(w.run, w.run+"/"+id))
			require.NoError(t, err)
		}
	}
	report, err := Restore(bg, cs, reg)
	require.NoError(t, err)
	assert.Equal(t, []string{"run-old/2", "run-old/1", "run-new/2", "run-new/1"}, p.ids)
	require.Len(t, report.Journals, 2)
	assert.Equal(t, "run-old", report.Journals[0].Run)
}

func TestRestoreSurvivesBrokenJournalsAndUndos(t *testing.T) {
	t.Run("no namespace", func(t *testing.T) {
		report, err := Restore(bg, clientWith(), NewRegistry())
		require.NoError(t, err)
		assert.Empty(t, report.Journals)
	})

	t.Run("unreadable entry and panicking undo", func(t *testing.T) {
		cs := clientWith()
		j := open(t, cs, withOwner(deadOwner(t)))
		_, err := j.Record(bg, "s", "change a", probeUndo(run, "a"))
		require.NoError(t, err)
		_, err = j.Record(bg, "s", "change b", Undo{Kind: "explode"})
		require.NoError(t, err)
		kill(j)
		cm := journalMap(t, cs, run)
		cm.Data["entry-0003"] = "{hand edited"
		_, err = cs.CoreV1().ConfigMaps(Namespace).Update(bg, cm, metav1.UpdateOptions{})
		require.NoError(t, err)

		reg := NewRegistry()
		reg.Register("probe", (&probe{}).undo)
		reg.Register("explode", func(context.Context, kubernetes.Interface, map[string]string) error { panic("boom") })
		report, err := Restore(bg, cs, reg)
		require.Error(t, err)
		assert.ErrorContains(t, err, "undo explode panicked: boom")
		assert.ErrorContains(t, err, "entry-0003 is not an entry")
		rj := report.Journals[0]
		assert.Equal(t, []int{1}, seqs(rj.Undone))
		assert.Len(t, rj.Failed, 2)
		assert.Len(t, journalMap(t, cs, run).Data, 2, "what failed is kept")
	})

	t.Run("journal deleted during the restore", func(t *testing.T) {
		// As when rehearse-system is deleted while restore runs: the
		// undos still run, and the journal's absence is no error.
		cs := clientWith(newNode("n1"))
		j := open(t, cs, withOwner(deadOwner(t)))
		_, err := j.Record(bg, "s", "cordon node n1", Uncordon("n1"))
		require.NoError(t, err)
		cordon(t, cs, "n1")
		_, err = j.Record(bg, "s", "delete journal", Undo{Kind: "delete-journal"})
		require.NoError(t, err)
		kill(j)
		reg := NewRegistry()
		reg.Register("delete-journal", func(ctx context.Context, c kubernetes.Interface, _ map[string]string) error {
			return c.CoreV1().ConfigMaps(Namespace).Delete(ctx, ConfigMapName(run), metav1.DeleteOptions{})
		})
		report, err := Restore(bg, cs, reg)
		require.NoError(t, err)
		assert.Equal(t, []int{2, 1}, seqs(report.Journals[0].Undone), "the journal vanished, but what it held was read before")
		assert.True(t, report.Journals[0].Deleted)
		assert.False(t, getNode(t, cs, "n1").Spec.Unschedulable)
	})

	t.Run("cancelled context", func(t *testing.T) {
		cs := clientWith(newNode("n1"))
		j := open(t, cs, withOwner(deadOwner(t)))
		_, err := j.Record(bg, "s", "cordon node n1", Uncordon("n1"))
		require.NoError(t, err)
		kill(j)
		ctx, cancel := context.WithCancel(bg)
		cancel()
		_, err = Restore(ctx, cs, NewRegistry())
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.Canceled))
	})
}
