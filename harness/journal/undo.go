package journal

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Undo says how to undo one change: a kind registered in a Registry and its
// parameters. It is plain data so that another process, after this one was
// killed, can carry it out.
type Undo struct {
	Kind   string            `json:"kind"`
	Params map[string]string `json:"params,omitempty"`
	// Host is set for changes to the machine running the harness, not the
	// cluster (a route to pod addresses): such an undo runs only where
	// HostID() equals it.
	Host string `json:"host,omitempty"`
}

// UndoFunc carries out one kind of undo. It must be idempotent: succeed
// when the change is already undone or its object is gone, since an undo
// can run twice (see the package documentation).
type UndoFunc func(ctx context.Context, client kubernetes.Interface, params map[string]string) error

// The built-in undo kinds (NewRegistry), all on Nodes. Params["node"] names
// the Node, which Record marks.
const (
	KindUncordon         = "uncordon"           // node
	KindCordon           = "cordon"             // node
	KindRemoveTaint      = "remove-taint"       // node, key, effect, value
	KindRemoveNodeLabel  = "remove-node-label"  // node, key
	KindRestoreNodeLabel = "restore-node-label" // node, key, value
)

// Uncordon undoes cordoning node. Record it only when the node was
// schedulable: the undo makes it schedulable whatever it was before.
func Uncordon(node string) Undo {
	return Undo{Kind: KindUncordon, Params: map[string]string{"node": node}}
}

// Cordon undoes uncordoning node. Record it only when the node was
// cordoned: the undo cordons it whatever it was before.
func Cordon(node string) Undo {
	return Undo{Kind: KindCordon, Params: map[string]string{"node": node}}
}

// RemoveTaint undoes adding taint t to node. Only a taint with the same key,
// effect and value is removed: one changed since is someone else's.
func RemoveTaint(node string, t corev1.Taint) Undo {
	return Undo{Kind: KindRemoveTaint, Params: map[string]string{"node": node, "key": t.Key, "effect": string(t.Effect), "value": t.Value}}
}

// RemoveNodeLabel undoes adding label key to node, which did not have it.
func RemoveNodeLabel(node, key string) Undo {
	return Undo{Kind: KindRemoveNodeLabel, Params: map[string]string{"node": node, "key": key}}
}

// RestoreNodeLabel undoes changing label key of node, whose value was value.
func RestoreNodeLabel(node, key, value string) Undo {
	return Undo{Kind: KindRestoreNodeLabel, Params: map[string]string{"node": node, "key": key, "value": value}}
}

// Registry maps undo kinds to the functions that carry them out. It is safe
// for concurrent use.
type Registry struct {
	mu  sync.RWMutex
	fns map[string]UndoFunc
}

// NewRegistry returns a Registry with the built-in undos (Kind* constants).
func NewRegistry() *Registry {
	r := &Registry{fns: map[string]UndoFunc{}}
	r.Register(KindUncordon, undoUncordon)
	r.Register(KindCordon, undoCordon)
	r.Register(KindRemoveTaint, undoRemoveTaint)
	r.Register(KindRemoveNodeLabel, undoRemoveNodeLabel)
	r.Register(KindRestoreNodeLabel, undoRestoreNodeLabel)
	return r
}

// Register makes kind undone by fn, replacing any function it had. An
// empty kind or a nil fn is a programming error and panics, like
// http.Handle, rather than failing later in a restore.
func (r *Registry) Register(kind string, fn UndoFunc) {
	if kind == "" || fn == nil {
		panic("journal: Register needs a kind and a function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fns == nil {
		r.fns = map[string]UndoFunc{}
	}
	r.fns[kind] = fn
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.fns))
	for k := range r.fns {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *Registry) lookup(kind string) UndoFunc {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.fns[kind]
}

// UnknownKindError: the registry has no function for an entry's kind. The
// entry stays in the journal.
type UnknownKindError struct {
	Kind string
	// WrittenBy is the harness version that wrote the journal, Here this
	// build's.
	WrittenBy, Here string
	Known           []string
}

