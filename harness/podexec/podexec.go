// Package podexec runs a command in a pod's container through the API
// server (what `kubectl exec` does), with client-go's remotecommand.
package podexec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// Output runs cmd in the container and returns what it wrote to stdout.
// The error carries what it wrote to stderr.
func Output(ctx context.Context, client kubernetes.Interface, cfg *rest.Config, namespace, pod, container string, cmd ...string) (string, error) {
	var out bytes.Buffer
	err := Run(ctx, client, cfg, namespace, pod, container, &out, cmd...)
	return out.String(), err
}

// Run runs cmd in the container, its stdout written to stdout as it
// comes. The error carries what it wrote to stderr.
func Run(ctx context.Context, client kubernetes.Interface, cfg *rest.Config, namespace, pod, container string, stdout io.Writer, cmd ...string) error {
	if cfg == nil {
		return fmt.Errorf("exec in pod %s: no REST config", pod)
	}
	req := client.CoreV1().RESTClient().Post().Resource("pods").Name(pod).Namespace(namespace).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	var errOut bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: &errOut}); err != nil {
		return fmt.Errorf("%s in pod %s container %s: %v %s", strings.Join(cmd, " "), pod, container, err, strings.TrimSpace(errOut.String()))
	}
	return nil
}
