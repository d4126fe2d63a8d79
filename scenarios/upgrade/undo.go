package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	nodeutil "k8s.io/component-helpers/node/util"

	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
)

// Undo kinds of node changes. They need the target's node operations, so
// they are registered with one (RegisterUndos).
const (
	KindRemoveNode  = "remove-node"  // node
	KindRestoreNode = "restore-node" // node, pool, image
)

// undoDrainTimeout bounds the drain before an undo removes a node: a revert
// moves pods off gracefully, but never waits on a budget for long.
func undoDrainTimeout() time.Duration { return minute }

// RemoveNode undoes adding node.
func RemoveNode(node string) journal.Undo {
	return journal.Undo{Kind: KindRemoveNode, Params: map[string]string{"node": node}}
}

// RestoreNode undoes removing node (of pool, running image): if it is
// missing, it is added again from image.
func RestoreNode(node, pool, image string) journal.Undo {
	return journal.Undo{Kind: KindRestoreNode, Params: map[string]string{"node": node, "pool": pool, "image": image}}
}

// RegisterUndos registers the node undo kinds, carried out on t. With no
// target (a cluster reached by kubeconfig only) they fail saying what is
// needed, and their entries stay in the journal.
func RegisterUndos(reg *journal.Registry, t target.Target) {
	reg.Register(KindRemoveNode, func(ctx context.Context, client kubernetes.Interface, p map[string]string) error {
		if t == nil {
			return noNodeOps("remove node " + p["node"])
		}
		node := p["node"]
		if node == "" {
			return fmt.Errorf("undo params lack node")
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
			_ = drain.Cordon(ctx, client, node, true)
			_ = drain.Node(ctx, client, node, drain.Options{Timeout: undoDrainTimeout(), RetryDelay: retryDelay}, nil)
		}
		return t.RemoveNode(ctx, node)
	})
	reg.Register(KindRestoreNode, func(ctx context.Context, client kubernetes.Interface, p map[string]string) error {
		if t == nil {
			return noNodeOps("bring node " + p["node"] + " back")
		}
		node, image := p["node"], p["image"]
		if node == "" || image == "" {
			return fmt.Errorf("undo params lack node or image")
		}
		ready, err := becomesReady(ctx, client, node, rejoinWait)
		if err != nil {
			return err
		}
		if ready {
			return nil // it is there (rejoined, or never removed)
		}
		// Missing, or a container left half-joined: replaced.
		if err := t.RemoveNode(ctx, node); err != nil {
			return err
		}
		_, err = t.AddNode(ctx, target.NodeSpec{Name: node, Pool: p["pool"], Image: image})
		return err
	})
}

// rejoinWait is how long a node found registered but not Ready is given
// to finish joining (the run may have stopped in the middle of its join,
// which goes on inside the node) before it is replaced.
var rejoinWait = 2 * time.Minute

// becomesReady says whether node exists and is Ready within wait; false
// when there is no such Node.
func becomesReady(ctx context.Context, client kubernetes.Interface, node string, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if _, c := nodeutil.GetNodeCondition(&n.Status, corev1.NodeReady); c != nil && c.Status == corev1.ConditionTrue {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func noNodeOps(what string) error {
	return target.NotAvailable(what, "restoring this journal needs the cluster's node operations: run `rehearse restore --cluster NAME` for the kind cluster")
}

// labelNode sets one label with a merge patch.
func labelNode(ctx context.Context, sc *scenario.Context, node, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	_, err = sc.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}
