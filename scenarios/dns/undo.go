package dns

import (
	"context"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/target"
)

// Undo kinds of the DNS faults.
const (
	KindScaleBack       = "scale-back"       // namespace, deployment, replicas
	KindRestoreCorefile = "restore-corefile" // corefile
	KindRemoveDrop      = "remove-dns-drop"  // node
)

// ScaleBack undoes scaling a Deployment down from replicas.
func ScaleBack(ns, deployment string, replicas int32) journal.Undo {
	return journal.Undo{Kind: KindScaleBack, Params: map[string]string{
		"namespace": ns, "deployment": deployment, "replicas": strconv.Itoa(int(replicas))}}
}

// RestoreCorefile undoes changing CoreDNS's Corefile, which was corefile.
func RestoreCorefile(corefile string) journal.Undo {
	return journal.Undo{Kind: KindRestoreCorefile, Params: map[string]string{"corefile": corefile}}
}

// RemoveDrop undoes dropping DNS packets on node.
func RemoveDrop(node string) journal.Undo {
	return journal.Undo{Kind: KindRemoveDrop, Params: map[string]string{"node": node}}
}

// RegisterUndos registers the DNS undo kinds; the packet filter's needs the
// target's node access (t), the others only the API.
func RegisterUndos(reg *journal.Registry, t target.Target) {
	reg.Register(KindScaleBack, undoScaleBack)
	reg.Register(KindRestoreCorefile, undoRestoreCorefile)
	reg.Register(KindRemoveDrop, func(ctx context.Context, _ kubernetes.Interface, p map[string]string) error {
		if p["node"] == "" {
			return fmt.Errorf("undo params lack node")
		}
		if t == nil {
			return target.NotAvailable("removing the DNS drop rules on node "+p["node"], "no node access: run `rehearse restore` where the cluster's nodes can be reached")
		}
		return removeDrops(ctx, t, p["node"])
	})
}

// undoScaleBack scales the Deployment back and waits until CoreDNS serves.
func undoScaleBack(ctx context.Context, client kubernetes.Interface, p map[string]string) error {
	n, err := strconv.Atoi(p["replicas"])
	if err != nil || p["namespace"] == "" || p["deployment"] == "" {
		return fmt.Errorf("undo params lack namespace, deployment or replicas: %v", p)
	}
	if err := scale(ctx, client, p["namespace"], p["deployment"], int32(n)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // gone: nothing to scale back
		}
		return err
	}
	if p["namespace"] == Namespace && p["deployment"] == Deployment {
		return waitReady(ctx, client, "")
	}
	return nil
}

// undoRestoreCorefile writes the Corefile back, byte for byte, and replaces
// the CoreDNS pods so they serve it at once; a Corefile already as it was
// needs nothing.
func undoRestoreCorefile(ctx context.Context, client kubernetes.Interface, p map[string]string) error {
	orig, ok := p["corefile"]
	if !ok {
		return fmt.Errorf("undo params lack corefile")
	}
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, ConfigMap, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cm.Data[CorefileKey] == orig {
		return nil
	}
	if err := writeCorefile(ctx, client, orig); err != nil {
		return err
	}
	return replacePods(ctx, client)
}
