// Package gateway is the gateway client's view of a Service: what an
// ingress controller or a service mesh keeps. It watches the Service's
// EndpointSlices itself, routes to the ready endpoints, and, like the real
// ones, applies every change after a propagation delay (ingress-nginx
// applies endpoint changes on a periodic sync, Envoy-based gateways after a
// debounced configuration push: from a tenth of a second to a few seconds).
// During that delay a terminating pod still gets traffic and a new Ready pod
// gets none yet: the window a preStop wait must cover.
//
// Router implements load.Router: the gateway client asks it, per request,
// which pod to send to (round-robin over the routed endpoints), so every
// request, failed or not, is attributed to its pod. Every change of what is
// routed is recorded on the timeline (RouteAdded / RouteRemoved, client
// "gateway") at the moment it took effect.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// DefaultSyncDelay is how long an endpoint change takes to reach the
// gateway's routing: about what ingress-nginx (its periodic backend sync)
// and Envoy-based gateways (debounced pushes) take on a quiet cluster.
const DefaultSyncDelay = time.Second

// Option configures a Router.
type Option func(*Router)

// WithSyncDelay sets the propagation delay (0 applies changes at once, like
// no real gateway does).
func WithSyncDelay(d time.Duration) Option { return func(r *Router) { r.delay = d } }

// Router routes the gateway client's requests to a Service's ready pods.
type Router struct {
	client      kubernetes.Interface
	tl          *timeline.Timeline
	namespace   string
	service     string
	servicePort int32
	delay       time.Duration

	portName string // the Service port's name, as the slices name their ports

	routed atomic.Pointer[[]load.Endpoint] // what requests go to now, sorted by pod
	next   atomic.Uint64

	mu       sync.Mutex
	slices   map[string][]load.Endpoint // slice name -> its ready endpoints
	known    map[string]load.Endpoint   // every address ever routed, for Lookup
	seq      uint64                     // of the newest desired state
	applied  uint64                     // of the state in effect
	cancel   context.CancelFunc
	factory  informers.SharedInformerFactory
	stopOnce sync.Once
	stopped  bool
	timers   map[*time.Timer]struct{}
}

var _ load.Router = (*Router)(nil)

// New prepares a router for a Service port; Start starts it.
func New(client kubernetes.Interface, tl *timeline.Timeline, namespace, service string, servicePort int32, opts ...Option) (*Router, error) {
	if client == nil || tl == nil {
		return nil, errors.New("gateway: a Kubernetes client and a timeline are required")
	}
	if namespace == "" || service == "" || servicePort <= 0 {
		return nil, fmt.Errorf("gateway: give the Service's namespace, name and port (got %q/%q port %d)", namespace, service, servicePort)
	}
	r := &Router{
		client: client, tl: tl, namespace: namespace, service: service, servicePort: servicePort,
		delay: DefaultSyncDelay, slices: map[string][]load.Endpoint{}, known: map[string]load.Endpoint{},
		timers: map[*time.Timer]struct{}{},
	}
	for _, o := range opts {
		o(r)
	}
	empty := []load.Endpoint{}
	r.routed.Store(&empty)
	return r, nil
}

// SyncDelay is the propagation delay in use.
func (r *Router) SyncDelay() time.Duration { return r.delay }

// Start resolves the Service port, starts the watch and routes to the
// endpoints ready now (at once: the gateway was configured before the
// rehearsal began). It returns when the watch has synced.
func (r *Router) Start(ctx context.Context) error {
	svc, err := r.client.CoreV1().Services(r.namespace).Get(ctx, r.service, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("gateway: the Service %s/%s: %w", r.namespace, r.service, err)
	}
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == r.servicePort {
			port = &svc.Spec.Ports[i]
		}
	}
	if port == nil {
		return fmt.Errorf("gateway: the Service %s/%s has no port %d: give one of its ports", r.namespace, r.service, r.servicePort)
	}
	r.portName = port.Name

	runCtx, cancel := context.WithCancel(ctx)
	sel := discoveryv1.LabelServiceName + "=" + r.service
	f := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithNamespace(r.namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = sel }))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, initial bool) { r.sliceChanged(obj, false, initial) },
		UpdateFunc: func(_, obj any) { r.sliceChanged(obj, false, false) },
		DeleteFunc: func(obj any) { r.sliceChanged(obj, true, false) },
	})
	if err != nil {
		cancel()
		return fmt.Errorf("gateway: %w", err)
	}
	r.mu.Lock()
	r.cancel, r.factory = cancel, f
	r.mu.Unlock()
	f.Start(runCtx.Done())
	if !cache.WaitForCacheSync(runCtx.Done(), reg.HasSynced) {
		r.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("gateway: the EndpointSlices of %s/%s did not sync", r.namespace, r.service)
	}
	// The initial state applies at once.
	r.mu.Lock()
	want, seq := r.desiredLocked(), r.seq
	r.mu.Unlock()
	r.apply(seq, want, "initial state")
	return nil
}

