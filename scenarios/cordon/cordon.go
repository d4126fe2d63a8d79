// Package cordon takes a node out of scheduling for a while: it cordons the
// node, adds a NoSchedule taint, holds, and the rehearsal reverts both. It
// moves no pod (that is a drain's job): it is the smallest journaled fault,
// used to prove that every change is undone whatever happens to the
// harness (failure, Ctrl-C, SIGKILL then `rehearse restore`), and to see
// what an app does when a node is marked unschedulable.
package cordon

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
)

// Kind is the scenario kind.
const Kind = "node-cordon"

// Taint is the taint added to the node.
var Taint = corev1.Taint{Key: "rehearse.io/cordoned", Value: "true", Effect: corev1.TaintEffectNoSchedule}

// Scenario cordons and taints node, then holds for hold.
func Scenario(node string, hold time.Duration) scenario.Scenario {
	return scenario.Scenario{
		Kind: Kind,
		Settings: []scenario.Setting{
			{Name: "node", Value: node},
			{Name: "hold", Value: hold.String()},
		},
		Steps: []scenario.Step{
			scenario.Do("cordon node "+node, func(ctx context.Context, sc *scenario.Context) error {
				n, err := sc.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if n.Spec.Unschedulable {
					sc.Statusf("node %s is already cordoned: left as it is", node)
					return nil
				}
				return sc.Change(ctx, "cordon node "+node, journal.Uncordon(node), func(ctx context.Context) error {
					_, err := sc.Client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType,
						[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{FieldManager: "rehearse"})
					return err
				})
			}),
			scenario.Do("taint node "+node, func(ctx context.Context, sc *scenario.Context) error {
				what := fmt.Sprintf("taint node %s with %s=%s:%s", node, Taint.Key, Taint.Value, Taint.Effect)
				return sc.Change(ctx, what, journal.RemoveTaint(node, Taint), func(ctx context.Context) error {
					return addTaint(ctx, sc, node)
				})
			}),
			scenario.Do("hold for "+hold.String(), func(ctx context.Context, sc *scenario.Context) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(hold):
					return nil
				}
			}),
		},
		Checks: []string{"load", "baseline", "observation", "steps", "error-rate", "longest-outage", "ready-endpoints"},
	}
}

// addTaint adds Taint unless the node has it, with a merge patch guarded by
// the node's resourceVersion (taints are a list a merge patch replaces
// whole, so another writer's taint must not be lost). The kubelet and the
// node controllers write the Node too: a conflict is read again and retried.
func addTaint(ctx context.Context, sc *scenario.Context, node string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error { return addTaintOnce(ctx, sc, node) })
}

func addTaintOnce(ctx context.Context, sc *scenario.Context, node string) error {
	n, err := sc.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, t := range n.Spec.Taints {
		if t.Key == Taint.Key && t.Effect == Taint.Effect {
			return nil
		}
	}
	taints := append(append([]corev1.Taint(nil), n.Spec.Taints...), Taint)
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": n.ResourceVersion},
		"spec":     map[string]any{"taints": taints},
	})
	if err != nil {
		return err
	}
	_, err = sc.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}
