package dns

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
)

// readyTimeout bounds each wait for CoreDNS to serve again.
const readyTimeout = 2 * time.Minute

// scale sets a Deployment's replicas.
func scale(ctx context.Context, client kubernetes.Interface, ns, name string, replicas int32) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	_, err := client.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

// writeCorefile replaces the Corefile, leaving the ConfigMap's other keys.
func writeCorefile(ctx context.Context, client kubernetes.Interface, corefile string) error {
	patch, err := json.Marshal(map[string]any{"data": map[string]string{CorefileKey: corefile}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().ConfigMaps(Namespace).Patch(ctx, ConfigMap, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

// replacePods deletes the CoreDNS pods one at a time, each after its
// replacement is ready, so name resolution never stops for the
// replacement itself and every new pod reads the current Corefile (CoreDNS
// would otherwise reload it only at its next reload period, 30 to 45 s).
// Deleting pods changes no object a user owns: the Deployment's template
// stays as it was (a rollout restart would leave an annotation behind).
func replacePods(ctx context.Context, client kubernetes.Interface) error {
	pods, err := client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: podLabel})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		err := client.CoreV1().Pods(Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replacing CoreDNS pod %s: %w", p.Name, err)
		}
		if err := waitReady(ctx, client, p.Name); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until the CoreDNS Deployment has as many ready pods as
// it wants, none of them named gone (a pod just deleted).
func waitReady(ctx context.Context, client kubernetes.Interface, gone string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		d, err := client.AppsV1().Deployments(Namespace).Get(ctx, Deployment, metav1.GetOptions{})
		if err == nil {
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			pods, lerr := client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: podLabel})
			if lerr == nil && int32(readyPodsExcept(pods.Items, gone)) >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CoreDNS not ready again within %s: %w", readyTimeout, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func readyPodsExcept(pods []corev1.Pod, gone string) int {
	var keep []corev1.Pod
	for _, p := range pods {
		if p.Name != gone {
			keep = append(keep, p)
		}
	}
	return readyPods(keep)
}
