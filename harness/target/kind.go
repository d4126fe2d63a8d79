package target

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/hostroute"
)

// Kind is a local kind cluster as a Target. Every operation is available.
type Kind struct {
	c     *cluster.Cluster
	owned bool
}

var _ Target = (*Kind)(nil)

// NewKind wraps a connected kind cluster. owned says the harness created it
// (or was told the cluster is its own to disrupt).
func NewKind(c *cluster.Cluster, owned bool) *Kind { return &Kind{c: c, owned: owned} }

// Cluster is the underlying kind cluster.
func (k *Kind) Cluster() *cluster.Cluster { return k.c }

func (k *Kind) Name() string                 { return "kind " + k.c.Name() }
func (k *Kind) Context() string              { return "kind-" + k.c.Name() }
func (k *Kind) Client() kubernetes.Interface { return k.c.Client() }
func (k *Kind) RESTConfig() *rest.Config     { return k.c.RESTConfig() }
func (k *Kind) Owned() bool                  { return k.owned }

// ServiceURL prefers the control-plane node's own address on the kind
// network, which a Linux host reaches directly: the connection then meets
// kube-proxy's rules as a load balancer's would. Through Docker's published
// port (127.0.0.1, the fallback on hosts that cannot reach the node, such as
// Docker Desktop) Docker's userland proxy accepts every connection first and
// turns a refused one into an abrupt close, which would read as the app
// dropping a request.
func (k *Kind) ServiceURL(ctx context.Context, nodePort int32, path string) (string, error) {
	if path == "" {
		path = "/"
	}
	cp := k.c.Name() + "-control-plane"
	if ip, err := containerIP(ctx, cp); err == nil && ip != "" {
		// Whether this host reaches the node at all is asked of the
		// kubelet's port, which always listens: the node port itself may
		// not be programmed by kube-proxy yet for a Service just made.
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "10250"), 2*time.Second); err == nil {
			conn.Close()
			return "http://" + net.JoinHostPort(ip, strconv.Itoa(int(nodePort))) + path, nil
		}
	}
	for _, p := range k.c.Config().NodePorts {
		if p.NodePort == nodePort {
			host := p.HostPort
			if host == 0 {
				host = p.NodePort
			}
			return fmt.Sprintf("http://127.0.0.1:%d%s", host, path), nil
		}
	}
	return "", fmt.Errorf("node port %d is reachable neither on the control-plane node's address nor through a port "+
		"mapping on 127.0.0.1: map it when creating the cluster (cluster.Config.NodePorts)", nodePort)
}

// ReachPods installs host routes to every node's pod range (package
// hostroute) and keeps them in step with the nodes (a surge upgrade adds
// nodes with new ranges) until release is called, which removes them.
func (k *Kind) ReachPods(ctx context.Context) (func(), error) {
	if err := hostroute.Available(); err != nil {
		return nil, NotAvailable("reaching pod addresses from this machine", err.Error())
	}
	// Routes a killed run left for a cluster that is gone would refuse
	// ours if the pod ranges overlap; Docker answers (the cluster is ours).
	if _, err := cluster.RemoveStaleRoutes(); err != nil {
		return nil, err
	}
	m := hostroute.New(k.c.Name())
	resync := func(ctx context.Context) error {
		routes, err := k.podRoutes(ctx)
		if err != nil {
			return err
		}
		return m.Sync(ctx, routes)
	}
	if err := resync(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				_ = resync(runCtx) // a failed sync is retried on the next tick
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			rm, stop := context.WithTimeout(context.Background(), 30*time.Second)
			defer stop()
			_ = m.Remove(rm)
		})
	}, nil
}

func (k *Kind) podRoutes(ctx context.Context) ([]hostroute.NodeRoute, error) {
	nodes, err := k.c.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []hostroute.NodeRoute
	for _, n := range nodes.Items {
		if n.Spec.PodCIDR == "" {
			continue
		}
		_, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil || cidr.IP.To4() == nil {
			continue
		}
		via := net.ParseIP(internalIP(&n))
		if via == nil || via.To4() == nil {
			continue
		}
		out = append(out, hostroute.NodeRoute{Node: n.Name, PodCIDR: cidr, Via: via})
	}
	return out, nil
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// Nodes lists the cluster's nodes; the pool is "control-plane" or
// "workers", and the image is the node container's image.
func (k *Kind) Nodes(ctx context.Context) ([]Node, error) {
	list, err := k.c.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(list.Items))
	for i := range list.Items {
		n := apiNode(&list.Items[i])
		img, _ := dockerOut(ctx, "inspect", "--format", "{{.Config.Image}}", n.Name)
		n.Image = strings.TrimSpace(img)
		out = append(out, n)
	}
	return out, nil
}

// AddNode starts a worker from spec.Image and joins it (see
// cluster.AddWorker).
func (k *Kind) AddNode(ctx context.Context, spec NodeSpec) (string, error) {
	return k.c.AddWorker(ctx, cluster.WorkerSpec{Name: spec.Name, Image: spec.Image, Labels: spec.Labels})
}

// RemoveNode deletes the Node and its container (no drain).
func (k *Kind) RemoveNode(ctx context.Context, name string) error { return k.c.RemoveNode(ctx, name) }

// StopNode kills the node's container (see cluster.StopNode).
func (k *Kind) StopNode(ctx context.Context, name string) error { return k.c.StopNode(ctx, name) }

// UpgradeControlPlane runs kubeadm's in-place upgrade of the control-plane
// node (see cluster.UpgradeControlPlane).
func (k *Kind) UpgradeControlPlane(ctx context.Context, version, image string, log io.Writer) error {
	return k.c.UpgradeControlPlane(ctx, image, version, log)
}

// Exec runs a command on a node: in its container, or in its VM.
func (k *Kind) Exec(ctx context.Context, node string, stdin io.Reader, cmd ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, "docker", cluster.ExecArgs(ctx, node, stdin != nil, cmd...)...)
	c.Stdin = stdin
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("on node %s, %s: %v: %s", node, strings.Join(cmd, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// LoadImageArchives imports each archive into every node's containerd.
func (k *Kind) LoadImageArchives(ctx context.Context, archives ...string) error {
	for _, a := range archives {
		if err := k.c.LoadImageArchive(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// ExportLogs writes kind's log bundle.
func (k *Kind) ExportLogs(ctx context.Context, dir string) error { return k.c.ExportLogs(ctx, dir) }

func containerIP(ctx context.Context, name string) (string, error) {
	out, err := dockerOut(ctx, "inspect", "--format", "{{ (index .NetworkSettings.Networks \"kind\").IPAddress }}", name)
	return strings.TrimSpace(out), err
}

func dockerOut(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", args...).Output()
	return string(out), err
}
