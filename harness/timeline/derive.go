package timeline

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// Interval is [From, To) on the timeline; To is Forever when it never closed.
type Interval struct {
	From, To time.Duration
}

// Contains reports whether the offset is in [From, To).
func (i Interval) Contains(at time.Duration) bool { return at >= i.From && at < i.To }

// Duration is To - From (Forever when open).
func (i Interval) Duration() time.Duration {
	if i.To == Forever {
		return Forever
	}
	return i.To - i.From
}

// Step is one step of a step function: from At on, the value is Ready.
type Step struct {
	At    time.Duration
	Ready int
}

// ReadySeries is the number of ready endpoints over time, a step function
// with one step per change. Before the first step the count is unknown and
// read as 0.
type ReadySeries []Step

// endpointKey names an endpoint: the pod it points to (by UID, else by
// name), or its IP when the event names no pod.
func endpointKey(e *Event) string {
	if k := podKey(e.UID, e.Pod); k != "" {
		return k
	}
	if e.IP != "" {
		return "ip/" + e.IP
	}
	return ""
}

// podKey identifies a pod: its UID when known (names repeat: a StatefulSet's
// pod comes back under the same name), else its name.
func podKey(uid, name string) string {
	switch {
	case uid != "":
		return "uid/" + uid
	case name != "":
		return "pod/" + name
	}
	return ""
}

// ReadyEndpoints derives the ready-endpoint count from endpoint events, which
// must be sorted by offset (a Snapshot's are). Each endpoint, named by its IP
// (or pod when there is no IP), is in one of three states: absent, present
// but not ready, ready.
//
//   - EndpointAdded: present and ready (the address receives traffic);
//   - EndpointReady: ready (present if it was absent);
//   - EndpointNotReady: present, not ready (also how an observer reports an
//     address first seen not ready, or terminating);
//   - EndpointRemoved: absent.
//
// Events at the same offset are applied in order and produce one step, so an
// observer may write Added then NotReady at the same instant for an address
// first seen not ready.
func ReadyEndpoints(events []Event) ReadySeries {
	ready := map[string]bool{}
	var out ReadySeries
	count := 0
	for i := range events {
		e := &events[i]
		if !e.Kind.IsEndpoint() {
			continue
		}
		key := endpointKey(e)
		if key == "" {
			continue
		}
		now := e.Kind == EvEndpointAdded || e.Kind == EvEndpointReady
		if ready[key] != now {
			if now {
				count++
			} else {
				count--
			}
		}
		if now {
			ready[key] = true
		} else {
			delete(ready, key)
		}
		switch n := len(out); {
		case n > 0 && out[n-1].At == e.Offset:
			out[n-1].Ready = count
			if n > 1 && out[n-2].Ready == count {
				out = out[:n-1]
			}
		case n > 0 && out[n-1].Ready == count:
			// no change
		default:
			out = append(out, Step{At: e.Offset, Ready: count})
		}
	}
	return out
}

// At returns the count at an offset.
func (s ReadySeries) At(at time.Duration) int {
	i := sort.Search(len(s), func(i int) bool { return s[i].At > at })
	if i == 0 {
		return 0
	}
	return s[i-1].Ready
}

// Below returns the intervals within [from, to) where the count is below
// least, with the lowest count seen in each.
func (s ReadySeries) Below(least int, from, to time.Duration) []Gap {
	var out []Gap
	var cur *Gap
	consider := func(at time.Duration, v int) {
		if v < least {
			if cur == nil {
				out = append(out, Gap{Interval: Interval{From: at, To: to}, Lowest: v})
				cur = &out[len(out)-1]
			}
			cur.Lowest = min(cur.Lowest, v)
		} else if cur != nil {
			cur.To = at
			cur = nil
		}
	}
	consider(from, s.At(from))
	for _, st := range s {
		if st.At <= from || st.At >= to {
			continue
		}
		consider(st.At, st.Ready)
	}
	return out
}

// Gap is an interval where the ready-endpoint count was below a minimum.
type Gap struct {
	Interval
	Lowest int // the lowest count during the gap
}

// Mark is an optional instant: Known says whether it happened.
type Mark struct {
	At    time.Duration
	Known bool
}

func (m *Mark) setFirst(at time.Duration) {
	if !m.Known {
		m.At, m.Known = at, true
	}
}

