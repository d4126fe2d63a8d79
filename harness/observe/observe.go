// Package observe watches a rehearsal's cluster and writes what it sees onto
// the rehearsal's timeline: the app's pods (scheduled, Ready, deletion
// requested, container exits), the addresses in its Service's
// EndpointSlices, the nodes, and the Kubernetes Events about its pods.
//
// Everything is watched with client-go shared informers, and every change is
// recorded at the moment the watch delivered it, read on the timeline's own
// clock (Timeline.Now). Object timestamps (lastTransitionTime,
// deletionTimestamp, finishedAt...) have one-second resolution and come from
// other machines' clocks, so they only appear in the events' Detail.
//
// The observer writes the events verdicts expect (see the timeline package's
// EventKind constants and ReadyEndpoints):
//
//   - an endpoint address first seen ready is EndpointAdded, first seen not
//     ready EndpointNotReady; a ready address turning not ready (terminating
//     ones included) is EndpointNotReady, the reverse EndpointReady; an
//     address gone from every slice of the Service is EndpointRemoved. Each
//     names the IP, the pod (the slice's targetRef) and the node.
//   - pods: PodScheduled, PodReady / PodNotReady (the Ready condition),
//     PodDeletionRequested, ContainerExited (ExitCode, Reason), and a Note
//     (Reason "PodDeleted") when the pod is gone from the API.
//   - nodes: NodeAdded, NodeReady / NodeNotReady, NodeCordoned /
//     NodeUncordoned, NodeDeleted.
//   - Kubernetes Events about the app's pods (Killing, Unhealthy,
//     FailedScheduling, BackOff, any Warning...) as Notes carrying the
//     event's reason.
//
// Start records the state found when the watches synced as a snapshot at the
// offset Start was called, so that a verdict sees the pods already Ready and
// the endpoints already serving.
package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Target says what to observe.
type Target struct {
	Namespace   string // the app's namespace; required
	PodSelector string // label selector of the app's pods ("app=web"); "" means every pod in the namespace
	Service     string // the Service whose EndpointSlices are watched; "" watches no endpoints
}

// Defaults of the options.
const (
	DefaultSyncTimeout    = 30 * time.Second
	DefaultEndpointSettle = time.Second
)

// DefaultEventReasons are the reasons of Normal Kubernetes Events recorded
// (Warning events about the app's pods are always recorded). Note that a
// PodDisruptionBudget refusing an eviction produces no Event: the eviction
// API answers 429 to whoever drains, which is where EvictionRefused must be
// recorded.
var DefaultEventReasons = []string{
	"Killing",              // the kubelet stops a container (SIGTERM, or after a failed probe)
	"Preempting",           // the kubelet stops a pod to admit a more important one
	"Evicted",              // node-pressure eviction by the kubelet
	"TaintManagerEviction", // a NoExecute taint evicts the pod
	"NodeNotReady",         // the node controller marks the pod's node not ready
	"SandboxChanged",       // the pod's sandbox is recreated (its node rebooted or its runtime restarted)
}

// Option configures an Observer.
type Option func(*Observer)

// WithSyncTimeout bounds how long Start waits for the watches to sync.
func WithSyncTimeout(d time.Duration) Option { return func(o *Observer) { o.syncTimeout = d } }

// WithEndpointSettle sets how long an address gone from every EndpointSlice
// of the Service may take to reappear (in another slice, when the
// EndpointSlice controller moves it) before it is recorded as removed. The
// removal is recorded at the offset it disappeared whatever the window; the
// window only delays when the event is written. 0 records removals at once.
func WithEndpointSettle(d time.Duration) Option { return func(o *Observer) { o.settle = d } }

// WithoutNodes skips the cluster-wide node watch (for identities that may not
// list nodes).
func WithoutNodes() Option { return func(o *Observer) { o.nodes = false } }

