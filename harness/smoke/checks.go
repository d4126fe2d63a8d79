package smoke

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// DNS checks that CoreDNS resolves kubernetes.default (through the pod's
// search path) to the API server's Service address, from a pod on node.
func (c Checker) DNS(ctx context.Context, node string) error {
	out, err := c.Run(ctx, "dns-"+node, node, "resolve", "kubernetes.default")
	if err != nil {
		return fmt.Errorf("DNS from a pod on %s: %w", node, err)
	}
	if strings.TrimSpace(out) == "" {
		return fmt.Errorf("DNS from a pod on %s: kubernetes.default resolved to nothing", node)
	}
	return nil
}

// CrossNode checks that a pod on node `from` reaches, through a ClusterIP
// Service (found by its DNS name), a backend whose only pod runs on node
// `to`, and that the answer came from that pod.
func (c Checker) CrossNode(ctx context.Context, from, to string) error {
	svc, err := c.Backend(ctx, "backend-"+to, to, corev1.ServiceTypeClusterIP, 0)
	if err != nil {
		return err
	}
	out, err := c.Run(ctx, "client-"+from+"-to-"+to, from, "get", "http://"+svc+":8080/")
	if err != nil {
		return fmt.Errorf("pod on %s to Service %s (backend on %s): %w", from, svc, to, err)
	}
	if !strings.Contains(out, "node="+to) {
		return fmt.Errorf("pod on %s to Service %s: answered by %q, expected the backend on %s", from, svc, strings.TrimSpace(out), to)
	}
	return nil
}

// NodePort checks that a NodePort Service whose backend runs on node answers
// on the host's 127.0.0.1:hostPort.
func (c Checker) NodePort(ctx context.Context, node string, nodePort, hostPort int32) error {
	if _, err := c.Backend(ctx, "nodeport", node, corev1.ServiceTypeNodePort, nodePort); err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	out, err := HostGet(ctx, url, c.timeout())
	if err != nil {
		return err
	}
	if !strings.Contains(out, "node="+node) {
		return fmt.Errorf("%s answered %q, expected the backend on %s", url, strings.TrimSpace(out), node)
	}
	return nil
}

// Step runs one named check and prints a status line with its duration.
func Step(name string, check func() error) error {
	start := time.Now()
	err := check()
	d := time.Since(start).Round(10 * time.Millisecond)
	if err != nil {
		fmt.Printf(" ✗ %s (%s): %v\n", name, d, err)
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Printf(" ✓ %s (%s)\n", name, d)
	return nil
}
