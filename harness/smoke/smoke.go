// Package smoke checks that a cluster can carry a rehearsal: DNS, pod
// traffic between nodes through Services, and NodePorts reachable from the
// host. Each check deploys small workloads (fixtures/netcheck) pinned to
// named nodes, so a failure names the path that is broken.
package smoke

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Checker runs the checks in one namespace with one workload image.
type Checker struct {
	Client    kubernetes.Interface
	Namespace string
	Image     string // fixtures/netcheck image, already loaded on the nodes
	Timeout   time.Duration
}

func (c Checker) timeout() time.Duration {
	if c.Timeout == 0 {
		return 2 * time.Minute
	}
	return c.Timeout
}

// Prepare creates the namespace (idempotent).
func (c Checker) Prepare(ctx context.Context) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// Cleanup deletes the namespace and everything in it. Services go first,
// synchronously: that frees their node ports at once, for the rehearsal that
// follows, while the rest of the namespace terminates in the background.
func (c Checker) Cleanup(ctx context.Context) error {
	svcs, err := c.Client.CoreV1().Services(c.Namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, s := range svcs.Items {
			_ = c.Client.CoreV1().Services(c.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
		}
	}
	err = c.Client.CoreV1().Namespaces().Delete(ctx, c.Namespace, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Backend runs a netcheck server pinned to node, behind a Service of the
// given type whose only endpoint is that pod. nodePort is used for NodePort
// Services (0 otherwise). It returns the Service's cluster DNS name and waits
// until the pod is Ready.
func (c Checker) Backend(ctx context.Context, name, node string, svcType corev1.ServiceType, nodePort int32) (string, error) {
	labels := map[string]string{"app": name}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "serve", Image: c.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args:  []string{"serve", ":8080"},
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace},
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080), NodePort: nodePort}},
		},
	}
	// An existing backend (from an earlier check) is reused.
	if _, err := c.Client.CoreV1().Pods(c.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating backend pod %s on %s: %w", name, node, err)
	}
	if _, err := c.Client.CoreV1().Services(c.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating service %s: %w", name, err)
	}
	err := wait.PollUntilContextTimeout(ctx, time.Second, c.timeout(), true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("backend pod %s on node %s did not become ready: %s", name, node, c.describePod(ctx, name))
	}
	// The Service only routes once the pod is a ready endpoint in its
	// EndpointSlice; kube-proxies then program it within about a second.
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, c.timeout(), true, func(ctx context.Context) (bool, error) {
		slices, err := c.Client.DiscoveryV1().EndpointSlices(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if err != nil {
			return false, nil
		}
		for _, sl := range slices.Items {
			for _, ep := range sl.Endpoints {
				if ep.TargetRef != nil && ep.TargetRef.Name == name && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("Service %s never listed its backend pod as a ready endpoint", name)
	}
	return fmt.Sprintf("%s.%s.svc.cluster.local", name, c.Namespace), nil
}

// Run runs `netcheck args...` in a pod pinned to node and returns what it
// printed; an error carries that output when the command failed.
func (c Checker) Run(ctx context.Context, name, node string, args ...string) (string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace},
		Spec: corev1.PodSpec{
			NodeName:      node,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "check", Image: c.Image, ImagePullPolicy: corev1.PullIfNotPresent, Args: args,
			}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		},
	}
	if _, err := c.Client.CoreV1().Pods(c.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating check pod %s on %s: %w", name, node, err)
	}
	var phase corev1.PodPhase
	err := wait.PollUntilContextTimeout(ctx, time.Second, c.timeout(), true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(c.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	logs := c.logs(ctx, name)
	if err != nil {
		return logs, fmt.Errorf("check pod %s on node %s did not finish: %s", name, node, c.describePod(ctx, name))
	}
	if phase == corev1.PodFailed {
		return logs, fmt.Errorf("`netcheck %s` on node %s failed: %s", strings.Join(args, " "), node, strings.TrimSpace(logs))
	}
	return logs, nil
}

func (c Checker) logs(ctx context.Context, name string) string {
	rc, err := c.Client.CoreV1().Pods(c.Namespace).GetLogs(name, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, io.LimitReader(rc, 64<<10))
	return buf.String()
}

// describePod summarises why a pod is not where it should be, from its
// status and its events.
func (c Checker) describePod(ctx context.Context, name string) string {
	p, err := c.Client.CoreV1().Pods(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	parts := []string{"phase " + string(p.Status.Phase)}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Waiting != nil {
			parts = append(parts, fmt.Sprintf("container %s waiting: %s %s", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message))
		}
	}
	events, err := c.Client.CoreV1().Events(c.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err == nil {
		for _, e := range events.Items {
			if e.Type != corev1.EventTypeNormal {
				parts = append(parts, e.Reason+": "+e.Message)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// HostGet fetches url from the host (a NodePort mapped to 127.0.0.1),
// retrying until timeout: kube-proxy programs a new NodePort within seconds.
func HostGet(ctx context.Context, url string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body), nil
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		last = err
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return "", fmt.Errorf("GET %s from the host: %v", url, last)
}
