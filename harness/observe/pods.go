package observe

import (
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// podTracker is the last state recorded of each pod, so that each update is
// turned into the transitions it brings.
type podTracker struct {
	mu    sync.Mutex
	pods  map[string]*podState // by pod name
	known map[string]bool      // every pod name ever seen, for filtering Kubernetes Events
}

type podState struct {
	uid       types.UID
	node, ip  string
	scheduled bool
	ready     bool
	deleting  bool
	// exits holds, per container, the key of the last termination recorded
	// (or, for the initial state, seen), so that one exit is recorded once
	// whether it is seen as the current state, as the last state after a
	// restart, or both.
	exits map[string]string
	// running holds the containers running now, by name: whose logs are
	// followed.
	running map[string]runningContainer
}

// runningContainer is one running instance of a container.
type runningContainer struct {
	id      string    // the container ID; a restart brings a new one
	started time.Time // its startedAt (one-second resolution)
}

func (t *podTracker) init() {
	t.pods = map[string]*podState{}
	t.known = map[string]bool{}
}

// isKnown reports whether a pod of that name was ever seen by the pod watch.
func (t *podTracker) isKnown(name string) (node string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.pods[name]; st != nil {
		return st.node, true
	}
	return "", t.known[name]
}

func (o *Observer) podAdded(obj any, initial bool) {
	if pod, ok := obj.(*corev1.Pod); ok {
		o.podChanged(pod, initial)
	}
}

func (o *Observer) podUpdated(obj any) {
	if pod, ok := obj.(*corev1.Pod); ok {
		o.podChanged(pod, false)
	}
}

// podDeleted records the last state the deletion carried, then the pod's
// end.
func (o *Observer) podDeleted(obj any) {
	pod, ok := unwrap(obj).(*corev1.Pod)
	if !ok {
		return
	}
	at := o.tl.Now()
	t := &o.pods
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.pods[pod.Name]
	if st != nil && st.uid != pod.UID {
		return // an older pod of that name, already replaced
	}
	if o.selector.Matches(labels.Set(pod.Labels)) {
		o.podTransitionsLocked(pod, at, false)
		st = t.pods[pod.Name]
	}
	if st == nil {
		return
	}
	why := "pod deleted"
	if !st.deleting {
		why = "pod removed from the API without a graceful deletion being seen (force-deleted, " +
			"deleted while the watch was down, or its labels no longer match the selector)"
	}
	o.podGoneLocked(pod.Name, st, at, true, why)
}

// podChanged records the transitions an added or updated pod brings.
func (o *Observer) podChanged(pod *corev1.Pod, initial bool) {
	at := o.when(initial)
	t := &o.pods
	t.mu.Lock()
	defer t.mu.Unlock()
	if !o.selector.Matches(labels.Set(pod.Labels)) {
		// Only a fake or a relabelled pod gets here: a real label-filtered
		// watch reports a pod leaving the selector as deleted.
		if st := t.pods[pod.Name]; st != nil && st.uid == pod.UID {
			o.podGoneLocked(pod.Name, st, at, false, "pod no longer matches the selector "+o.selector.String())
		}
		return
	}
	o.podTransitionsLocked(pod, at, initial)
}

// podGoneLocked records the end of a pod: its deletion request if none was
// seen (deleted is true for a real deletion), a last PodNotReady if it was
// still Ready, and a Note.
func (o *Observer) podGoneLocked(name string, st *podState, at time.Duration, deleted bool, why string) {
	base := timeline.Event{Offset: at, Pod: name, UID: string(st.uid), Node: st.node, IP: st.ip}
	var es []timeline.Event
	if deleted && !st.deleting {
		e := base
		e.Kind, e.Detail = timeline.EvPodDeletionRequested, "deleted without a deletion request being seen first"
		es = append(es, e)
	}
	if st.ready {
		e := base
		e.Kind, e.Detail = timeline.EvPodNotReady, why
		es = append(es, e)
	}
	e := base
	e.Kind, e.Reason, e.Detail = timeline.EvNote, "PodDeleted", why
	es = append(es, e)
	o.emit(es...)
	delete(o.pods.pods, name)
	o.logs.forget(st.uid)
}

// podTransitionsLocked diffs the pod against its recorded state and records
// the transitions, in causal order: scheduled, deletion requested, container
// exits, readiness.
func (o *Observer) podTransitionsLocked(pod *corev1.Pod, at time.Duration, initial bool) {
	t := &o.pods
	st := t.pods[pod.Name]
	if st != nil && st.uid != pod.UID {
		o.podGoneLocked(pod.Name, st, at, true, "replaced by a new pod of the same name")
		st = nil
	}
	fresh := st == nil
	if fresh {
		st = &podState{uid: pod.UID, exits: map[string]string{}, running: map[string]runningContainer{}}
		t.pods[pod.Name] = st
		t.known[pod.Name] = true
	}
	if pod.Spec.NodeName != "" {
		st.node = pod.Spec.NodeName
	}
	if pod.Status.PodIP != "" {
		st.ip = pod.Status.PodIP
	}
	pre := initialPrefix(initial)
	base := timeline.Event{Offset: at, Pod: pod.Name, UID: string(pod.UID), Node: st.node, IP: st.ip}
	var es []timeline.Event
	add := func(kind timeline.EventKind, detail string) {
		e := base
		e.Kind, e.Detail = kind, pre+detail
		es = append(es, e)
	}

	if !st.scheduled && pod.Spec.NodeName != "" {
		st.scheduled = true
		detail := "bound to node " + pod.Spec.NodeName
		if c := podCondition(pod, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionTrue {
			detail += " at " + stamp(&c.LastTransitionTime)
		}
		add(timeline.EvPodScheduled, detail)
	}

	if !st.deleting && pod.DeletionTimestamp != nil {
		st.deleting = true
		grace := "unknown grace period"
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			grace = fmt.Sprintf("grace period %ds", *g)
		}
		add(timeline.EvPodDeletionRequested, fmt.Sprintf("%s; deletionTimestamp %s", grace, stamp(pod.DeletionTimestamp)))
	}

	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if len(o.containers) > 0 && !o.containers[cs.Name] {
			continue
		}
		if last := cs.LastTerminationState.Terminated; last != nil {
			key := terminationKey(last)
			switch {
			case st.exits[cs.Name] == key:
			case initial:
				st.exits[cs.Name] = key // an exit from before the rehearsal
			default:
				st.exits[cs.Name] = key
				es = append(es, exitEvent(base, o.tl.Start().Add(at), cs.Name, last, fmt.Sprintf("; restarted (restart count %d)", cs.RestartCount)))
			}
		}
		if cur := cs.State.Terminated; cur != nil {
			if key := terminationKey(cur); st.exits[cs.Name] != key {
				st.exits[cs.Name] = key
				e := exitEvent(base, o.tl.Start().Add(at), cs.Name, cur, "")
				e.Detail = pre + e.Detail
				es = append(es, e)
			}
		}
	}

	ready := false
	readyCond := podCondition(pod, corev1.PodReady)
	if readyCond != nil && readyCond.Status == corev1.ConditionTrue {
		ready = true
	}
	switch {
	case ready && (fresh || !st.ready):
		add(timeline.EvPodReady, "Ready since "+stamp(&readyCond.LastTransitionTime))
	case !ready && st.ready, !ready && fresh && initial:
		add(timeline.EvPodNotReady, notReadyDetail(pod, readyCond))
	}
	st.ready = ready
	o.emit(es...)

	clear(st.running)
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if run := cs.State.Running; run != nil && cs.ContainerID != "" {
			st.running[cs.Name] = runningContainer{id: cs.ContainerID, started: run.StartedAt.Time}
		}
	}
	o.followRunningLocked(pod.Name, st)
}