// WithoutEvents skips the watch of Kubernetes Events.
func WithoutEvents() Option { return func(o *Observer) { o.events = false } }

// WithEventReasons replaces DefaultEventReasons: the reasons of Normal
// Events to record. Warning events are always recorded.
func WithEventReasons(reasons ...string) Option {
	return func(o *Observer) { o.reasons = setOf(reasons) }
}

// WithContainers limits ContainerExited to the named containers (the app's,
// not its sidecars'). By default every regular container's exit is recorded.
func WithContainers(names ...string) Option {
	return func(o *Observer) { o.containers = setOf(names) }
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// Observer watches one app and records what it sees on a timeline. Create
// it with New, then Start it; Stop it when the rehearsal ends. Its methods
// are safe for concurrent use.
type Observer struct {
	client      kubernetes.Interface
	tl          *timeline.Timeline
	target      Target
	selector    labels.Selector
	syncTimeout time.Duration
	settle      time.Duration
	nodes       bool
	events      bool
	reasons     map[string]bool
	containers  map[string]bool

	// startAt is the offset of the initial snapshot: the moment Start was
	// called. Set before any informer runs.
	startAt time.Duration

	lifeMu    sync.Mutex
	started   bool
	stopped   bool
	cancel    context.CancelFunc
	factories []informers.SharedInformerFactory
	watches   []*watched
	stopOnce  sync.Once

	// emitMu guards closed; it is held while an event is added so that
	// nothing is recorded after Stop returned.
	emitMu sync.Mutex
	closed bool

	pods podTracker
	eps  endpointTracker
	nds  nodeTracker
	evs  eventTracker
}

// watched is one informer the observer started, for Start's error report
// and the watch-error notes.
type watched struct {
	what    string // "pods with app=web in namespace shop"
	hint    string // what to grant when it is forbidden
	reg     cache.ResourceEventHandlerRegistration
	mu      sync.Mutex
	lastErr error
	fatal   error
	noted   time.Time
}

// New makes an Observer of target that records on tl.
func New(client kubernetes.Interface, tl *timeline.Timeline, target Target, opts ...Option) (*Observer, error) {
	if client == nil {
		return nil, errors.New("observe: no Kubernetes client")
	}
	if tl == nil {
		return nil, errors.New("observe: no timeline")
	}
	if target.Namespace == "" {
		return nil, errors.New("observe: the target has no namespace")
	}
	sel, err := labels.Parse(target.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("observe: pod selector %q: %w", target.PodSelector, err)
	}
	o := &Observer{
		client: client, tl: tl, target: target, selector: sel,
		syncTimeout: DefaultSyncTimeout, settle: DefaultEndpointSettle,
		nodes: true, events: true, reasons: setOf(DefaultEventReasons),
	}
	for _, opt := range opts {
		opt(o)
	}
	o.pods.init()
	o.eps.init()
	o.nds.init()
	o.evs.init()
	return o, nil
}

// Start starts the watches and returns once each has delivered the current
// state (recorded as a snapshot at the offset Start was called), or with an
// error when they could not sync within the sync timeout, when the identity
// may not list what is watched, or when ctx ends first. On error nothing is
// left running. The watches run until Stop is called or ctx is cancelled.
func (o *Observer) Start(ctx context.Context) error {
	o.lifeMu.Lock()
	if o.started || o.stopped {
		o.lifeMu.Unlock()
		return errors.New("observe: an Observer starts once, and not after Stop")
	}
	o.started = true
	o.startAt = o.tl.Now()
	runCtx, cancel := context.WithCancel(ctx)
	o.cancel = cancel
	if err := o.setup(); err != nil {
		o.lifeMu.Unlock()
		o.Stop()
		return err
	}
	for _, f := range o.factories {
		f.Start(runCtx.Done())
	}
	o.lifeMu.Unlock()

	err := wait.PollUntilContextTimeout(runCtx, 20*time.Millisecond, o.syncTimeout, true, func(context.Context) (bool, error) {
		done := true
		for _, w := range o.watches {
			w.mu.Lock()
			fatal := w.fatal
			w.mu.Unlock()
			if fatal != nil {
				return false, fatal
			}
			if !w.reg.HasSynced() {
				done = false
			}
		}
		return done, nil
	})
	if err != nil {
		err = o.startError(ctx, err)
		o.Stop()
		return err
	}
	return nil
}

func (o *Observer) isStopped() bool {
	o.lifeMu.Lock()
	defer o.lifeMu.Unlock()
	return o.stopped
}

// startError explains why Start failed.
func (o *Observer) startError(ctx context.Context, err error) error {
	for _, w := range o.watches {
		w.mu.Lock()
		fatal := w.fatal
		w.mu.Unlock()
		if fatal != nil && errors.Is(err, fatal) {
			return err
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("observe: start interrupted: %w", ctx.Err())
	}
	if o.isStopped() {
		return errors.New("observe: stopped while starting")
	}
	var pending []string
	for _, w := range o.watches {
		if w.reg.HasSynced() {
			continue
		}
		w.mu.Lock()
		last := w.lastErr
		w.mu.Unlock()
		s := w.what
		if last != nil {
			s += " (last error: " + last.Error() + ")"
		}
		pending = append(pending, s)
	}
	return fmt.Errorf("observe: the watches did not sync within %s: %s; check that the kubeconfig points at a "+
		"reachable API server and that the identity may list and watch these", o.syncTimeout, strings.Join(pending, "; "))
}

// Stop stops the watches and records the endpoint removals still settling.
// Nothing is recorded after it returns. It may be called more than once, and
// without Start.
func (o *Observer) Stop() {
	o.stopOnce.Do(func() {
		o.lifeMu.Lock()
		o.stopped = true
		cancel, factories := o.cancel, o.factories
		o.lifeMu.Unlock()
		if cancel != nil {
			cancel()
		}
		for _, f := range factories {
			f.Shutdown() // waits for the informers and their handlers to return
		}
		o.eps.flush(o)
		o.emitMu.Lock()
		o.closed = true
		o.emitMu.Unlock()
	})
}

// setup creates the informers and registers the handlers. Called with
// lifeMu held, before any informer starts.
func (o *Observer) setup() error {
	ns := o.target.Namespace
	sel := o.selector.String()

	podF := informers.NewSharedInformerFactoryWithOptions(o.client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = sel }))
	podWhat := fmt.Sprintf("pods in namespace %s", ns)
	if sel != "" {
		podWhat = fmt.Sprintf("pods with %s in namespace %s", sel, ns)
	}
	if err := o.watch(podF, podF.Core().V1().Pods().Informer(), podWhat, "list and watch on pods in namespace "+ns,
		cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { o.podAdded(obj, initial) },
			UpdateFunc: func(_, obj any) { o.podUpdated(obj) },
			DeleteFunc: func(obj any) { o.podDeleted(obj) },
		}); err != nil {
		return err
	}

	if o.target.Service != "" {
		svcSel := discoveryv1.LabelServiceName + "=" + o.target.Service
		epF := informers.NewSharedInformerFactoryWithOptions(o.client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = svcSel }))
		if err := o.watch(epF, epF.Discovery().V1().EndpointSlices().Informer(),
			fmt.Sprintf("endpointslices of service %s/%s", ns, o.target.Service),
			"list and watch on endpointslices.discovery.k8s.io in namespace "+ns,
			cache.ResourceEventHandlerDetailedFuncs{
				AddFunc:    func(obj any, initial bool) { o.sliceChanged(obj, initial, false) },
				UpdateFunc: func(_, obj any) { o.sliceChanged(obj, false, false) },
				DeleteFunc: func(obj any) { o.sliceChanged(obj, false, true) },
			}); err != nil {
			return err
		}
	}

	if o.nodes {
		nodeF := informers.NewSharedInformerFactoryWithOptions(o.client, 0)
		if err := o.watch(nodeF, nodeF.Core().V1().Nodes().Informer(), "nodes (cluster-wide)",
			"list and watch on nodes (a ClusterRole), or use observe.WithoutNodes",
			cache.ResourceEventHandlerDetailedFuncs{
				AddFunc:    func(obj any, initial bool) { o.nodeAdded(obj, initial) },
				UpdateFunc: func(_, obj any) { o.nodeUpdated(obj) },
				DeleteFunc: func(obj any) { o.nodeDeleted(obj) },
			}); err != nil {
			return err
		}
	}

	if o.events {
		evF := informers.NewSharedInformerFactoryWithOptions(o.client, 0, informers.WithNamespace(ns))
		if err := o.watch(evF, evF.Core().V1().Events().Informer(), "events in namespace "+ns,
			"list and watch on events in namespace "+ns+", or use observe.WithoutEvents",
			cache.ResourceEventHandlerDetailedFuncs{
				AddFunc:    func(obj any, initial bool) { o.eventSeen(obj, initial) },
				UpdateFunc: func(_, obj any) { o.eventSeen(obj, false) },
				DeleteFunc: func(obj any) { o.eventDeleted(obj) },
			}); err != nil {
			return err
		}
	}
	return nil
}

