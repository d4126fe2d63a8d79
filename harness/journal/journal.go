package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Entry is one change, written before it was made.
type Entry struct {
	Seq    int       `json:"seq"`
	Step   string    `json:"step"`   // the scenario step that made the change
	Change string    `json:"change"` // what is changed, in words, exactly ("cordon node x")
	Undo   Undo      `json:"undo"`
	At     time.Time `json:"at"` // when it was recorded, before the change
}

// Journal is the journal of one rehearsal run, open for writing by this
// process. Its methods are safe for concurrent use.
type Journal struct {
	client kubernetes.Interface
	run    string
	name   string
	owner  Owner
	opts   options

	// mu serialises Record, Revert and Close within this process, so that
	// entry numbers and Node markers are read and written in turn; other
	// processes are kept apart by resourceVersion.
	mu     sync.Mutex
	closed bool

	stopBeat context.CancelFunc
	beatDone chan struct{}
}

// Open creates the journal of run (and Namespace, if need be), owned by
// this process, and starts its heartbeat. A journal of that run may already
// exist only empty and left by a gone owner (a Close that could not delete
// it); any other is an error, since it holds another process's changes.
func Open(ctx context.Context, client kubernetes.Interface, run string, opts ...Option) (*Journal, error) {
	if run == "" {
		return nil, errors.New("journal: a run id is needed")
	}
	o := resolve(opts)
	j := &Journal{client: client, run: run, name: ConfigMapName(run), opts: o}
	if o.owner != nil {
		j.owner = *o.owner
	} else {
		j.owner = self(o.now())
	}
	if err := j.create(ctx); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		if err := j.adopt(ctx); err != nil {
			return nil, err
		}
	}
	// The heartbeat must outlive Open's context: after Ctrl-C the run still
	// reverts, and a silent journal would look abandoned meanwhile.
	beatCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	j.stopBeat, j.beatDone = stop, make(chan struct{})
	go j.beat(beatCtx)
	return j, nil
}

// Run is the run id the journal was opened for.
func (j *Journal) Run() string { return j.run }

// Owner is the process the journal names as its writer.
func (j *Journal) Owner() Owner { return j.owner }

// create writes a new, empty journal, creating Namespace first if needed.
func (j *Journal) create(ctx context.Context) error {
	if err := ensureNamespace(ctx, j.client); err != nil {
		return err
	}
	cm := newConfigMap(j.run, j.owner, j.opts.now())
	_, err := j.client.CoreV1().ConfigMaps(Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: ManagedBy})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("journal: create configmap %s/%s: %w%s", Namespace, j.name, err, hint(err))
	}
	return err
}

// adopt takes over an existing journal of this run, if it is empty and its
// owner gone.
func (j *Journal) adopt(ctx context.Context) error {
	cms := j.client.CoreV1().ConfigMaps(Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, j.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("journal: read existing configmap %s/%s: %w", Namespace, j.name, err)
		}
		s := decode(cm)
		jd := judge(s.owner, s.heartbeat, s.closed, j.opts.now(), j.opts.stale)
		if len(s.entries) > 0 || !jd.gone {
			return fmt.Errorf("journal: run %s already has a journal (configmap %s/%s, %d entries; %s): run `rehearse restore`, or use a new run id",
				j.run, Namespace, j.name, len(s.entries), jd.why)
		}
		setOwner(cm, j.owner, j.opts.now())
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
}

// ensureNamespace creates Namespace unless it exists, and refuses one being
// deleted: a journal written there would vanish with it.
func ensureNamespace(ctx context.Context, client kubernetes.Interface) error {
	nss := client.CoreV1().Namespaces()
	ns, err := nss.Get(ctx, Namespace, metav1.GetOptions{})
	switch {
	case err == nil:
		if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
			return fmt.Errorf("journal: namespace %s is being deleted: wait until it is gone (kubectl get namespace %s), then start again", Namespace, Namespace)
		}
		return nil
	case apierrors.IsNotFound(err):
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: map[string]string{LabelManagedBy: ManagedBy}}}
		if _, err := nss.Create(ctx, ns, metav1.CreateOptions{FieldManager: ManagedBy}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("journal: create namespace %s: %w%s", Namespace, err, hint(err))
		}
		return nil
	default:
		// Without the right to read namespaces, the namespace may still
		// exist: creating the ConfigMap will tell.
		return nil
	}
}

