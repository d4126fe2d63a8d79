// Package observe watches a rehearsal's cluster and writes what it sees onto
// the rehearsal's timeline: the app's pods (scheduled, Ready, deletion
// requested, container exits), the addresses in its Service's
// EndpointSlices, the nodes, the Kubernetes Events about its pods, the
// lifecycle lines the app logs, the health of the watches themselves and how
// late they deliver changes.
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
//     names the IP, the pod (the slice's targetRef), its UID and the node.
//   - pods: PodScheduled, PodReady / PodNotReady (the Ready condition),
//     PodDeletionRequested, ContainerExited (ExitCode, Reason), and a Note
//     (Reason "PodDeleted") when the pod is gone from the API. Each carries
//     the pod's UID: a pod replaced by a new one of the same name (a
//     StatefulSet's) ends with its own PodDeleted note and the new one's
//     events carry the new UID.
//   - nodes: NodeAdded, NodeReady / NodeNotReady, NodeCordoned /
//     NodeUncordoned, NodeDeleted.
//   - Kubernetes Events about the app's pods (Killing, Unhealthy,
//     FailedScheduling, BackOff, any Warning...) as Notes carrying the
//     event's reason.
//   - the app's lifecycle log lines (contract.IsLifecycle: "started",
//     "sigterm received", "exited"...) as AppLog events: Name is the
//     message, Detail the line's attributes as "k=v k=v" in the line's order,
//     Pod, UID and Node the pod's. They are placed at the time the app wrote
//     on the line, by the app's clock: on kind the nodes share the host's
//     clock; on other targets the nodes' clock skew against this machine
//     applies to these events, and to nothing else on the timeline. Each
//     running container of the app's pods is followed from its start (or
//     the timeline's, for one found running), a restarted one anew, a broken
//     stream again from its last line, each line recorded once
//     (WithLogContainers limits the containers, WithoutAppLogs turns it
//     off). Lines in any other format never parse, so a user's app costs one
//     stream per container and records nothing. A log that could not be
//     opened after a few tries, the API server being up, is a Note (Reason
//     "LogFollowFailed"), once per container (once in all when the identity
//     may not read logs).
//   - each interruption of a synced watch as WatchInterrupted (Name: the
//     watch, "pods with app=web in namespace shop"; Detail: the error), and
//     its end as WatchResumed (Detail "relisted" or "watch re-established"):
//     one pair per interruption however often the watch retried meanwhile.
//     A watch that ends normally (expired resource version, closed stream)
//     and is re-established at once is not interrupted.
//   - WatchLag events (Value: the lag, Detail "probe N") measured by a probe
//     (WithLagProbe): a ConfigMap the observer creates in the namespace
//     ("rehearse-watch-probe-<random>", labelled
//     app.kubernetes.io/managed-by=rehearse), changes every second and
//     watches, so the lag is that of a real change through a real watch,
//     stamped at its delivery. No lag is measured across an interruption of
//     the probe's own watch, whose interruptions are not recorded (no
//     verdict depends on that watch). The probe records nothing else, but a
//     Note (Reason "WatchLagUnmeasured") when it cannot run and one (Reason
//     "WatchProbeLeft") if Stop could not delete the ConfigMap.
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

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
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
	DefaultLagProbe       = time.Second
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

// WithoutAppLogs does not follow the logs of the app's containers: no AppLog
// events (for identities that may not get pods/log, or to save the streams).
func WithoutAppLogs() Option { return func(o *Observer) { o.appLogs = false } }

// WithLogContainers limits log following to the named containers. By
// default every regular container of the app's pods is followed (whatever
// WithContainers says: a container that is not the app's logs nothing that
// parses, and costs a stream).
func WithLogContainers(names ...string) Option {
	return func(o *Observer) { o.logContainers = setOf(names) }
}