func notReadyDetail(pod *corev1.Pod, c *corev1.PodCondition) string {
	var b strings.Builder
	if c == nil {
		b.WriteString("no Ready condition")
	} else {
		fmt.Fprintf(&b, "Ready=%s", c.Status)
		if c.Reason != "" {
			b.WriteString(" (" + c.Reason)
			if c.Message != "" {
				b.WriteString(": " + c.Message)
			}
			b.WriteString(")")
		}
		b.WriteString(" since " + stamp(&c.LastTransitionTime))
	}
	if pod.DeletionTimestamp != nil {
		b.WriteString("; terminating")
	}
	if pod.Status.Phase != "" {
		b.WriteString("; phase " + string(pod.Status.Phase))
	}
	return b.String()
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// terminationKey names one container termination: the (dead) container's
// ID, which the kubelet keeps both in the current state and, after a
// restart, in the last state.
func terminationKey(t *corev1.ContainerStateTerminated) string {
	if t.ContainerID != "" {
		return t.ContainerID
	}
	return fmt.Sprintf("%d/%s/%s", t.ExitCode, stamp(&t.StartedAt), stamp(&t.FinishedAt))
}

func exitEvent(base timeline.Event, observed time.Time, container string, t *corev1.ContainerStateTerminated, suffix string) timeline.Event {
	code := int(t.ExitCode)
	e := base
	e.Kind, e.ExitCode, e.Reason = timeline.EvContainerExited, &code, t.Reason
	// A busy kubelet reports an exit seconds late, and the blame windows
	// of a pod shutting down end at its exit: Value says how much earlier
	// the container had surely exited. finishedAt has whole seconds, so
	// the exit was before finishedAt + 1 s.
	if !t.FinishedAt.IsZero() {
		if late := observed.Sub(t.FinishedAt.Add(time.Second)); late > 0 {
			e.Value = late
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "container %s exited with code %d", container, code)
	if t.Reason != "" {
		b.WriteString(" (" + t.Reason + ")")
	}
	if t.Signal != 0 {
		fmt.Fprintf(&b, ", signal %d", t.Signal)
	}
	b.WriteString(" at " + stamp(&t.FinishedAt))
	if t.Message != "" {
		b.WriteString(": " + strings.TrimSpace(t.Message))
	}
	b.WriteString(suffix)
	e.Detail = b.String()
	return e
}