// hint names the permissions the journal needs when the API server refused.
func hint(err error) string {
	if apierrors.IsForbidden(err) {
		return " (the journal needs get/create on namespaces, get/list/create/update/patch/delete on configmaps in " + Namespace + ", and get/patch on nodes)"
	}
	return ""
}

// Record writes that step is about to make change, undone by undo. The
// entry is in the cluster when Record returns: make the change only then.
// An undo with Params["node"] also marks that Node (NodeAnnotation). If the
// entry was written but the Node could not be marked, Record returns the
// entry and an error: do not make the change; the entry stays and its
// (idempotent) undo runs in the revert.
func (j *Journal) Record(ctx context.Context, step, change string, undo Undo) (Entry, error) {
	if change == "" || undo.Kind == "" {
		return Entry{}, fmt.Errorf("journal: record %q: an entry needs a change and an undo kind", change)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return Entry{}, fmt.Errorf("journal %s: record %q: the journal is closed", j.run, change)
	}
	cms := j.client.CoreV1().ConfigMaps(Namespace)
	var e Entry
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, j.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// Deleted under us (a forced restore, the namespace removed):
			// write-ahead matters more than that, write it again. A
			// concurrent re-creation shows as a conflict: read again.
			if err := j.create(ctx); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return apierrors.NewConflict(corev1.Resource("configmaps"), j.name, err)
				}
				return err
			}
			cm, err = cms.Get(ctx, j.name, metav1.GetOptions{})
		}
		if err != nil {
			return err
		}
		s := decode(cm)
		e = Entry{Seq: s.nextSeq, Step: step, Change: change, Undo: undo, At: j.opts.now().UTC()}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Data[entryKey(e.Seq)] = string(b)
		cm.Annotations[annNextSeq] = strconv.Itoa(e.Seq + 1)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if err != nil {
		return Entry{}, fmt.Errorf("journal %s: record %q: %w%s (the change must not be made: it could not be undone)", j.run, change, err, hint(err))
	}
	if node := undo.Params["node"]; node != "" {
		if err := markNode(ctx, j.client, j.run, node, e.Seq, true); err != nil {
			return e, fmt.Errorf("journal %s: entry %d (%s) is written, but node %s could not be marked: %w; do not make the change", j.run, e.Seq, change, node, err)
		}
	}
	return e, nil
}

// Entries are the journal's entries as stored in the cluster, oldest first.
// An entry that cannot be read is returned with its Seq and a Change that
// says so, and an error.
func (j *Journal) Entries(ctx context.Context) ([]Entry, error) {
	cm, err := j.client.CoreV1().ConfigMaps(Namespace).Get(ctx, j.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", j.run, err)
	}
	s := decode(cm)
	var errs []error
	for _, e := range s.entries {
		if e.err != nil {
			errs = append(errs, e.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s.plainEntries(), fmt.Errorf("journal %s: %w", j.run, err)
	}
	return s.plainEntries(), nil
}

// Revert undoes the journal's entries, newest first, as stored in the
// cluster. Each entry undone is removed from the journal at once; those
// that fail stay, and their errors are returned together. each, if not nil,
// hears of every entry: a nil error means undone. Give it a context that
// outlives the Ctrl-C or timeout that made the run stop.
func (j *Journal) Revert(ctx context.Context, reg *Registry, each func(Entry, error)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, failed, err := revert(ctx, j.client, j.name, reg, each)
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.run, err)
	}
	return failuresErr(j.run, failed)
}

// Close stops the heartbeat. An empty journal is deleted; one with entries
// left is kept and marked closed, so that Restore takes it at once. Close
// after Close does nothing.
func (j *Journal) Close(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	j.stopBeat()
	<-j.beatDone
	cms := j.client.CoreV1().ConfigMaps(Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, j.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(decode(cm).entries) == 0 {
			// The precondition keeps an entry written meanwhile (another
			// process that took the run over) from going with it.
			rv, uid := cm.ResourceVersion, cm.UID
			return cms.Delete(ctx, j.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv, UID: &uid}})
		}
		now := formatTime(j.opts.now())
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[annClosed] = now
		cm.Annotations[annHeartbeat] = now
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal %s: close: %w", j.run, err)
	}
	return nil
}

