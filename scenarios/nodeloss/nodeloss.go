// Package nodeloss rehearses losing a node without a drain: a host failure,
// or a spot instance taken back by its cloud. The node is powered off
// (kind: its container killed), so its pods die with it and nothing tells
// the API server; Kubernetes notices only when the node's heartbeats stop
// for the node controller's grace period, then takes the pods out of the
// Service's endpoints, and replaces them only when their toleration of the
// node.kubernetes.io/unreachable taint runs out. A spot-style notice (a
// drain with a short deadline before the power-off) can come first.
//
// The revert brings the node back as a new machine from the same image
// under the same name, as a cloud's scale set would; the app's pods stay
// where the scheduler put them meanwhile.
package nodeloss

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	nodeutil "k8s.io/component-helpers/node/util"

	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Kind is the scenario kind.
const Kind = "node-loss"

// DefaultTimeout bounds the wait for the app to serve without the lost
// node: Kubernetes' defaults (about 50 s until the node is NotReady, then
// 300 s of toleration before its pods are replaced) fit in it.
const DefaultTimeout = 8 * time.Minute

// TolerationNote names the timeline notes that say how long a pod of the
// lost node tolerates node.kubernetes.io/unreachable (Event.Value; the pod
// in Event.Pod): the verdict's fix names it.
const TolerationNote = "unreachable-toleration"

// Checks judge a node loss. Requests lost at the node's pods before
// Kubernetes noticed are the node-loss check's to account for (no pod
// setting can save them), so the plain error rate is not among them; a
// notice adds the drain's checks.
var Checks = []string{"load", "baseline", "observation", "steps", "node-loss",
	"longest-outage", "ready-endpoints", "readiness"}

// NoticeChecks judge a node loss announced by a notice (a drain first).
var NoticeChecks = []string{"load", "baseline", "observation", "steps", "node-loss", "drain",
	"longest-outage", "ready-endpoints", "readiness", "graceful-shutdown"}

// Options describe a node loss.
type Options struct {
	Node  string // the node to lose
	Pool  string // its pool, and
	Image string // its node image: the revert brings it back from them
	// Notice, when positive, is a spot-style eviction notice: the node is
	// cordoned and drained, and powered off when the notice ends, drained
	// or not.
	Notice time.Duration
	// Timeout bounds the wait for the app to serve its replicas from other
	// nodes (DefaultTimeout when zero).
	Timeout time.Duration
	// Selector selects the app's pods; Replicas is how many should serve.
	Selector string
	Replicas int
}

// Scenario loses a node.
func Scenario(o Options) (scenario.Scenario, error) {
	if o.Node == "" || o.Image == "" {
		return scenario.Scenario{}, fmt.Errorf("node-loss needs the node and the image it is brought back from")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	s := scenario.Scenario{
		Kind: Kind,
		Settings: []scenario.Setting{
			{Name: "node", Value: o.Node},
			{Name: "notice", Value: o.Notice.String()},
			{Name: "timeout", Value: o.Timeout.String()},
		},
		Checks: Checks,
	}
	if o.Notice > 0 {
		s.Checks = NoticeChecks
		s.Steps = append(s.Steps, notice(o))
	}
	s.Steps = append(s.Steps, powerOff(o), waitServing(o))
	return s, nil
}

// notice cordons and drains the node within the notice, then waits out the
// rest of it: the machine goes when the notice ends, not when the drain does.
func notice(o Options) scenario.Step {
	return scenario.Do(fmt.Sprintf("eviction notice: cordon and drain node %s, powered off in %s", o.Node, o.Notice), func(ctx context.Context, sc *scenario.Context) error {
		end := time.Now().Add(o.Notice)
		if err := sc.Change(ctx, "cordon node "+o.Node, journal.Uncordon(o.Node), func(ctx context.Context) error {
			return drain.Cordon(ctx, sc.Client, o.Node, true)
		}); err != nil {
			return err
		}
		r := drain.Node(ctx, sc.Client, o.Node, drain.Options{Timeout: time.Until(end)}, sc.Timeline)
		if r.Err != nil {
			// Not the step's failure: a notice is not extended for pods
			// that are slow to leave. The drain check judges it.
			sc.Statusf("the drain did not finish within the notice: %v", r.Err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(end)):
			return nil
		}
	})
}

// powerOff stops the node abruptly, journaled first: the undo brings it
// back from its image.
func powerOff(o Options) scenario.Step {
	return scenario.Do("power off node "+o.Node+" (no drain, nothing said to the API server)", func(ctx context.Context, sc *scenario.Context) error {
		if sc.Target == nil {
			return fmt.Errorf("stopping a node needs the cluster's node operations")
		}
		noteTolerations(ctx, sc, o)
		return sc.Change(ctx, "power off node "+o.Node, ReplaceNode(o.Node, o.Pool, o.Image), func(ctx context.Context) error {
			// Stamped before the call: the machine dies somewhere inside
			// it, and a request failing then must not fall before the loss.
			var at time.Duration
			if sc.Timeline != nil {
				at = sc.Timeline.Now()
			}
			if err := sc.Target.StopNode(ctx, o.Node); err != nil {
				return err
			}
			if sc.Timeline != nil {
				sc.Timeline.AddEvent(timeline.Event{Offset: at, Kind: timeline.EvNodeStopped, Node: o.Node, Name: sc.Scenario})
			}
			return nil
		})
	})
}

// noteTolerations puts on the timeline how long each of the app's pods on
// the node tolerates an unreachable node: the verdict's fix names it.
func noteTolerations(ctx context.Context, sc *scenario.Context, o Options) {
	if sc.Timeline == nil || o.Selector == "" {
		return
	}
	pods, err := sc.Client.CoreV1().Pods(sc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: o.Selector})
	if err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != o.Node || p.DeletionTimestamp != nil {
			continue
		}
		sc.Timeline.AddEvent(timeline.Event{Offset: sc.Timeline.Now(), Kind: timeline.EvNote, Name: TolerationNote,
			Pod: p.Name, UID: string(p.UID), Node: o.Node, Value: UnreachableToleration(p),
			Detail: fmt.Sprintf("pod %s tolerates an unreachable node for %s", p.Name, UnreachableToleration(p))})
	}
}