func (o *Observer) watch(f informers.SharedInformerFactory, inf cache.SharedIndexInformer, what, hint string,
	h cache.ResourceEventHandler) error {
	w := &watched{what: what, hint: hint}
	if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		o.watchError(w, err)
	}); err != nil {
		return fmt.Errorf("observe: %s: %w", what, err)
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return fmt.Errorf("observe: %s: %w", what, err)
	}
	w.reg = reg
	o.factories = append(o.factories, f)
	o.watches = append(o.watches, w)
	return nil
}

// watchNoteEvery bounds the notes about failing watches: a control-plane
// upgrade can break them for a while, and the reflector retries often.
const watchNoteEvery = 30 * time.Second

// watchError is called by a reflector when a list or watch failed (it then
// retries with back-off). Before the sync, a refusal (forbidden,
// unauthorized) ends Start; after it, failures are noted on the timeline,
// since the observer may miss changes until the watch recovers.
func (o *Observer) watchError(w *watched, err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return // the watch ended normally, or must relist: the reflector handles it
	}
	if o.isStopped() {
		return
	}
	w.mu.Lock()
	w.lastErr = err
	synced := w.reg != nil && w.reg.HasSynced()
	if !synced && (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)) && w.fatal == nil {
		w.fatal = fmt.Errorf("observe: may not watch %s: %w; grant %s", w.what, err, w.hint)
	}
	note := synced && time.Since(w.noted) >= watchNoteEvery
	if note {
		w.noted = time.Now()
	}
	w.mu.Unlock()
	if note {
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvNote, Reason: "WatchFailed",
			Detail: fmt.Sprintf("observer: watching %s failed, changes may be missed until it recovers: %v", w.what, err)})
	}
}

// emit records an event unless the observer was stopped.
func (o *Observer) emit(es ...timeline.Event) {
	o.emitMu.Lock()
	defer o.emitMu.Unlock()
	if o.closed {
		return
	}
	for _, e := range es {
		o.tl.AddEvent(e)
	}
}

// when is the offset of a change: the snapshot offset for the initial state,
// now otherwise.
func (o *Observer) when(initial bool) time.Duration {
	if initial {
		return o.startAt
	}
	return o.tl.Now()
}

// unwrap returns the object of a delete notification, which may be a
// tombstone when the watch missed the deletion.
func unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func stamp(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "?"
	}
	return t.UTC().Format(time.RFC3339)
}

func initialPrefix(initial bool) string {
	if initial {
		return "initial state; "
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
