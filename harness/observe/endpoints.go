package observe

import (
	"fmt"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// endpointTracker follows the Service's endpoints per address, across all
// of its EndpointSlices: what matters to clients is whether the Service
// routes to an address, not which slice lists it. An address moving from one
// slice to another is therefore not a change, and an address that leaves
// every slice is recorded as removed only if it does not reappear within the
// settle window (the EndpointSlice controller may write the old slice before
// the new one).
type endpointTracker struct {
	mu      sync.Mutex
	slices  map[string]map[string]endpoint // slice name → address → endpoint
	current map[string]endpoint            // address → the merged endpoint, for addresses present
	pending map[string]*removal            // addresses gone from every slice, settling
}

// endpoint is one address as a slice lists it.
type endpoint struct {
	pod, node   string
	uid         types.UID // the pod's, from the targetRef
	ready       bool
	serving     bool
	terminating bool
	slice       string
}

// removal is an address that left every slice at offset at.
type removal struct {
	ep    endpoint
	at    time.Duration
	timer *time.Timer
}

func (t *endpointTracker) init() {
	t.slices = map[string]map[string]endpoint{}
	t.current = map[string]endpoint{}
	t.pending = map[string]*removal{}
}

// sliceEndpoints lists the addresses of a slice. Ready follows the API's
// advice: a missing condition means ready.
func sliceEndpoints(s *discoveryv1.EndpointSlice) map[string]endpoint {
	out := map[string]endpoint{}
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return out
	}
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		e := endpoint{slice: s.Name, ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready}
		e.serving = e.ready
		if ep.Conditions.Serving != nil {
			e.serving = *ep.Conditions.Serving
		}
		e.terminating = ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
		if ep.TargetRef != nil && (ep.TargetRef.Kind == "Pod" || ep.TargetRef.Kind == "") {
			e.pod, e.uid = ep.TargetRef.Name, ep.TargetRef.UID
		}
		if ep.NodeName != nil {
			e.node = *ep.NodeName
		}
		for _, a := range ep.Addresses {
			if prev, dup := out[a]; dup && prev.ready && !e.ready {
				continue
			}
			out[a] = e
		}
	}
	return out
}

