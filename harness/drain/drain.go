// Package drain empties a node the way `kubectl drain` does, with kubectl's
// own library (k8s.io/kubectl/pkg/drain): evictions that honour
// PodDisruptionBudgets, each pod's own grace period, DaemonSet pods left in
// place, one deadline for the whole node. What kubectl only prints goes on
// the timeline instead: each eviction asked for, each one refused and why
// (a PodDisruptionBudget, named, or the API server throttling), and the
// drain's start and end.
package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	kubedrain "k8s.io/kubectl/pkg/drain"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Defaults of Options.
const (
	// DefaultTimeout is AKS's default drainTimeoutInMinutes (30).
	DefaultTimeout = 30 * time.Minute
	// DefaultRetryDelay is kubectl drain's wait before asking again for an
	// eviction that was refused.
	DefaultRetryDelay = 5 * time.Second
)

// Options shape a drain.
type Options struct {
	// Timeout bounds the whole node's drain (AKS: drainTimeoutInMinutes).
	Timeout time.Duration
	// RetryDelay is the wait between refused evictions of a pod.
	RetryDelay time.Duration
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	return o
}

// Refusal is one eviction the API refused with HTTP 429.
type Refusal struct {
	At        time.Time
	Namespace string
	Pod       string
	// PDB names the PodDisruptionBudget that refused it; empty when the
	// 429 was the API server's throttling (Throttled).
	PDB       string
	Throttled bool
	Message   string
}

// Result is how a drain went.
type Result struct {
	Node              string
	Started, Finished time.Time
	Evicted           []string // namespace/pod, in the order they were gone
	Refusals          []Refusal
	// Err is set when the node was not emptied: the deadline passed (with
	// the PodDisruptionBudgets that refused named), or the API failed.
	Err error
}

// Took is how long the drain ran.
func (r Result) Took() time.Duration { return r.Finished.Sub(r.Started) }

