// Package restart is the simplest disruption a rehearsal performs: a
// rolling restart of a Deployment, as `kubectl rollout restart` does it.
// Every pod is replaced one after another under the Deployment's rollout
// strategy, which exercises graceful shutdown, endpoint removal and
// readiness exactly like the pod recreation of a node upgrade does.
//
// Nothing is journaled: a restart leaves nothing to undo.
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

	"github.com/kube-rehearse/rehearse/harness/scenario"
)

// Kind is the scenario kind.
const Kind = "rolling-restart"

// annotation is the pod-template annotation kubectl also uses: changing it
// makes the Deployment roll out new pods without any other change.
const annotation = "kubectl.kubernetes.io/restartedAt"

// DefaultTimeout bounds the rollout, old pods gone included.
const DefaultTimeout = 5 * time.Minute

// Scenario restarts every pod of a Deployment and waits until each new pod
// is available and each old one has exited, so the fault phase covers every
// termination.
func Scenario(namespace, deployment string, timeout time.Duration) scenario.Scenario {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	r := &rollout{namespace: namespace, deployment: deployment, timeout: timeout}
	return scenario.Scenario{
		Kind: Kind,
		Settings: []scenario.Setting{
			{Name: "deployment", Value: namespace + "/" + deployment},
			{Name: "timeout", Value: timeout.String()},
		},
		Steps: []scenario.Step{
			scenario.Do("restart deployment "+namespace+"/"+deployment, r.restart),
			scenario.Do("wait until every pod is replaced", r.wait),
		},
	}
}

type rollout struct {
	namespace, deployment string
	timeout               time.Duration
	oldPods               map[string]bool
}

func (r *rollout) restart(ctx context.Context, sc *scenario.Context) error {
	deployments := sc.Client.AppsV1().Deployments(r.namespace)
	before, err := deployments.Get(ctx, r.deployment, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if r.oldPods, err = podNames(ctx, sc.Client, before); err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, annotation, time.Now().Format(time.RFC3339Nano))
	_, err = deployments.Patch(ctx, r.deployment, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

func (r *rollout) wait(ctx context.Context, sc *scenario.Context) error {
	deployments := sc.Client.AppsV1().Deployments(r.namespace)
	var last string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, r.timeout, false, func(ctx context.Context) (bool, error) {
		d, err := deployments.Get(ctx, r.deployment, metav1.GetOptions{})
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
		current, err := podNames(ctx, sc.Client, d)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for name := range r.oldPods {
			if current[name] {
				last = "old pod " + name + " has not exited yet"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the rollout did not finish within %s: %s", r.timeout, last)
	}
	return nil
}

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