// sliceChanged records what an added, updated or deleted slice changes.
func (o *Observer) sliceChanged(obj any, initial, deleted bool) {
	s, ok := unwrap(obj).(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	var eps map[string]endpoint
	if !deleted && s.Labels[discoveryv1.LabelServiceName] == o.target.Service {
		eps = sliceEndpoints(s)
	}
	at := o.when(initial)
	t := &o.eps
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.slices[s.Name]
	if eps == nil {
		delete(t.slices, s.Name)
	} else {
		t.slices[s.Name] = eps
	}
	affected := map[string]bool{}
	for a := range old {
		affected[a] = true
	}
	for a := range eps {
		affected[a] = true
	}
	for _, a := range sortedKeys(affected) {
		cur, present := t.merged(a)
		o.endpointTransitionLocked(a, cur, present, at, initial)
	}
}

// merged is the address as the Service sees it: present if any slice lists
// it, ready if any slice says so (the first slice by name otherwise).
func (t *endpointTracker) merged(addr string) (endpoint, bool) {
	var best endpoint
	found := false
	for _, name := range sortedKeys(t.slices) {
		e, ok := t.slices[name][addr]
		if !ok {
			continue
		}
		if !found || (e.ready && !best.ready) {
			best, found = e, true
		}
	}
	return best, found
}

// samePod reports whether two sightings of an address name the same pod: by
// UID when both have one (a StatefulSet's new pod has the old one's name),
// else by name, an unnamed side matching anything.
func samePod(a, b endpoint) bool {
	if a.uid != "" && b.uid != "" {
		return a.uid == b.uid
	}
	return a.pod == b.pod || a.pod == "" || b.pod == ""
}

// endpointTransitionLocked records the change of one address.
func (o *Observer) endpointTransitionLocked(addr string, cur endpoint, present bool, at time.Duration, initial bool) {
	t := &o.eps
	prev, had := t.current[addr]
	switch {
	case had && present:
		t.current[addr] = cur
		switch {
		case !samePod(prev, cur):
			o.emit(endpointEvent(timeline.EvEndpointRemoved, addr, prev, at, "the address now belongs to "+podText(cur)))
			o.emit(appearEvent(addr, cur, at, initial))
		case prev.ready && !cur.ready:
			o.emit(endpointEvent(timeline.EvEndpointNotReady, addr, cur, at, ""))
		case !prev.ready && cur.ready:
			o.emit(endpointEvent(timeline.EvEndpointReady, addr, cur, at, ""))
		}
	case had && !present:
		delete(t.current, addr)
		if o.settle <= 0 {
			o.emit(endpointEvent(timeline.EvEndpointRemoved, addr, prev, at, ""))
			return
		}
		r := &removal{ep: prev, at: at}
		r.timer = time.AfterFunc(o.settle, func() { o.removalSettled(addr, r) })
		t.pending[addr] = r
	case !had && present:
		t.current[addr] = cur
		if r := t.pending[addr]; r != nil {
			r.timer.Stop()
			delete(t.pending, addr)
			if samePod(r.ep, cur) {
				// Moved between slices: only a change of readiness counts.
				switch {
				case r.ep.ready && !cur.ready:
					o.emit(endpointEvent(timeline.EvEndpointNotReady, addr, cur, at, "moved to another slice"))
				case !r.ep.ready && cur.ready:
					o.emit(endpointEvent(timeline.EvEndpointReady, addr, cur, at, "moved to another slice"))
				}
				return
			}
			o.emit(endpointEvent(timeline.EvEndpointRemoved, addr, r.ep, r.at, ""))
		}
		o.emit(appearEvent(addr, cur, at, initial))
	}
}

// removalSettled records a removal whose address did not come back.
func (o *Observer) removalSettled(addr string, r *removal) {
	t := &o.eps
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[addr] != r {
		return
	}
	delete(t.pending, addr)
	o.emit(endpointEvent(timeline.EvEndpointRemoved, addr, r.ep, r.at, ""))
}

// flush records the removals still settling, at the offsets they happened.
func (t *endpointTracker) flush(o *Observer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, addr := range sortedKeys(t.pending) {
		r := t.pending[addr]
		r.timer.Stop()
		delete(t.pending, addr)
		o.emit(endpointEvent(timeline.EvEndpointRemoved, addr, r.ep, r.at, ""))
	}
}

// appearEvent is the event of an address first seen: EndpointAdded when
// ready (it receives traffic), EndpointNotReady otherwise.
func appearEvent(addr string, e endpoint, at time.Duration, initial bool) timeline.Event {
	kind := timeline.EvEndpointAdded
	if !e.ready {
		kind = timeline.EvEndpointNotReady
	}
	ev := endpointEvent(kind, addr, e, at, "")
	ev.Detail = initialPrefix(initial) + ev.Detail
	return ev
}

func endpointEvent(kind timeline.EventKind, addr string, e endpoint, at time.Duration, note string) timeline.Event {
	var b strings.Builder
	fmt.Fprintf(&b, "slice %s: ready=%t serving=%t terminating=%t", e.slice, e.ready, e.serving, e.terminating)
	if kind == timeline.EvEndpointRemoved {
		b.Reset()
		fmt.Fprintf(&b, "gone from every slice (last in %s, ready=%t terminating=%t)", e.slice, e.ready, e.terminating)
	}
	if note != "" {
		b.WriteString("; " + note)
	}
	return timeline.Event{Offset: at, Kind: kind, Pod: e.pod, UID: string(e.uid), Node: e.node, IP: addr, Detail: b.String()}
}

// podText names an endpoint's pod for a Detail: "pod web-0 (uid 1234)".
func podText(e endpoint) string {
	s := "pod " + e.pod
	if e.uid != "" {
		s += " (uid " + string(e.uid) + ")"
	}
	return s
}