// BlockingPDBs names the budgets (namespace/name) that refused evictions,
// sorted, each with the pods it refused.
func (r Result) BlockingPDBs() map[string][]string {
	out := map[string][]string{}
	for _, f := range r.Refusals {
		if f.PDB == "" {
			continue
		}
		key := f.Namespace + "/" + f.PDB
		if !slices.Contains(out[key], f.Pod) {
			out[key] = append(out[key], f.Pod)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// Cordon marks node unschedulable (or schedulable again), as `kubectl
// cordon` does.
func Cordon(ctx context.Context, client kubernetes.Interface, node string, unschedulable bool) error {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	h := &kubedrain.Helper{Ctx: ctx, Client: client}
	return kubedrain.RunCordonOrUncordon(h, n, unschedulable)
}

// Node evicts every pod of node but DaemonSet and mirror pods, waiting for
// each to be gone, within opt.Timeout. The node should be cordoned first
// (Cordon), or the scheduler may place pods back on it. tl, if not nil,
// receives DrainStarted, EvictionRequested, EvictionRefused and
// DrainFinished events.
func Node(ctx context.Context, client kubernetes.Interface, node string, opt Options, tl *timeline.Timeline) Result {
	return run(ctx, client, node, opt, tl, true, func(h *kubedrain.Helper) error { return kubedrain.RunNodeDrain(h, node) })
}

// Pods evicts the given pods (honouring PodDisruptionBudgets, each pod's
// own grace period) and waits until they are gone, within opt.Timeout, with
// kubectl's drain library. Each eviction asked and refused is on the
// timeline as in a drain (node names where they ran; it is not drained).
func Pods(ctx context.Context, client kubernetes.Interface, node string, pods []corev1.Pod, opt Options, tl *timeline.Timeline) Result {
	return run(ctx, client, node, opt, tl, false, func(h *kubedrain.Helper) error { return h.DeleteOrEvictPods(pods) })
}

// run drives kubectl's drain helper through do, recording what it does;
// a node drain also records its start and end.
func run(ctx context.Context, client kubernetes.Interface, node string, opt Options, tl *timeline.Timeline, isDrain bool, do func(*kubedrain.Helper) error) Result {
	opt = opt.withDefaults()
	res := Result{Node: node, Started: time.Now()}
	rec := &recorder{tl: tl, node: node, asked: map[string]bool{}, client: client, ctx: ctx}
	if tl != nil && isDrain {
		tl.AddEvent(timeline.Event{Offset: tl.Since(res.Started), Kind: timeline.EvDrainStarted, Node: node,
			Detail: fmt.Sprintf("timeout %s", opt.Timeout)})
	}
	h := &kubedrain.Helper{
		Ctx:    ctx,
		Client: watchEvictions{Interface: client, seen: rec.evicted},
		// Standalone pods (no controller) are removed as well: an upgrade
		// deletes their node whatever kubectl would have refused.
		Force:                true,
		GracePeriodSeconds:   -1, // each pod's own terminationGracePeriodSeconds
		IgnoreAllDaemonSets:  true,
		DeleteEmptyDirData:   true,
		Timeout:              opt.Timeout,
		EvictErrorRetryDelay: opt.RetryDelay,
		Out:                  io.Discard,
		ErrOut:               io.Discard,
		OnPodDeletionOrEvictionStarted: func(p *corev1.Pod, _ bool) {
			rec.started(p)
		},
		OnPodDeletionOrEvictionFinished: func(p *corev1.Pod, _ bool, err error) {
			if err == nil {
				rec.mu.Lock()
				res.Evicted = append(res.Evicted, p.Namespace+"/"+p.Name)
				rec.mu.Unlock()
			}
		},
	}
	err := do(h)
	res.Finished = time.Now()
	rec.mu.Lock()
	res.Refusals = append([]Refusal(nil), rec.refusals...)
	rec.mu.Unlock()
	if err != nil {
		res.Err = explain(node, opt.Timeout, err, res)
	}
	if tl != nil && isDrain {
		ev := timeline.Event{Offset: tl.Since(res.Finished), Kind: timeline.EvDrainFinished, Node: node}
		if res.Err != nil {
			ev.Detail = res.Err.Error()
		}
		tl.AddEvent(ev)
	}
	return res
}

// explain turns kubectl's aggregate of per-pod errors into one sentence
// that names what blocked the drain.
func explain(node string, timeout time.Duration, err error, res Result) error {
	blocking := res.BlockingPDBs()
	timedOut := strings.Contains(err.Error(), "global timeout reached")
	if !timedOut {
		return fmt.Errorf("drain of node %s failed: %w", node, err)
	}
	if len(blocking) == 0 {
		throttled := 0
		for _, f := range res.Refusals {
			if f.Throttled {
				throttled++
			}
		}
		if throttled > 0 {
			return fmt.Errorf("drain of node %s did not finish within %s: the API server throttled %d evictions (HTTP 429 without a disruption budget)", node, timeout, throttled)
		}
		return fmt.Errorf("drain of node %s did not finish within %s: pods did not terminate in time (a terminationGracePeriodSeconds longer than the drain timeout, or a finalizer): %w", node, timeout, err)
	}
	var parts []string
	for _, pdb := range slices.Sorted(maps.Keys(blocking)) {
		parts = append(parts, fmt.Sprintf("PodDisruptionBudget %s refused to evict %s", pdb, strings.Join(blocking[pdb], ", ")))
	}
	return fmt.Errorf("drain of node %s did not finish within %s: %s (the disruption budget allowed no disruption)", node, timeout, strings.Join(parts, "; "))
}

// recorder turns the drain's callbacks and eviction answers into timeline
// events and refusals.
type recorder struct {
	ctx    context.Context
	client kubernetes.Interface
	tl     *timeline.Timeline
	node   string

	mu       sync.Mutex
	asked    map[string]bool // pods whose first eviction was recorded
	refusals []Refusal
}

// started records the first attempt to evict a pod: kubectl calls the hook
// again before each retry.
func (r *recorder) started(p *corev1.Pod) {
	key := p.Namespace + "/" + p.Name
	r.mu.Lock()
	first := !r.asked[key]
	r.asked[key] = true
	r.mu.Unlock()
	if first && r.tl != nil {
		r.tl.AddEvent(timeline.Event{Offset: r.tl.Now(), Kind: timeline.EvEvictionRequested, Pod: p.Name, UID: string(p.UID), Node: r.node})
	}
}

// evicted hears every eviction's answer.
func (r *recorder) evicted(ev *policyv1.Eviction, err error) {
	if err == nil || !apierrors.IsTooManyRequests(err) {
		return
	}
	f := Refusal{At: time.Now(), Namespace: ev.Namespace, Pod: ev.Name, Message: err.Error()}
	if apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause) {
		f.PDB = pdbName(err)
		if f.PDB == "" {
			f.PDB = r.findPDB(ev.Namespace, ev.Name)
		}
		if f.PDB == "" {
			f.PDB = "(unnamed)"
		}
	} else {
		f.Throttled = true
	}
	r.mu.Lock()
	r.refusals = append(r.refusals, f)
	r.mu.Unlock()
	if r.tl != nil {
		e := timeline.Event{Offset: r.tl.Since(f.At), Kind: timeline.EvEvictionRefused, Pod: ev.Name, Node: r.node}
		if f.Throttled {
			e.Detail = "throttled by the API server (HTTP 429 without a disruption budget): " + err.Error()
		} else {
			e.Name = ev.Namespace + "/" + f.PDB
			e.Detail = "PodDisruptionBudget " + ev.Namespace + "/" + f.PDB + ": " + causeMessage(err)
		}
		r.tl.AddEvent(e)
	}
}

// budgetInCause finds the budget's name in the API's cause message ("The
// disruption budget web needs 2 healthy pods and has 2 currently").
var budgetInCause = regexp.MustCompile(`disruption budget (\S+) needs`)

func pdbName(err error) string {
	if m := budgetInCause.FindStringSubmatch(causeMessage(err)); m != nil {
		return m[1]
	}
	return ""
}

func causeMessage(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return err.Error()
	}
	for _, c := range st.Status().Details.Causes {
		if c.Type == policyv1.DisruptionBudgetCause {
			return c.Message
		}
	}
	return err.Error()
}

// findPDB looks for the budget selecting the pod, for API servers whose
// refusal does not name it.
func (r *recorder) findPDB(ns, pod string) string {
	p, err := r.client.CoreV1().Pods(ns).Get(r.ctx, pod, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	list, err := r.client.PolicyV1().PodDisruptionBudgets(ns).List(r.ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, b := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			return b.Name
		}
	}
	return ""
}