// Stop ends the watch and cancels changes not yet applied; what is routed
// stays as it is.
func (r *Router) Stop() {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		cancel, f := r.cancel, r.factory
		for t := range r.timers {
			t.Stop()
		}
		clear(r.timers)
		r.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		if f != nil {
			f.Shutdown()
		}
	})
}

// Pick returns the next endpoint, round-robin over what is routed.
func (r *Router) Pick() (load.Endpoint, bool) {
	eps := *r.routed.Load()
	if len(eps) == 0 {
		return load.Endpoint{}, false
	}
	return eps[r.next.Add(1)%uint64(len(eps))], true
}

// Lookup names an address the gateway routed to at some point.
func (r *Router) Lookup(addr string) (load.Endpoint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.known[addr]
	return e, ok
}

// Routed is what requests go to now.
func (r *Router) Routed() []load.Endpoint { return append([]load.Endpoint(nil), *r.routed.Load()...) }

func (r *Router) sliceChanged(obj any, deleted, initial bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	r.mu.Lock()
	if deleted || s.Labels[discoveryv1.LabelServiceName] != r.service {
		delete(r.slices, s.Name)
	} else {
		r.slices[s.Name] = r.readyEndpoints(s)
	}
	r.seq++
	seq, want := r.seq, r.desiredLocked()
	if initial || r.stopped {
		r.mu.Unlock()
		return // Start applies the initial state itself
	}
	seen := r.tl.Now()
	var t *time.Timer
	t = time.AfterFunc(r.delay, func() {
		r.mu.Lock()
		delete(r.timers, t)
		r.mu.Unlock()
		r.apply(seq, want, "endpoint change seen at "+fmtOffset(seen)+", applied after the gateway's "+r.delay.String()+" sync delay")
	})
	r.timers[t] = struct{}{}
	r.mu.Unlock()
}

// readyEndpoints lists a slice's ready addresses on the Service's port.
func (r *Router) readyEndpoints(s *discoveryv1.EndpointSlice) []load.Endpoint {
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return nil
	}
	var port int32
	for _, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if p.Port != nil && (name == r.portName || len(s.Ports) == 1) {
			port = *p.Port
		}
	}
	if port == 0 {
		return nil
	}
	var out []load.Endpoint
	for _, ep := range s.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		e := load.Endpoint{}
		if ep.TargetRef != nil {
			e.Pod, e.UID = ep.TargetRef.Name, string(ep.TargetRef.UID)
		}
		if ep.NodeName != nil {
			e.Node = *ep.NodeName
		}
		for _, a := range ep.Addresses {
			e.Addr = net.JoinHostPort(a, strconv.Itoa(int(port)))
			out = append(out, e)
		}
	}
	return out
}

// desiredLocked is the union of every slice's ready endpoints, by address.
func (r *Router) desiredLocked() []load.Endpoint {
	byAddr := map[string]load.Endpoint{}
	for _, eps := range r.slices {
		for _, e := range eps {
			byAddr[e.Addr] = e
		}
	}
	out := make([]load.Endpoint, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pod != out[j].Pod {
			return out[i].Pod < out[j].Pod
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// apply makes want the routed set, unless a newer state is already in
// effect, and records what changed.
func (r *Router) apply(seq uint64, want []load.Endpoint, why string) {
	r.mu.Lock()
	if r.stopped && why != "initial state" || seq < r.applied {
		r.mu.Unlock()
		return
	}
	r.applied = seq
	old := *r.routed.Load()
	for _, e := range want {
		r.known[e.Addr] = e
	}
	r.routed.Store(&want)
	r.mu.Unlock()

	at := r.tl.Now()
	had := map[string]load.Endpoint{}
	for _, e := range old {
		had[e.Addr] = e
	}
	has := map[string]bool{}
	for _, e := range want {
		has[e.Addr] = true
		if _, ok := had[e.Addr]; !ok {
			r.tl.AddEvent(routeEvent(timeline.EvRouteAdded, e, at, why))
		}
	}
	for _, e := range old {
		if !has[e.Addr] {
			r.tl.AddEvent(routeEvent(timeline.EvRouteRemoved, e, at, why))
		}
	}
}

func routeEvent(kind timeline.EventKind, e load.Endpoint, at time.Duration, why string) timeline.Event {
	return timeline.Event{Offset: at, Kind: kind, Client: timeline.ClientGateway, Pod: e.Pod, UID: e.UID,
		Node: e.Node, IP: e.IP(), Detail: "gateway: " + why}
}

func fmtOffset(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}