// WithLagProbe sets how often the watch-lag probe changes its ConfigMap
// (DefaultLagProbe); 0 disables the probe, and verdicts then assume a lag.
func WithLagProbe(every time.Duration) Option {
	return func(o *Observer) { o.lagEvery = max(every, 0) }
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
	client        kubernetes.Interface
	tl            *timeline.Timeline
	target        Target
	selector      labels.Selector
	syncTimeout   time.Duration
	settle        time.Duration
	nodes         bool
	events        bool
	reasons       map[string]bool
	containers    map[string]bool
	appLogs       bool
	logContainers map[string]bool
	lagEvery      time.Duration

	// openLog opens a container's log stream; tests replace it, since the
	// fake clientset's logs are a fixed text that cannot fail. logRetry is
	// the first wait after a failed open (logRetryBase; shorter in tests).
	openLog  func(ctx context.Context, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
	logRetry time.Duration

	// startAt is the offset of the initial snapshot: the moment Start was
	// called. runCtx ends when the observer stops. Both are set before any
	// informer runs.
	startAt time.Duration
	runCtx  context.Context

	lifeMu   sync.Mutex
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	watches  []*watched     // the watches Start waits for (the probe's is apart)
	podWatch *watched       // the pods' one, among them
	running  sync.WaitGroup // informer goroutines, and the probe's loop
	stopOnce sync.Once

	// emitMu guards closed; it is held while an event is added so that
	// nothing is recorded after Stop returned.
	emitMu sync.Mutex
	closed bool

	pods  podTracker
	eps   endpointTracker
	dns   dnsTracker
	nds   nodeTracker
	evs   eventTracker
	logs  logFollowers
	probe lagProbe
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
		appLogs: true, lagEvery: DefaultLagProbe, logRetry: logRetryBase,
	}
	o.openLog = o.streamLog
	for _, opt := range opts {
		opt(o)
	}
	o.pods.init()
	o.eps.init()
	o.nds.init()
	o.evs.init()
	o.logs.init()
	o.probe.init()
	return o, nil
}

