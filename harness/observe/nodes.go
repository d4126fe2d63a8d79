package observe

import (
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	nodeutil "k8s.io/component-helpers/node/util"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// nodeTracker is the last state recorded of each node.
type nodeTracker struct {
	mu    sync.Mutex
	nodes map[string]*nodeState
}

type nodeState struct {
	uid      string
	ready    bool
	cordoned bool
	version  string // the kubelet's
}

func (t *nodeTracker) init() { t.nodes = map[string]*nodeState{} }

func (o *Observer) nodeAdded(obj any, initial bool) {
	if n, ok := obj.(*corev1.Node); ok {
		o.nodeChanged(n, initial)
	}
}

func (o *Observer) nodeUpdated(obj any) {
	if n, ok := obj.(*corev1.Node); ok {
		o.nodeChanged(n, false)
	}
}

func (o *Observer) nodeDeleted(obj any) {
	n, ok := unwrap(obj).(*corev1.Node)
	if !ok {
		return
	}
	at := o.tl.Now()
	t := &o.nds
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.nodes[n.Name]; !seen {
		return
	}
	delete(t.nodes, n.Name)
	o.emit(timeline.Event{Offset: at, Kind: timeline.EvNodeDeleted, Node: n.Name, Detail: "node deleted"})
}

// nodeChanged records a node's transitions. A node that joins after the
// start is NodeAdded, then NodeReady once its kubelet reports Ready (a new
// node is not ready at first, which is not worth an event); the initial
// state says whether each node is ready and which are cordoned.
func (o *Observer) nodeChanged(n *corev1.Node, initial bool) {
	at := o.when(initial)
	t := &o.nds
	t.mu.Lock()
	defer t.mu.Unlock()
	pre := initialPrefix(initial)
	base := timeline.Event{Offset: at, Node: n.Name}
	var es []timeline.Event
	add := func(kind timeline.EventKind, detail string) {
		e := base
		e.Kind, e.Detail = kind, pre+detail
		es = append(es, e)
	}
	st := t.nodes[n.Name]
	if st != nil && st.uid != string(n.UID) {
		add(timeline.EvNodeDeleted, "replaced by a new node of the same name")
		st = nil
	}
	fresh := st == nil
	if fresh {
		st = &nodeState{uid: string(n.UID)}
		t.nodes[n.Name] = st
		if !initial {
			add(timeline.EvNodeAdded, nodeInfo(n))
		}
	}
	cond := nodeReadyCondition(n)
	ready := cond != nil && cond.Status == corev1.ConditionTrue
	switch {
	case ready && (fresh || !st.ready):
		detail := "Ready"
		if cond != nil {
			detail += " since " + stamp(&cond.LastTransitionTime)
		}
		if initial {
			detail += "; " + nodeInfo(n)
		}
		add(timeline.EvNodeReady, detail)
	case !ready && (st.ready || (fresh && initial)):
		detail := nodeNotReadyDetail(cond)
		if initial {
			detail += "; " + nodeInfo(n)
		}
		add(timeline.EvNodeNotReady, detail)
	}
	st.ready = ready
	if n.Spec.Unschedulable != st.cordoned || (fresh && n.Spec.Unschedulable) {
		if n.Spec.Unschedulable {
			add(timeline.EvNodeCordoned, "spec.unschedulable set"+taintText(n))
		} else {
			add(timeline.EvNodeUncordoned, "spec.unschedulable cleared"+taintText(n))
		}
	}
	st.cordoned = n.Spec.Unschedulable
	// A control-plane upgrade replaces the kubelet in place: the node
	// stays, its version changes.
	if v := n.Status.NodeInfo.KubeletVersion; v != "" {
		if !fresh && st.version != "" && v != st.version {
			add(timeline.EvNodeVersionChanged, "kubelet "+st.version+" -> "+v)
		}
		st.version = v
	}
	o.emit(es...)
}

func nodeReadyCondition(n *corev1.Node) *corev1.NodeCondition {
	_, c := nodeutil.GetNodeCondition(&n.Status, corev1.NodeReady)
	return c
}

func nodeNotReadyDetail(c *corev1.NodeCondition) string {
	if c == nil {
		return "no Ready condition"
	}
	s := "Ready=" + string(c.Status)
	if c.Reason != "" {
		s += " (" + c.Reason
		if c.Message != "" {
			s += ": " + c.Message
		}
		s += ")"
	}
	return s + " since " + stamp(&c.LastTransitionTime)
}

// nodeInfo describes what an upgrade changes on a node (package nodeinfo),
// in a line the upgrade watcher reads back.
func nodeInfo(n *corev1.Node) string { return nodeinfo.Of(n).String() }

func taintText(n *corev1.Node) string {
	if len(n.Spec.Taints) == 0 {
		return ""
	}
	ts := make([]string, 0, len(n.Spec.Taints))
	for _, t := range n.Spec.Taints {
		ts = append(ts, t.Key+":"+string(t.Effect))
	}
	sort.Strings(ts)
	return "; taints " + strings.Join(ts, ", ")
}