// PodLifecycle is what the events say about one pod.
type PodLifecycle struct {
	Pod       string
	UID       string        // empty when the events carried none
	Node      string        // the last node the events named
	IP        string        // the last pod IP the events named
	FirstSeen time.Duration // its first event

	Scheduled         Mark // first PodScheduled
	Ready             Mark // first PodReady
	EndpointReady     Mark // first time its endpoint was ready (EndpointAdded or EndpointReady)
	DeletionRequested Mark // first PodDeletionRequested: SIGTERM (or the preStop hook) follows
	// EndpointGone is when the Service last stopped routing to the pod: the
	// first EndpointNotReady or EndpointRemoved after its endpoint was last
	// ready, or, if it was never seen ready, its first EndpointRemoved.
	// Unknown while the endpoint is still ready at the end of the events.
	EndpointGone Mark
	// Exited is the container's exit: the first ContainerExited at or after
	// the deletion request, or the first one at all if there was none; at
	// the exit the kubelet reported (the event's Value before it was seen).
	Exited     Mark
	ExitCode   *int
	ExitReason string
	Exits      int // ContainerExited events seen (restarts show up here)

	// ReadyIntervals are the periods its Ready condition was true (PodReady
	// to PodNotReady or ContainerExited); EndpointReadyIntervals the periods
	// its endpoint was ready. Open ones end at Forever.
	ReadyIntervals         []Interval
	EndpointReadyIntervals []Interval
}

// ReadyAt reports whether the pod's Ready condition was true at the offset.
func (p *PodLifecycle) ReadyAt(at time.Duration) bool { return inAny(p.ReadyIntervals, at) }

// EndpointReadyAt reports whether the pod's endpoint was ready at the offset.
func (p *PodLifecycle) EndpointReadyAt(at time.Duration) bool {
	return inAny(p.EndpointReadyIntervals, at)
}

func inAny(iv []Interval, at time.Duration) bool {
	for _, i := range iv {
		if i.Contains(at) {
			return true
		}
	}
	return false
}

// FirstReady is the first moment the pod was Ready or its endpoint was
// ready, whichever came first.
func (p *PodLifecycle) FirstReady() Mark {
	switch {
	case p.Ready.Known && p.EndpointReady.Known:
		return Mark{At: min(p.Ready.At, p.EndpointReady.At), Known: true}
	case p.Ready.Known:
		return p.Ready
	default:
		return p.EndpointReady
	}
}

// IPIndex resolves a pod IP to the pod that had it at a given time. Pod IPs
// are reused (kind hands a deleted pod's IP to the next pod quickly), so the
// index remembers every pod an IP belonged to and when it was first named.
type IPIndex struct {
	owners map[string][]ipOwner
}

type ipOwner struct {
	since    time.Duration
	pod, uid string
}

// NewIPIndex builds an index from every event naming both a pod and an IP.
// Events must be sorted.
func NewIPIndex(events []Event) IPIndex {
	idx := IPIndex{owners: map[string][]ipOwner{}}
	for i := range events {
		e := &events[i]
		if e.IP == "" || e.Pod == "" {
			continue
		}
		owners := idx.owners[e.IP]
		if n := len(owners); n > 0 && owners[n-1].pod == e.Pod && (e.UID == "" || owners[n-1].uid == "" || owners[n-1].uid == e.UID) {
			if owners[n-1].uid == "" {
				owners[n-1].uid = e.UID
			}
			continue
		}
		idx.owners[e.IP] = append(owners, ipOwner{since: e.Offset, pod: e.Pod, uid: e.UID})
	}
	return idx
}

// Pod returns the pod that had the IP at the offset: the latest one named
// with it at or before the offset, else the first one named after it.
func (x IPIndex) Pod(ip string, at time.Duration) string {
	pod, _ := x.PodUID(ip, at)
	return pod
}

// PodUID is Pod with the pod's UID (empty when the events carried none).
func (x IPIndex) PodUID(ip string, at time.Duration) (pod, uid string) {
	owners := x.owners[ip]
	if len(owners) == 0 {
		return "", ""
	}
	i := sort.Search(len(owners), func(i int) bool { return owners[i].since > at })
	if i == 0 {
		return owners[0].pod, owners[0].uid
	}
	return owners[i-1].pod, owners[i-1].uid
}