// Start starts the watches and returns once each has delivered the current
// state (recorded as a snapshot at the offset Start was called), or with an
// error when they could not sync within the sync timeout, when the identity
// may not list what is watched, or when ctx ends first. On error nothing is
// left running. The watches run until Stop is called or ctx is cancelled.
//
// Once synced, Start creates the watch-lag probe's ConfigMap (unless
// WithLagProbe(0)); failing to is noted on the timeline, not an error.
func (o *Observer) Start(ctx context.Context) error {
	o.lifeMu.Lock()
	if o.started || o.stopped {
		o.lifeMu.Unlock()
		return errors.New("observe: an Observer starts once, and not after Stop")
	}
	o.started = true
	o.startAt = o.tl.Now()
	runCtx, cancel := context.WithCancel(ctx)
	o.runCtx, o.cancel = runCtx, cancel
	if err := o.setup(); err != nil {
		o.lifeMu.Unlock()
		o.Stop()
		return err
	}
	for _, w := range o.watches {
		o.runLocked(runCtx, w)
	}
	o.lifeMu.Unlock()

	err := wait.PollUntilContextTimeout(runCtx, 20*time.Millisecond, o.syncTimeout, true, func(context.Context) (bool, error) {
		done := true
		for _, w := range o.watches {
			if fatal := w.fatalErr(); fatal != nil {
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
	if o.lagEvery > 0 {
		o.startProbe(ctx)
	}
	return nil
}

// runLocked runs an informer until ctx ends. Called with lifeMu held and
// the observer not stopped, so that Stop waits for it.
func (o *Observer) runLocked(ctx context.Context, w *watched) {
	o.running.Add(1)
	go func() {
		defer o.running.Done()
		w.inf.RunWithContext(ctx) // returns once its handlers have returned
	}()
}

func (o *Observer) isStopped() bool {
	o.lifeMu.Lock()
	defer o.lifeMu.Unlock()
	return o.stopped
}

// startError explains why Start failed.
func (o *Observer) startError(ctx context.Context, err error) error {
	for _, w := range o.watches {
		if fatal := w.fatalErr(); fatal != nil && errors.Is(err, fatal) {
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
		s := w.what
		if last := w.lastError(); last != nil {
			s += " (last error: " + last.Error() + ")"
		}
		pending = append(pending, s)
	}
	return fmt.Errorf("observe: the watches did not sync within %s: %s; check that the kubeconfig points at a "+
		"reachable API server and that the identity may list and watch these", o.syncTimeout, strings.Join(pending, "; "))
}

// Stop stops the watches, the log followers (waiting for them a short while)
// and the lag probe, deletes the probe's ConfigMap, and records the endpoint
// removals still settling. Nothing is recorded after it returns. It may be
// called more than once, and without Start.
func (o *Observer) Stop() {
	o.stopOnce.Do(func() {
		o.lifeMu.Lock()
		o.stopped = true
		cancel := o.cancel
		o.lifeMu.Unlock()
		if cancel != nil {
			cancel()
		}
		// The informers and their handlers, and the probe's loop: once they
		// have returned, nothing starts a log follower any more.
		o.running.Wait()
		o.logs.stop(logStopWait)
		o.deleteProbe()
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

	pods := o.client.CoreV1().Pods(ns)
	podWhat := fmt.Sprintf("pods in namespace %s", ns)
	if sel != "" {
		podWhat = fmt.Sprintf("pods with %s in namespace %s", sel, ns)
	}
	w, err := o.newWatch(watchSpec{
		what: podWhat, hint: "list and watch on pods in namespace " + ns,
		example: &corev1.Pod{}, tweak: func(lo *metav1.ListOptions) { lo.LabelSelector = sel },
		list: lister(pods.List), watch: pods.Watch,
		handler: cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { o.podAdded(obj, initial) },
			UpdateFunc: func(_, obj any) { o.podUpdated(obj) },
			DeleteFunc: func(obj any) { o.podDeleted(obj) },
		},
		// Log streams go through the API server too: those that broke
		// while the watch was down are restarted when it is back.
		onResume: o.followAllRunning,
	})
	if err != nil {
		return err
	}
	o.watches = append(o.watches, w)
	o.podWatch = w

	if o.target.Service != "" {
		svcSel := discoveryv1.LabelServiceName + "=" + o.target.Service
		slices := o.client.DiscoveryV1().EndpointSlices(ns)
		w, err := o.newWatch(watchSpec{
			what:    fmt.Sprintf("endpointslices of service %s/%s", ns, o.target.Service),
			hint:    "list and watch on endpointslices.discovery.k8s.io in namespace " + ns,
			example: &discoveryv1.EndpointSlice{}, tweak: func(lo *metav1.ListOptions) { lo.LabelSelector = svcSel },
			list: lister(slices.List), watch: slices.Watch,
			handler: cache.ResourceEventHandlerDetailedFuncs{
				AddFunc:    func(obj any, initial bool) { o.sliceChanged(obj, initial, false) },
				UpdateFunc: func(_, obj any) { o.sliceChanged(obj, false, false) },
				DeleteFunc: func(obj any) { o.sliceChanged(obj, false, true) },
			},
		})
		if err != nil {
			return err
		}
		o.watches = append(o.watches, w)
	}

	if o.nodes {
		nodes := o.client.CoreV1().Nodes()
		w, err := o.newWatch(watchSpec{
			what: "nodes (cluster-wide)", hint: "list and watch on nodes (a ClusterRole), or use observe.WithoutNodes",
			example: &corev1.Node{}, list: lister(nodes.List), watch: nodes.Watch,
			handler: cache.ResourceEventHandlerDetailedFuncs{
				AddFunc:    func(obj any, initial bool) { o.nodeAdded(obj, initial) },
				UpdateFunc: func(_, obj any) { o.nodeUpdated(obj) },
				DeleteFunc: func(obj any) { o.nodeDeleted(obj) },
			},
		})
		if err != nil {
			return err
		}
		o.watches = append(o.watches, w)
	}

	// The cluster's DNS goes with the nodes: both are the cluster around
	// the app, which an observer of the app alone (WithoutNodes) leaves out.
	if o.nodes && !(ns == ClusterDNSNamespace && o.target.Service == ClusterDNSService) {
		if err := o.watchClusterDNS(o.runCtx); err != nil {
			return err
		}
	}

	if o.events {
		events := o.client.CoreV1().Events(ns)
		w, err := o.newWatch(watchSpec{
			what:    "events in namespace " + ns,
			hint:    "list and watch on events in namespace " + ns + ", or use observe.WithoutEvents",
			example: &corev1.Event{}, list: lister(events.List), watch: events.Watch,
			handler: cache.ResourceEventHandlerDetailedFuncs{
				AddFunc:    func(obj any, initial bool) { o.eventSeen(obj, initial) },
				UpdateFunc: func(_, obj any) { o.eventSeen(obj, false) },
				DeleteFunc: func(obj any) { o.eventDeleted(obj) },
			},
		})
		if err != nil {
			return err
		}
		o.watches = append(o.watches, w)
	}
	return nil
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
		return timeline.InitialState
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
