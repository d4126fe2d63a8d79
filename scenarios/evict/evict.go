// Package evict rehearses the app's pods being evicted one at a time, as
// the cluster autoscaler's scale-down, the descheduler or a careful
// operator does it: each pod through the Eviction API (a
// PodDisruptionBudget may refuse, and is asked again), and the next only
// when the previous one is gone and the Deployment has all its replicas
// Ready again. Nothing is changed that needs undoing: the evicted pods are
// replaced by their Deployment.
package evict

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/scenario"
)

// Kind is the scenario kind.
const Kind = "pod-eviction"

// DefaultTimeout bounds each pod's eviction and its replacement.
const DefaultTimeout = 5 * time.Minute

// Checks judge evictions: what clients saw, and how each pod shut down.
var Checks = []string{"load", "baseline", "observation", "steps",
	"error-rate", "longest-outage", "ready-endpoints", "readiness", "graceful-shutdown"}

// Options describe the evictions.
type Options struct {
	Selector string // the app's pods
	Replicas int    // how many Ready pods the app has when whole
	// Pods is how many pods to evict (default Replicas: each of the pods
	// running when the scenario starts, oldest first).
	Pods    int
	Timeout time.Duration // per pod (DefaultTimeout when zero)
}

// Scenario evicts the app's pods one at a time.
func Scenario(o Options) (scenario.Scenario, error) {
	if o.Selector == "" || o.Replicas <= 0 {
		return scenario.Scenario{}, fmt.Errorf("pod-eviction needs the app's pod selector and replicas")
	}
	if o.Pods <= 0 {
		o.Pods = o.Replicas
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return scenario.Scenario{
		Kind: Kind,
		Settings: []scenario.Setting{
			{Name: "pods", Value: fmt.Sprint(o.Pods)},
			{Name: "timeout", Value: o.Timeout.String()},
		},
		Steps: []scenario.Step{scenario.Do(fmt.Sprintf("evict %d of the app's pods one at a time, each once the previous one is replaced", o.Pods),
			func(ctx context.Context, sc *scenario.Context) error { return evictInTurn(ctx, sc, o) })},
		Checks: Checks,
	}, nil
}

func evictInTurn(ctx context.Context, sc *scenario.Context, o Options) error {
	pods, err := running(ctx, sc.Client, sc.Namespace, o.Selector)
	if err != nil {
		return err
	}
	if len(pods) < o.Pods {
		return fmt.Errorf("the app runs %d pods, fewer than the %d to evict", len(pods), o.Pods)
	}
	for i := range o.Pods {
		p := pods[i]
		r := drain.Pods(ctx, sc.Client, p.Spec.NodeName, []corev1.Pod{p}, drain.Options{Timeout: o.Timeout}, sc.Timeline)
		if r.Err != nil {
			return fmt.Errorf("evicting pod %s: %w", p.Name, r.Err)
		}
		sc.Statusf("pod %s evicted (node %s) in %s", p.Name, p.Spec.NodeName, r.Took().Round(time.Millisecond))
		if err := waitReady(ctx, sc.Client, sc.Namespace, o.Selector, o.Replicas, o.Timeout); err != nil {
			return fmt.Errorf("after evicting pod %s: %w", p.Name, err)
		}
	}
	return nil
}

// running lists the selected pods that are not being deleted, oldest first.
func running(ctx context.Context, client kubernetes.Interface, ns, selector string) ([]corev1.Pod, error) {
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Spec.NodeName != "" {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].CreationTimestamp, out[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// waitReady waits until replicas of the selected pods are Ready and none is
// terminating.
func waitReady(ctx context.Context, client kubernetes.Interface, ns, selector string, replicas int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		ready, terminating := 0, 0
		if err == nil {
			for _, p := range list.Items {
				if p.DeletionTimestamp != nil {
					terminating++
					continue
				}
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready >= replicas && terminating == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d replicas Ready (%d terminating) after %s", ready, replicas, terminating, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