// beat refreshes the heartbeat until ctx ends. A failed beat is not
// reported: the next one may succeed, and a journal whose beats keep
// failing is exactly what the stale window is for.
func (j *Journal) beat(ctx context.Context) {
	defer close(j.beatDone)
	t := time.NewTicker(j.opts.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			bctx, cancel := context.WithTimeout(ctx, j.opts.heartbeat)
			_ = j.touch(bctx)
			cancel()
		}
	}
}

// touch writes the heartbeat as a merge patch: it needs no read, and cannot
// undo an entry written concurrently. A deleted journal stays deleted.
func (j *Journal) touch(ctx context.Context) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annHeartbeat: formatTime(j.opts.now())}}})
	if err != nil {
		return err
	}
	_, err = j.client.CoreV1().ConfigMaps(Namespace).Patch(ctx, j.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedBy})
	return err
}

// Failure is an entry that could not be undone, and why. It stays in the
// journal.
type Failure struct {
	Entry Entry
	Err   error
}

func failuresErr(run string, failed []Failure) error {
	errs := make([]error, 0, len(failed))
	for _, f := range failed {
		errs = append(errs, fmt.Errorf("journal %s: entry %d (%s): %w", run, f.Entry.Seq, f.Entry.Change, f.Err))
	}
	return errors.Join(errs...)
}

// revert undoes the entries of journal name, newest first; Revert and
// Restore share it. err is for a journal that could not be read at all.
func revert(ctx context.Context, client kubernetes.Interface, name string, reg *Registry, each func(Entry, error)) (undone []Entry, failed []Failure, err error) {
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	s := decode(cm)
	here := HostID()
	for i := len(s.entries) - 1; i >= 0; i-- {
		e := s.entries[i]
		err := undoOne(ctx, client, s, name, here, reg, e)
		if err == nil {
			undone = append(undone, e.Entry)
		} else {
			failed = append(failed, Failure{Entry: e.Entry, Err: err})
		}
		if each != nil {
			each(e.Entry, err)
		}
	}
	return undone, failed, nil
}

// undoOne undoes one entry, unmarks its Node and removes it from the
// journal, in that order: a crash in between leaves the entry, whose undo
// runs again harmlessly, never a change nobody knows about.
func undoOne(ctx context.Context, client kubernetes.Interface, s stored, name, here string, reg *Registry, e storedEntry) error {
	if e.err != nil {
		return e.err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not undone: %w", err)
	}
	if e.Undo.Host != "" && e.Undo.Host != here {
		return &OtherHostError{Host: e.Undo.Host, Here: here, Key: e.key, ConfigMap: name}
	}
	fn := reg.lookup(e.Undo.Kind)
	if fn == nil {
		return &UnknownKindError{Kind: e.Undo.Kind, WrittenBy: s.version, Here: harnessVersion(), Known: reg.Kinds()}
	}
	if err := runUndo(ctx, client, fn, e.Undo); err != nil {
		return fmt.Errorf("undo %s: %w", e.Undo.Kind, err)
	}
	if node := e.Undo.Params["node"]; node != "" {
		if err := markNode(ctx, client, s.run, node, e.Seq, false); err != nil {
			return fmt.Errorf("undone, but its mark on node %s could not be removed (the entry stays, so that a restore finishes it): %w", node, err)
		}
	}
	if err := removeEntry(ctx, client, name, e.key); err != nil {
		return fmt.Errorf("undone, but it could not be removed from the journal (a later restore will undo it again, harmlessly): %w", err)
	}
	return nil
}

// removeEntry deletes one data key from journal name. A journal already
// gone (its namespace deleted) has nothing left to remove.
func removeEntry(ctx context.Context, client kubernetes.Interface, name, key string) error {
	cms := client.CoreV1().ConfigMaps(Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := cm.Data[key]; !ok {
			return nil
		}
		delete(cm.Data, key)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
