package journal

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Leftover is a journal as Leftovers and Restore judge it.
type Leftover struct {
	Run       string
	Owner     Owner
	Heartbeat time.Time // the owner's last heartbeat
	Entries   []Entry   // oldest first, when judged
	// Why says in words why the owner counts as gone ("owner pid 1234 on
	// this host has exited", "no heartbeat from host ci-7 for 2m10s"), or,
	// in RestoreReport.InUse, as alive.
	Why string

	name    string
	created time.Time
}

// Leftovers lists the journals whose owner is gone (see the package
// documentation), oldest first; with Force, every journal. No namespace
// means no journals.
func Leftovers(ctx context.Context, client kubernetes.Interface, opts ...Option) ([]Leftover, error) {
	gone, _, err := survey(ctx, client, resolve(opts))
	return gone, err
}

// survey judges every journal: gone ones (or all, with Force) and those in
// use, each oldest first.
func survey(ctx context.Context, client kubernetes.Interface, o options) (gone, inUse []Leftover, err error) {
	list, err := client.CoreV1().ConfigMaps(Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelJournal + "=true"})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("journal: list journals in %s: %w%s", Namespace, err, hint(err))
	}
	now := o.now()
	for i := range list.Items {
		cm := &list.Items[i]
		s := decode(cm)
		jd := judge(s.owner, s.heartbeat, s.closed, now, o.stale)
		l := Leftover{Run: s.run, Owner: s.owner, Heartbeat: s.heartbeat, Entries: s.plainEntries(), Why: jd.why,
			name: cm.Name, created: cm.CreationTimestamp.Time}
		switch {
		case jd.gone:
			gone = append(gone, l)
		case o.force:
			l.Why += "; taken by force"
			gone = append(gone, l)
		default:
			inUse = append(inUse, l)
		}
	}
	sortOldestFirst(gone)
	sortOldestFirst(inUse)
	return gone, inUse, nil
}

// sortOldestFirst orders journals by creation, then by owner start, then by
// name: a later run may have built on what an earlier one left.
func sortOldestFirst(ls []Leftover) {
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		if !a.Owner.Started.Equal(b.Owner.Started) {
			return a.Owner.Started.Before(b.Owner.Started)
		}
		return a.name < b.name
	})
}

// RestoreReport says what Restore did.
type RestoreReport struct {
	// Journals are the leftovers, oldest first, with what became of each.
	Journals []RestoredJournal
	// InUse are journals whose owner is alive, not touched (Force takes
	// them); their Why says why the owner counts as alive.
	InUse []Leftover
}

// RestoredJournal is one leftover journal after Restore.
type RestoredJournal struct {
	Leftover
	Undone []Entry   // undone and removed, in the order undone (newest first)
	Failed []Failure // kept in the journal
	Err    error     // the journal could not be read, or not deleted once empty
	// Deleted: every entry was undone and the journal deleted.
	Deleted bool
}

// Restore reverts every leftover journal (Leftovers): oldest journal first,
// newest entry first within each, as Journal.Revert does. A journal emptied
// is deleted; entries that fail stay for the next restore. The error joins
// every failure; the report says which entry failed and why. Restore keeps
// going past any one failure.
func Restore(ctx context.Context, client kubernetes.Interface, reg *Registry, opts ...Option) (RestoreReport, error) {
	var report RestoreReport
	gone, inUse, err := survey(ctx, client, resolve(opts))
	report.InUse = inUse
	if err != nil {
		return report, err
	}
	var errs []error
	for _, l := range gone {
		rj := RestoredJournal{Leftover: l}
		rj.Undone, rj.Failed, rj.Err = revert(ctx, client, l.name, reg, nil)
		if rj.Err == nil && len(rj.Failed) == 0 {
			rj.Deleted, rj.Err = deleteIfEmpty(ctx, client, l.name)
		}
		if rj.Err != nil {
			errs = append(errs, fmt.Errorf("journal %s: %w", l.Run, rj.Err))
		}
		if err := failuresErr(l.Run, rj.Failed); err != nil {
			errs = append(errs, err)
		}
		report.Journals = append(report.Journals, rj)
	}
	return report, errors.Join(errs...)
}

// deleteIfEmpty deletes journal name if it has no entries, under its
// resourceVersion so that an entry written meanwhile is not lost. deleted
// is true also when the journal was already gone (its namespace deleted).
func deleteIfEmpty(ctx context.Context, client kubernetes.Interface, name string) (deleted bool, err error) {
	cms := client.CoreV1().ConfigMaps(Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(decode(cm).entries) > 0 {
			deleted = false
			return nil
		}
		rv, uid := cm.ResourceVersion, cm.UID
		deleted = true
		return cms.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv, UID: &uid}})
	})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete the emptied journal: %w", err)
	}
	return deleted, nil
}

// String is the report for a person: each journal, why it was taken, each
// entry undone or failed, and the journals left alone.
func (r RestoreReport) String() string {
	var b strings.Builder
	if len(r.Journals) == 0 {
		b.WriteString("no leftover journals\n")
	}
	for _, j := range r.Journals {
		fmt.Fprintf(&b, "journal %s: %s\n", j.Run, j.Why)
		for _, e := range j.Undone {
			fmt.Fprintf(&b, "  undone #%d %s (step %s)\n", e.Seq, e.Change, e.Step)
		}
		for _, f := range j.Failed {
			fmt.Fprintf(&b, "  FAILED #%d %s (step %s): %v\n", f.Entry.Seq, f.Entry.Change, f.Entry.Step, f.Err)
		}
		switch {
		case j.Err != nil:
			fmt.Fprintf(&b, "  error: %v\n", j.Err)
		case j.Deleted:
			b.WriteString("  journal deleted: nothing left to undo\n")
		default:
			fmt.Fprintf(&b, "  journal kept (configmap %s/%s) with %d entries\n", Namespace, j.name, len(j.Failed))
		}
	}
	for _, l := range r.InUse {
		fmt.Fprintf(&b, "journal %s in use, not touched: %s (force takes it)\n", l.Run, l.Why)
	}
	return b.String()
}
