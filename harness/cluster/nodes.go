package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
)

// Labels and settings kind gives its node containers; added workers carry
// the same so kind's own delete, log export and image loading see them.
const (
	kindClusterLabel = "io.x-k8s.kind.cluster"
	kindRoleLabel    = "io.x-k8s.kind.role"
	kindNetwork      = "kind"
)

// bootPattern is what a node prints once systemd is up (kind waits for the
// same lines).
var bootPattern = regexp.MustCompile(`Reached target .*Multi-User System.*|detected cgroup v1`)

// WorkerSpec describes a worker to add to a running cluster.
type WorkerSpec struct {
	// Name of the node (and its container); "<cluster>-worker<N>" with the
	// next free N when empty.
	Name string
	// Image is the node image; the cluster's image when empty. A newer
	// Kubernetes version here is how a surge upgrade brings in new nodes.
	Image string
	// Labels are Kubernetes node labels given at registration.
	Labels map[string]string
	// VM, when set, makes the worker a VM node of its own cgroup mode
	// (see VMNode); Image is then only its label.
	VM *VMNode
}

// AddWorker starts a node container like kind's own workers and joins it
// with kubeadm, then waits until the node is Ready. It returns the node name.
func (c *Cluster) AddWorker(ctx context.Context, spec WorkerSpec) (string, error) {
	if c.client == nil {
		return "", fmt.Errorf("cluster %q is not connected: call Create or Connect first", c.cfg.Name)
	}
	if spec.Image == "" {
		spec.Image = c.cfg.Image
	}
	if spec.Image == "" {
		return "", fmt.Errorf("no image for the new worker: set WorkerSpec.Image")
	}
	if spec.Name == "" {
		name, err := c.nextWorkerName(ctx)
		if err != nil {
			return "", err
		}
		spec.Name = name
	}
	if !namePattern.MatchString(spec.Name) {
		return "", fmt.Errorf("node name %q: use lower-case letters, digits and '-'", spec.Name)
	}
	controlPlane := c.cfg.Name + "-control-plane"
	run := c.runArgs(spec)
	// A VM boots and joins at the emulator's pace: under TCG about 15
	// times slower than a container node.
	boot, ready := time.Minute, 2*time.Minute
	accel := ""
	if spec.VM != nil {
		if err := spec.VM.validate(); err != nil {
			return "", err
		}
		accel = spec.VM.Accel
		if accel == "" {
			accel, _ = VMAccel(ctx, spec.VM.Runner)
		}
		hosts, err := vmHosts(ctx, controlPlane)
		if err != nil {
			return "", err
		}
		run = c.vmRunArgs(spec, accel, hosts)
		boot, ready = 5*time.Minute, 8*time.Minute
	}
	if err := docker(ctx, run...); err != nil {
		return "", fmt.Errorf("starting node container %s: %w", spec.Name, err)
	}
	if err := waitForBoot(ctx, spec.Name, boot); err != nil {
		return spec.Name, err
	}
	if err := waitContainerd(ctx, spec.Name, boot); err != nil {
		return spec.Name, err
	}
	if err := syncImages(ctx, controlPlane, spec.Name); err != nil {
		return spec.Name, fmt.Errorf("giving %s the cluster's images: %w", spec.Name, err)
	}
	token, err := dockerOutput(ctx, "exec", controlPlane, "kubeadm", "token", "create", "--ttl", "15m")
	if err != nil {
		return spec.Name, fmt.Errorf("creating a join token on %s: %w", controlPlane, err)
	}
	ip, err := nodeIP(ctx, spec.Name)
	if err != nil {
		return spec.Name, err
	}
	conf := joinConfig(joinData{
		ControlPlane: controlPlane + ":6443",
		Token:        strings.TrimSpace(token),
		NodeIP:       ip,
		NodeName:     spec.Name,
		ClusterName:  c.cfg.Name,
		Labels:       labelsOf(spec, accel),
	})
	if err := dockerStdin(ctx, conf, ExecArgs(ctx, spec.Name, true, "cp", "/dev/stdin", "/kind/kubeadm.conf")...); err != nil {
		return spec.Name, err
	}
	if err := docker(ctx, ExecArgs(ctx, spec.Name, false, "kubeadm", "join", "--config", "/kind/kubeadm.conf", "--skip-phases=preflight", "--v=2")...); err != nil {
		return spec.Name, fmt.Errorf("kubeadm join on %s: %w", spec.Name, err)
	}
	return spec.Name, c.waitNodeReady(ctx, spec.Name, ready)
}

// labelsOf are the new node's labels: the spec's, the node-image label the
// nodes kind created carry, and for a VM node its accelerator (accel).
func labelsOf(spec WorkerSpec, accel string) map[string]string {
	out := map[string]string{nodeinfo.LabelNodeImage: nodeinfo.ImageLabel(spec.Image)}
	if accel != "" {
		out[nodeinfo.LabelVMAccel] = accel
	}
	for k, v := range spec.Labels {
		out[k] = v
	}
	return out
}

// runArgs mirror how kind starts its node containers (see
// shared/KIND-NODE-CONTRACT.md), so an added node is indistinguishable from
// one kind created.
func (c *Cluster) runArgs(spec WorkerSpec) []string {
	return []string{
		"run", "--detach", "--tty",
		"--name", spec.Name, "--hostname", spec.Name,
		"--label", kindClusterLabel + "=" + c.cfg.Name,
		"--label", kindRoleLabel + "=worker",
		"--net", kindNetwork,
		"--restart=on-failure:1", "--init=false", "--cgroupns=private",
		"--privileged", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--tmpfs", "/tmp", "--tmpfs", "/run",
		"--volume", "/var", "--volume", "/lib/modules:/lib/modules:ro",
		spec.Image,
	}
}

