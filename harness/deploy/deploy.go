// Package deploy puts the application under test into a cluster and
// returns what a rehearsal watches: the rehearsal app from its typed spec,
// or a user's own app from manifests (YAML files or a kustomize directory)
// reached through a NodePort entry Service the harness adds.
package deploy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/apply"
	"github.com/kube-rehearse/rehearse/harness/observe"
)

// Timeout bounds each wait of this package.
const Timeout = 3 * time.Minute

// Deployed is what a rehearsal needs to know of a deployed app.
type Deployed struct {
	Target      observe.Target // namespace, pod selector, Service
	Deployment  string         // the Deployment rehearsals restart or watch
	ServicePort int32          // the Service port clients use
	NodePort    int32          // the node port that reaches it from outside the cluster
}

// App deploys the rehearsal app in spec.Namespace (created if missing) and
// waits until its Deployment is available.
func App(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, spec appspec.Spec) (Deployed, error) {
	manifests, err := spec.Manifests()
	if err != nil {
		return Deployed{}, err
	}
	if err := Namespace(ctx, client, spec.Namespace); err != nil {
		return Deployed{}, err
	}
	ap, err := apply.New(cfg)
	if err != nil {
		return Deployed{}, err
	}
	// The dependency serves before the app is called (its first requests
	// would fail otherwise, and the baseline with them): both start at
	// once, and both must be available before this returns (the app's
	// readiness does not depend on it).
	var dep *appspec.Spec
	if d := spec.Dependency; d != nil {
		dd := *d
		dd.Namespace = spec.Namespace
		dm, err := dd.Manifests()
		if err != nil {
			return Deployed{}, err
		}
		if err := ap.ApplyTyped(ctx, dd.Namespace, dm.Objects()...); err != nil {
			return Deployed{}, err
		}
		dep = &dd
	}
	if err := ap.ApplyTyped(ctx, spec.Namespace, manifests.Objects()...); err != nil {
		return Deployed{}, err
	}
	if dep != nil {
		if err := WaitAvailable(ctx, client, dep.Namespace, dep.Name); err != nil {
			return Deployed{}, fmt.Errorf("the app's dependency: %w", err)
		}
	}
	if err := WaitAvailable(ctx, client, spec.Namespace, spec.Name); err != nil {
		return Deployed{}, err
	}
	d := Deployed{Target: observe.Target{Namespace: spec.Namespace, PodSelector: spec.PodSelector(), Service: spec.Name},
		Deployment: spec.Name, ServicePort: manifests.Service.Spec.Ports[0].Port}
	d.NodePort, err = nodePort(ctx, client, spec.Namespace, spec.Name, d.ServicePort)
	return d, err
}

// UserApp is an application the user brings.
type UserApp struct {
	Manifests  string // a YAML file, a directory of them, or a kustomize directory
	Namespace  string // where namespaced objects without a namespace go
	Deployment string // the Deployment rehearsals restart or watch
	Service    string // the Service clients use
	Port       int32  // the Service port clients use
	NodePort   int32  // the node port of the harness's entry Service (0: Kubernetes picks one)
}

// User applies the user's manifests, adds a NodePort entry Service in front
// of their Service, and waits until their Deployment is available.
func User(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, u UserApp) (Deployed, error) {
	objs, err := apply.Load(u.Manifests)
	if err != nil {
		return Deployed{}, err
	}
	if err := Namespace(ctx, client, u.Namespace); err != nil {
		return Deployed{}, err
	}
	ap, err := apply.New(cfg)
	if err != nil {
		return Deployed{}, err
	}
	if err := ap.Apply(ctx, u.Namespace, objs...); err != nil {
		return Deployed{}, err
	}
	entry, err := apply.NodePortEntry(ctx, client, u.Namespace, u.Service, u.Port, u.NodePort)
	if err != nil {
		return Deployed{}, err
	}
	if err := WaitAvailable(ctx, client, u.Namespace, u.Deployment); err != nil {
		return Deployed{}, err
	}
	svc, err := client.CoreV1().Services(u.Namespace).Get(ctx, u.Service, metav1.GetOptions{})
	if err != nil {
		return Deployed{}, err
	}
	d := Deployed{Target: observe.Target{Namespace: u.Namespace, PodSelector: labels.SelectorFromSet(svc.Spec.Selector).String(), Service: u.Service},
		Deployment: u.Deployment, ServicePort: u.Port}
	d.NodePort, err = nodePort(ctx, client, u.Namespace, entry, u.Port)
	return d, err
}

// nodePort reads the node port Kubernetes gave a Service's port.
func nodePort(ctx context.Context, client kubernetes.Interface, namespace, service string, port int32) (int32, error) {
	svc, err := client.CoreV1().Services(namespace).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == port && p.NodePort != 0 {
			return p.NodePort, nil
		}
	}
	return 0, fmt.Errorf("Service %s/%s has no node port for port %d: make it type NodePort", namespace, service, port)
}

// Namespace creates a namespace unless it exists.
func Namespace(ctx context.Context, client kubernetes.Interface, name string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}

// WaitAvailable waits until every replica of the Deployment is updated and
// available.
func WaitAvailable(ctx context.Context, client kubernetes.Interface, namespace, name string) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, Timeout, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		last = fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, want)
		if why := podTrouble(ctx, client, namespace, d.Spec.Selector); why != "" {
			last += " (" + why + ")"
		}
		return d.Status.AvailableReplicas == want && d.Status.UpdatedReplicas == want, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s not available within %s: %s", namespace, name, Timeout, last)
	}
	return nil
}

// podTrouble says why a Deployment's pods are not starting, as kubectl
// describe would show it first: a container waiting for a reason (an image
// that cannot be pulled, a crash loop) or a pod the scheduler cannot place.
func podTrouble(ctx context.Context, client kubernetes.Interface, namespace string, sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || sel == nil {
		return ""
	}
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
				why := fmt.Sprintf("pod %s: container %s %s", p.Name, c.Name, w.Reason)
				if strings.Contains(w.Reason, "Image") {
					why += fmt.Sprintf(": the node cannot get image %s; a cluster without our image loader pulls it from a registry", c.Image)
				} else if w.Message != "" {
					why += ": " + w.Message
				}
				return why
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
				return fmt.Sprintf("pod %s not scheduled: %s", p.Name, c.Message)
			}
		}
	}
	return ""
}

// WaitServing waits until url answers 200, so a rehearsal's baseline
// measures the app, not kube-proxy programming a new NodePort.
func WaitServing(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%s does not answer 200 (%s)", url, strings.TrimSpace(last))
	}
	return nil
}
