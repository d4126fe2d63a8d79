package apply

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// NodePortEntry makes a user's Service reachable from the host without
// changing it: a Service of the harness's own, of type NodePort, with the
// same selector and target port as the user's Service port. It returns the
// entry Service's name.
func NodePortEntry(ctx context.Context, client kubernetes.Interface, namespace, service string, port, nodePort int32) (string, error) {
	svc, err := client.CoreV1().Services(namespace).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("the target Service %s/%s: %w", namespace, service, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return "", fmt.Errorf("Service %s/%s has no selector: the harness cannot send traffic to its pods; give a Service that selects the app's pods", namespace, service)
	}
	var target *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			target = &svc.Spec.Ports[i]
		}
	}
	if target == nil {
		return "", fmt.Errorf("Service %s/%s has no port %d: give one of its ports as the target", namespace, service, port)
	}
	targetPort := target.TargetPort
	if targetPort == (intstr.IntOrString{}) {
		targetPort = intstr.FromInt32(target.Port)
	}
	entry := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "rehearse-entry-" + service, Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": FieldManager}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: svc.Spec.Selector,
			Ports:    []corev1.ServicePort{{Port: target.Port, TargetPort: targetPort, NodePort: nodePort, Protocol: target.Protocol}},
		},
	}
	_, err = client.CoreV1().Services(namespace).Create(ctx, entry, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return entry.Name, nil
	}
	return entry.Name, err
}
