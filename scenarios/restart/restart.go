// Package restart is the simplest disruption a rehearsal performs: a
// rolling restart of a Deployment, as `kubectl rollout restart` does it.
// Every pod is replaced one after another under the Deployment's rollout
// strategy, which exercises graceful shutdown, endpoint removal and
// readiness exactly like the pod recreation of a node upgrade does.
package restart

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// annotation is the pod-template annotation kubectl also uses: changing it
// makes the Deployment roll out new pods without any other change.
const annotation = "kubectl.kubernetes.io/restartedAt"

// RollingRestart restarts every pod of a Deployment.
type RollingRestart struct {
	Namespace  string
	Deployment string
	// Timeout bounds the whole rollout, old pods gone included (default 5m).
	Timeout time.Duration
}

// Name describes the scenario for timelines and reports.
func (r RollingRestart) Name() string {
	return fmt.Sprintf("rolling restart of deployment %s/%s", r.Namespace, r.Deployment)
}

// Apply triggers the rollout and waits until every new pod is available and
// every old pod has exited, so the rehearsal's fault phase covers all
// terminations.
func (r RollingRestart) Apply(ctx context.Context, client kubernetes.Interface) error {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	deployments := client.AppsV1().Deployments(r.Namespace)
	before, err := deployments.Get(ctx, r.Deployment, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	oldPods, err := podNames(ctx, client, before)
	if err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, annotation, time.Now().Format(time.RFC3339Nano))
	if _, err := deployments.Patch(ctx, r.Deployment, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "rehearse"}); err != nil {
		return fmt.Errorf("%s: %w", r.Name(), err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, false, func(ctx context.Context) (bool, error) {
		d, err := deployments.Get(ctx, r.Deployment, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas < want || st.AvailableReplicas < want || st.Replicas > want {
			last = fmt.Sprintf("%d of %d pods updated, %d available, %d in total", st.UpdatedReplicas, want, st.AvailableReplicas, st.Replicas)
			return false, nil
		}
		current, err := podNames(ctx, client, d)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for name := range oldPods {
			if current[name] {
				last = "old pod " + name + " has not exited yet"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s did not finish within %s: %s", r.Name(), timeout, last)
	}
	return nil
}

// Revert does nothing: a restart leaves nothing to undo.
func (r RollingRestart) Revert(context.Context, kubernetes.Interface) error { return nil }

func podNames(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment) (map[string]bool, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := client.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			names[p.Name] = true
		}
	}
	return names, nil
}