type joinData struct {
	ControlPlane, Token, NodeIP, NodeName, ClusterName string
	Labels                                             map[string]string
}

// joinConfig is the kubeadm JoinConfiguration for a worker. kubeadm's
// v1beta3 API is used, as kind does for these versions; the kubelet settings
// come from the cluster (kubeadm's kubelet-config ConfigMap), so they match
// the nodes kind created.
func joinConfig(d joinData) string {
	labels := make([]string, 0, len(d.Labels))
	for k, v := range d.Labels {
		labels = append(labels, k+"="+v)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  name: %q
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    node-ip: %q
    provider-id: "kind://docker/%s/%s"
    node-labels: %q
discovery:
  bootstrapToken:
    apiServerEndpoint: %q
    token: %q
    unsafeSkipCAVerification: true
`, d.NodeName, d.NodeIP, d.ClusterName, d.NodeName, strings.Join(sorted(labels), ","), d.ControlPlane, d.Token)
	return b.String()
}

func (c *Cluster) nextWorkerName(ctx context.Context) (string, error) {
	out, err := dockerOutput(ctx, "ps", "-a", "--filter", "label="+kindClusterLabel+"="+c.cfg.Name, "--format", "{{.Names}}")
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, n := range strings.Fields(out) {
		taken[n] = true
	}
	for i := 2; ; i++ {
		name := fmt.Sprintf("%s-worker%d", c.cfg.Name, i)
		if !taken[name] {
			return name, nil
		}
	}
}

// RemoveNode deletes the Node object and the node's container (with its
// /var volume). It does not drain: scenarios drain first when they mean to.
func (c *Cluster) RemoveNode(ctx context.Context, name string) error {
	if c.client == nil {
		return fmt.Errorf("cluster %q is not connected: call Create or Connect first", c.cfg.Name)
	}
	if name == c.cfg.Name+"-control-plane" {
		return fmt.Errorf("refusing to remove the control-plane node %s: the cluster would be gone", name)
	}
	err := c.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Node %s: %w", name, err)
	}
	labels, err := dockerOutput(ctx, "inspect", "--format", "{{ index .Config.Labels \""+kindClusterLabel+"\" }}", name)
	if err != nil {
		return nil // no container left: nothing more to do
	}
	if strings.TrimSpace(labels) != c.cfg.Name {
		return fmt.Errorf("container %s does not belong to cluster %s: not removing it", name, c.cfg.Name)
	}
	return docker(ctx, "rm", "--force", "--volumes", name)
}

// StopNode powers a worker off abruptly, as a cloud VM is when its host
// fails or a spot instance is taken back: its container is killed (every
// process at once, its network gone, nothing said to the API server), and
// left stopped with its restart policy cleared so that Docker does not bring
// it back. The Node object stays, as it does in a real cluster until the
// node controller notices. RemoveNode cleans it up.
func (c *Cluster) StopNode(ctx context.Context, name string) error {
	if name == c.cfg.Name+"-control-plane" {
		return fmt.Errorf("refusing to stop the control-plane node %s: the cluster would be gone", name)
	}
	labels, err := dockerOutput(ctx, "inspect", "--format", "{{ index .Config.Labels \""+kindClusterLabel+"\" }}", name)
	if err != nil {
		return fmt.Errorf("node %s has no container: %w", name, err)
	}
	if strings.TrimSpace(labels) != c.cfg.Name {
		return fmt.Errorf("container %s does not belong to cluster %s: not stopping it", name, c.cfg.Name)
	}
	if err := docker(ctx, "update", "--restart=no", name); err != nil {
		return err
	}
	return docker(ctx, "kill", "--signal", "KILL", name)
}

func (c *Cluster) waitNodeReady(ctx context.Context, name string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return NodeReady(n), nil
	})
	if err != nil {
		return fmt.Errorf("node %s did not become Ready within %s (see `docker exec %s journalctl -u kubelet`)", name, timeout, name)
	}
	return nil
}

func waitForBoot(ctx context.Context, container string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, _ := exec.CommandContext(ctx, "docker", "logs", container).CombinedOutput()
		if bootPattern.Match(out) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s did not boot within %s (see `docker logs %s`)", container, timeout, container)
}

// waitContainerd waits until the node's containerd answers.
func waitContainerd(ctx context.Context, node string, timeout time.Duration) error {
	version := ExecArgs(ctx, node, false, "ctr", "version")
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		return docker(ctx, version...) == nil, nil
	})
}

// nodeIP is a node container's address on the cluster's network.
func nodeIP(ctx context.Context, container string) (string, error) {
	ip, err := dockerOutput(ctx, "inspect", "--format", "{{ (index .NetworkSettings.Networks \""+kindNetwork+"\").IPAddress }}", container)
	return strings.TrimSpace(ip), err
}

func docker(ctx context.Context, args ...string) error {
	_, err := dockerOutput(ctx, args...)
	return err
}

func dockerOutput(ctx context.Context, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, lastLines(stderr.String()+string(out), 15))
	}
	return string(out), nil
}

func dockerStdin(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