func (e *UnknownKindError) Error() string {
	msg := fmt.Sprintf("undo kind %q is unknown to this harness (%s, which knows %s)", e.Kind, e.Here, strings.Join(e.Known, ", "))
	if e.WrittenBy != "" && e.WrittenBy != e.Here {
		return msg + fmt.Sprintf("; the journal was written by harness %s, which knows it: run `rehearse restore` from that version", e.WrittenBy)
	}
	return msg + "; it was written by a build of this version that registers more undos (a customised harness, or a test suite's own steps): run `rehearse restore` from that build"
}

// OtherHostError: an entry changed another machine (Undo.Host), and only
// that machine can undo it. The entry stays in the journal.
type OtherHostError struct {
	Host string // where the change was made (Undo.Host)
	Here string // HostID()
	// Key and ConfigMap locate the entry, for the reboot case below.
	Key, ConfigMap string
}

func (e *OtherHostError) Error() string {
	name, _, _ := strings.Cut(e.Host, "/")
	here, _, _ := strings.Cut(e.Here, "/")
	if name == here {
		return fmt.Sprintf("made on this host (%s) before it rebooted: it cannot be undone from this boot; if the change did not survive the reboot (routes do not), delete data key %s of configmap %s/%s",
			name, e.Key, Namespace, e.ConfigMap)
	}
	return fmt.Sprintf("made on host %s: run `rehearse restore` there", name)
}

// runUndo carries out one undo, turning a panic into an error: a restore
// must report every entry, whatever one undo function does.
func runUndo(ctx context.Context, client kubernetes.Interface, fn UndoFunc, u Undo) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("undo %s panicked: %v", u.Kind, p)
		}
	}()
	return fn(ctx, client, u.Params)
}

// need returns the named params, or an error naming those missing.
func need(params map[string]string, names ...string) ([]string, error) {
	var missing []string
	vals := make([]string, len(names))
	for i, n := range names {
		v, ok := params[n]
		if !ok || v == "" && n != "value" {
			missing = append(missing, n)
		}
		vals[i] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("undo params lack %s", strings.Join(missing, ", "))
	}
	return vals, nil
}

// updateNode reads node, lets change modify it (reporting whether it did),
// and writes it back under its resourceVersion, again on conflict. A Node
// that does not exist has nothing left to undo.
func updateNode(ctx context.Context, client kubernetes.Interface, node string, change func(*corev1.Node) bool) error {
	nodes := client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !change(n) {
			return nil
		}
		_, err = nodes.Update(ctx, n, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

func undoUncordon(ctx context.Context, client kubernetes.Interface, params map[string]string) error {
	p, err := need(params, "node")
	if err != nil {
		return err
	}
	return updateNode(ctx, client, p[0], func(n *corev1.Node) bool {
		if !n.Spec.Unschedulable {
			return false
		}
		n.Spec.Unschedulable = false
		return true
	})
}

func undoCordon(ctx context.Context, client kubernetes.Interface, params map[string]string) error {
	p, err := need(params, "node")
	if err != nil {
		return err
	}
	return updateNode(ctx, client, p[0], func(n *corev1.Node) bool {
		if n.Spec.Unschedulable {
			return false
		}
		n.Spec.Unschedulable = true
		return true
	})
}

func undoRemoveTaint(ctx context.Context, client kubernetes.Interface, params map[string]string) error {
	p, err := need(params, "node", "key", "effect")
	if err != nil {
		return err
	}
	value, byValue := params["value"]
	return updateNode(ctx, client, p[0], func(n *corev1.Node) bool {
		before := len(n.Spec.Taints)
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool {
			return t.Key == p[1] && string(t.Effect) == p[2] && (!byValue || t.Value == value)
		})
		return len(n.Spec.Taints) != before
	})
}

func undoRemoveNodeLabel(ctx context.Context, client kubernetes.Interface, params map[string]string) error {
	p, err := need(params, "node", "key")
	if err != nil {
		return err
	}
	return updateNode(ctx, client, p[0], func(n *corev1.Node) bool {
		if _, ok := n.Labels[p[1]]; !ok {
			return false
		}
		delete(n.Labels, p[1])
		return true
	})
}

func undoRestoreNodeLabel(ctx context.Context, client kubernetes.Interface, params map[string]string) error {
	p, err := need(params, "node", "key", "value")
	if err != nil {
		return err
	}
	return updateNode(ctx, client, p[0], func(n *corev1.Node) bool {
		if v, ok := n.Labels[p[1]]; ok && v == p[2] {
			return false
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[p[1]] = p[2]
		return true
	})
}
