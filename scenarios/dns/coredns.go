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
//
// It returns only when every old pod is gone from the kube-dns endpoints,
// not when the replacements are ready. A busy client's DNS queries come
// from fresh UDP ports, and the kernel hands out ports whose conntrack
// entries still point at an old pod; those queries reach it while it serves
// its lameduck period (5 s in kubeadm's Corefile) and vanish once it has
// exited, until kube-proxy removes its endpoint and the entries with it.
// Measured on kind: every lookup of a client at 200 lookups/s hung for
// about 2.5 s after each old pod exited. Replacing CoreDNS pods is that
// disruption, so it belongs to the fault (and to its repair), not to the
// time after it. The old pods' lameduck periods overlap: one wait covers
// them all.
func replacePods(ctx context.Context, client kubernetes.Interface) error {
	pods, err := client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: podLabel})
	if err != nil {
		return err
	}
	var old []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		err := client.CoreV1().Pods(Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replacing CoreDNS pod %s: %w", p.Name, err)
		}
		old = append(old, p)
		if err := waitReady(ctx, client, p.Name); err != nil {
			return err
		}
	}
	return waitGone(ctx, client, old)
}

// waitGone waits until the pods are deleted and their addresses have left
// the kube-dns EndpointSlices, then for kube-proxy's sync (at least a
// second apart by default) to carry that to every node.
func waitGone(ctx context.Context, client kubernetes.Interface, pods []corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for _, p := range pods {
		for {
			_, err := client.CoreV1().Pods(Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) && !inEndpoints(ctx, client, p.Status.PodIP) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("old CoreDNS pod %s not gone within %s: %w", p.Name, readyTimeout, ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(proxySync):
		return nil
	}
}

// proxySync is how long an endpoint change takes to reach the nodes'
// packet filters: kube-proxy's minimum sync period (1 s) and its run.
const proxySync = 1500 * time.Millisecond

// inEndpoints says whether ip is an address of the kube-dns Service's
// EndpointSlices (an error reading them counts as yes: keep waiting).
func inEndpoints(ctx context.Context, client kubernetes.Interface, ip string) bool {
	if ip == "" {
		return false
	}
	slices, err := client.DiscoveryV1().EndpointSlices(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + dnsService})
	if err != nil {
		return true
	}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if a == ip {
					return true
				}
			}
		}
	}
	return false
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