// PodLifecycles derives each pod's lifecycle from events, which must be
// sorted. Endpoint events that carry only an IP are matched to the pod that
// had that IP at the time. The result is ordered by first event, then name.
func PodLifecycles(events []Event) []PodLifecycle {
	ips := NewIPIndex(events)
	byKey := map[string]*PodLifecycle{}
	lastUID := map[string]string{} // pod name -> the UID last seen with it
	var order []*PodLifecycle
	get := func(name, uid string, at time.Duration) *PodLifecycle {
		if uid == "" {
			// An event without a UID (a v1 timeline, a note) belongs to the
			// pod of that name seen last.
			uid = lastUID[name]
		} else {
			lastUID[name] = uid
		}
		key := podKey(uid, name)
		p := byKey[key]
		if p == nil {
			p = &PodLifecycle{Pod: name, UID: uid, FirstSeen: at}
			byKey[key] = p
			order = append(order, p)
		}
		return p
	}
	type open struct{ ready, ep bool }
	state := map[*PodLifecycle]*open{}
	st := func(p *PodLifecycle) *open {
		s := state[p]
		if s == nil {
			s = &open{}
			state[p] = s
		}
		return s
	}
	closeLast := func(iv []Interval, at time.Duration) {
		iv[len(iv)-1].To = at
	}
	for i := range events {
		e := &events[i]
		name, uid := e.Pod, e.UID
		if name == "" && e.Kind.IsEndpoint() && e.IP != "" {
			name, uid = ips.PodUID(e.IP, e.Offset)
		}
		if name == "" {
			continue
		}
		switch e.Kind {
		case EvPodScheduled, EvPodReady, EvPodNotReady, EvPodDeletionRequested, EvContainerExited,
			EvEndpointAdded, EvEndpointRemoved, EvEndpointNotReady, EvEndpointReady, EvEvictionRefused:
		default:
			continue
		}
		p := get(name, uid, e.Offset)
		if e.Node != "" {
			p.Node = e.Node
		}
		if e.IP != "" {
			p.IP = e.IP
		}
		s := st(p)
		switch e.Kind {
		case EvPodScheduled:
			p.Scheduled.setFirst(e.Offset)
		case EvPodReady:
			p.Ready.setFirst(e.Offset)
			if !s.ready {
				s.ready = true
				p.ReadyIntervals = append(p.ReadyIntervals, Interval{From: e.Offset, To: Forever})
			}
		case EvPodNotReady:
			if s.ready {
				s.ready = false
				closeLast(p.ReadyIntervals, e.Offset)
			}
		case EvPodDeletionRequested:
			p.DeletionRequested.setFirst(e.Offset)
		case EvContainerExited:
			p.Exits++
			if !p.Exited.Known || (p.DeletionRequested.Known && p.Exited.At < p.DeletionRequested.At && e.Offset >= p.DeletionRequested.At) {
				p.Exited = Mark{At: e.Offset - e.Value, Known: true}
				p.ExitCode, p.ExitReason = e.ExitCode, e.Reason
			}
			if s.ready {
				s.ready = false
				closeLast(p.ReadyIntervals, e.Offset)
			}
		case EvEndpointAdded, EvEndpointReady:
			p.EndpointReady.setFirst(e.Offset)
			if !s.ep {
				s.ep = true
				p.EndpointReadyIntervals = append(p.EndpointReadyIntervals, Interval{From: e.Offset, To: Forever})
				p.EndpointGone = Mark{}
			}
		case EvEndpointNotReady, EvEndpointRemoved:
			if s.ep {
				s.ep = false
				closeLast(p.EndpointReadyIntervals, e.Offset)
				p.EndpointGone = Mark{At: e.Offset, Known: true}
			} else if len(p.EndpointReadyIntervals) == 0 && e.Kind == EvEndpointRemoved {
				p.EndpointGone.setFirst(e.Offset)
			}
		}
	}
	out := make([]PodLifecycle, len(order))
	for i, p := range order {
		out[i] = *p
	}
	slices.SortStableFunc(out, func(a, b PodLifecycle) int {
		if c := cmp.Compare(a.FirstSeen, b.FirstSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.Pod, b.Pod)
	})
	return out
}
