package observe

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// eventTracker remembers how many occurrences of each Kubernetes Event were
// recorded, so that a re-delivered Event is not recorded twice and each new
// occurrence of an aggregated one is recorded once.
type eventTracker struct {
	mu   sync.Mutex
	seen map[types.UID]int32
}

func (t *eventTracker) init() { t.seen = map[types.UID]int32{} }

// occurrences is how many times an Event happened, whichever API wrote it.
func occurrences(ev *corev1.Event) int32 {
	n := max(ev.Count, 1)
	if ev.Series != nil {
		n = max(n, ev.Series.Count)
	}
	return n
}

// eventSeen records a new occurrence of a relevant Event about the app's
// pods (or its Service) as a Note. Events found at the start happened
// before the rehearsal: they are only remembered.
func (o *Observer) eventSeen(obj any, initial bool) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	at := o.when(initial)
	n := occurrences(ev)
	t := &o.evs
	t.mu.Lock()
	prev, seen := t.seen[ev.UID]
	if seen && prev >= n {
		t.mu.Unlock()
		return
	}
	t.seen[ev.UID] = n
	t.mu.Unlock()
	if initial || !o.relevantReason(ev) {
		return
	}
	e := timeline.Event{Offset: at, Kind: timeline.EvNote, Reason: ev.Reason}
	obj2 := ev.InvolvedObject
	switch obj2.Kind {
	case "Pod":
		node, known := o.pods.isKnown(obj2.Name)
		if !known {
			return
		}
		e.Pod, e.UID, e.Node = obj2.Name, string(obj2.UID), node
	case "Service":
		if obj2.Name != o.target.Service || o.target.Service == "" {
			return
		}
	case "PodDisruptionBudget":
	default:
		return
	}
	if e.Node == "" {
		e.Node = ev.Source.Host
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s event %s on %s %s: %s", orNormal(ev.Type), ev.Reason, obj2.Kind, obj2.Name,
		strings.TrimSpace(ev.Message))
	if n > 1 {
		fmt.Fprintf(&b, " (occurrence %d)", n)
	}
	if last := eventTime(ev); last != "" {
		b.WriteString("; at " + last)
	}
	e.Detail = b.String()
	o.emit(e)
}

func (o *Observer) eventDeleted(obj any) {
	if ev, ok := unwrap(obj).(*corev1.Event); ok {
		o.evs.mu.Lock()
		delete(o.evs.seen, ev.UID)
		o.evs.mu.Unlock()
	}
}

func (o *Observer) relevantReason(ev *corev1.Event) bool {
	return ev.Type == corev1.EventTypeWarning || o.reasons[ev.Reason]
}

func orNormal(t string) string {
	if t == "" {
		return corev1.EventTypeNormal
	}
	return t
}

// eventTime is the Event's own stamp of its last occurrence, for the Detail.
func eventTime(ev *corev1.Event) string {
	switch {
	case ev.Series != nil && !ev.Series.LastObservedTime.IsZero():
		return ev.Series.LastObservedTime.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	case !ev.LastTimestamp.IsZero():
		return stamp(&ev.LastTimestamp)
	case !ev.EventTime.IsZero():
		return ev.EventTime.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	}
	return ""
}