// UnreachableToleration is how long the pod stays bound to an unreachable
// node before it is evicted: its toleration of
// node.kubernetes.io/unreachable:NoExecute (Kubernetes adds 300 s to every
// pod that sets none); -1 when it tolerates it for ever.
func UnreachableToleration(p *corev1.Pod) time.Duration {
	for _, t := range p.Spec.Tolerations {
		if t.Effect != "" && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if t.Key != corev1.TaintNodeUnreachable && !(t.Key == "" && t.Operator == corev1.TolerationOpExists) {
			continue
		}
		if t.TolerationSeconds == nil {
			return -1
		}
		return time.Duration(*t.TolerationSeconds) * time.Second
	}
	return DefaultToleration
}

// DefaultToleration is what Kubernetes' DefaultTolerationSeconds admission
// gives a pod that tolerates neither not-ready nor unreachable nodes.
const DefaultToleration = 300 * time.Second

// waitServing waits until the app has its replicas Ready on other nodes
// again (the lost pods replaced), at most the timeout. Not recovering in
// time is the verdict's to judge, not a failed step.
func waitServing(o Options) scenario.Step {
	return scenario.Do(fmt.Sprintf("wait until the app serves %d replicas without node %s (at most %s)", o.Replicas, o.Node, o.Timeout), func(ctx context.Context, sc *scenario.Context) error {
		if o.Selector == "" || o.Replicas <= 0 {
			return nil
		}
		deadline := time.Now().Add(o.Timeout)
		for {
			n, err := readyElsewhere(ctx, sc.Client, sc.Namespace, o.Selector, o.Node)
			if err == nil && n >= o.Replicas {
				sc.Statusf("%d replicas Ready on other nodes", n)
				return nil
			}
			if time.Now().After(deadline) {
				msg := fmt.Sprintf("after %s only %d of %d replicas were Ready on other nodes", o.Timeout, n, o.Replicas)
				if sc.Timeline != nil {
					sc.Timeline.Note(msg)
				}
				sc.Statusf("%s", msg)
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	})
}

// readyElsewhere counts the selected pods Ready on nodes other than node.
func readyElsewhere(ctx context.Context, client kubernetes.Interface, ns, selector, node string) (int, error) {
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.Spec.NodeName == node || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}

// KindReplaceNode is the undo kind of a power-off: node, pool, image.
const KindReplaceNode = "replace-node"

// ReplaceNode undoes powering node off: unless it is alive and Ready, it is
// removed (Node and machine) and a new one joins under its name from image.
func ReplaceNode(node, pool, image string) journal.Undo {
	return journal.Undo{Kind: KindReplaceNode, Params: map[string]string{"node": node, "pool": pool, "image": image}}
}

// RegisterUndos registers the replace-node undo, carried out on t. With no
// target it fails saying what is needed, and the entry stays.
func RegisterUndos(reg *journal.Registry, t target.Target) {
	reg.Register(KindReplaceNode, func(ctx context.Context, client kubernetes.Interface, p map[string]string) error {
		node, image := p["node"], p["image"]
		if node == "" || image == "" {
			return fmt.Errorf("undo params lack node or image")
		}
		if t == nil {
			return target.NotAvailable("bring node "+node+" back", "restoring this journal needs the cluster's node operations: run `rehearse restore --cluster NAME` for the kind cluster")
		}
		if alive(ctx, client, t, node) {
			return nil // never powered off (the run stopped first), or already back
		}
		if err := t.RemoveNode(ctx, node); err != nil {
			return err
		}
		_, err := t.AddNode(ctx, target.NodeSpec{Name: node, Pool: p["pool"], Image: image})
		return err
	})
}

// alive says whether the node answers a command and its Node is Ready: a
// powered-off node still reads Ready until the node controller notices.
func alive(ctx context.Context, client kubernetes.Interface, t target.Target, node string) bool {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false
	}
	if _, c := nodeutil.GetNodeCondition(&n.Status, corev1.NodeReady); c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	probe, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = t.Exec(probe, node, nil, "true")
	return err == nil
}
