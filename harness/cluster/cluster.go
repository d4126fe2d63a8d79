package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	nodeutil "k8s.io/component-helpers/node/util"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/hostroute"
	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
)

// Cluster is one kind cluster managed by the harness.
type Cluster struct {
	cfg        Config
	kind       *kindcluster.Provider
	kubeconfig string
	rest       *rest.Config
	client     kubernetes.Interface
	out        io.Writer
	imported   imported
}

// New prepares a cluster; nothing is created until Create.
func New(cfg Config) *Cluster {
	if cfg.WaitReady == 0 {
		cfg.WaitReady = 3 * time.Minute
	}
	if cfg.KubeconfigPath == "" && cfg.Name != "" {
		cfg.KubeconfigPath = defaultKubeconfig(cfg.Name)
	}
	return &Cluster{
		cfg:  cfg,
		kind: kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindcmd.NewLogger())),
		out:  os.Stderr,
	}
}

func defaultKubeconfig(name string) string {
	return filepath.Join(nodeimage.CacheDir(), "kubeconfig", name)
}

// Name is the kind cluster name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Config returns the configuration the cluster was made with.
func (c *Cluster) Config() Config { return c.cfg }

// Exists reports whether a kind cluster of this name exists.
func (c *Cluster) Exists() (bool, error) {
	names, err := c.kind.List()
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if n == c.cfg.Name {
			return true, nil
		}
	}
	return false, nil
}

// Create makes the cluster and waits until every node is Ready and the
// cluster's own pods (DNS, pod network) run.
func (c *Cluster) Create(ctx context.Context) error {
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	exists, err := c.Exists()
	if err != nil {
		return fmt.Errorf("listing kind clusters: %w", err)
	}
	if exists {
		if !c.cfg.ReplaceExisting {
			return fmt.Errorf("a kind cluster named %q already exists: delete it (`rehearse cluster down --name %s`), "+
				"choose another name, or allow replacing it (--replace)", c.cfg.Name, c.cfg.Name)
		}
		fmt.Fprintf(c.out, "Deleting the existing cluster %q (replacing it was allowed)\n", c.cfg.Name)
		if err := c.Delete(ctx); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.cfg.KubeconfigPath), 0o755); err != nil {
		return err
	}
	err = c.kind.Create(c.cfg.Name,
		kindcluster.CreateWithV1Alpha4Config(c.kindConfig()),
		kindcluster.CreateWithKubeconfigPath(c.cfg.KubeconfigPath),
		kindcluster.CreateWithWaitForReady(c.cfg.WaitReady),
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	)
	if err != nil {
		return fmt.Errorf("creating kind cluster %q: %w", c.cfg.Name, err)
	}
	if err := c.connect(); err != nil {
		return err
	}
	return c.WaitReady(ctx, c.cfg.WaitReady)
}

// Connect attaches to an existing cluster of this name (no creation).
func (c *Cluster) Connect(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(c.cfg.KubeconfigPath), 0o755); err != nil {
		return err
	}
	// kind lists the cluster's containers, then inspects each: a node
	// container that another process is removing or adding at that moment
	// (a rehearsal killed in the middle of a node's replacement leaves
	// Docker finishing it) fails the inspect. That passes within seconds.
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = c.kind.ExportKubeConfig(c.cfg.Name, c.cfg.KubeconfigPath, false); err == nil {
			return c.connect()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("cluster %q: %w", c.cfg.Name, err)
}

func (c *Cluster) connect() error {
	rc, err := clientcmd.BuildConfigFromFlags("", c.cfg.KubeconfigPath)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %s: %w", c.cfg.KubeconfigPath, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	c.rest, c.client = rc, client
	return nil
}

func (c *Cluster) kindConfig() *v1alpha4.Cluster {
	// Each node carries its image as a label, as AKS's carry their node
	// image version: an upgrade that changes it shows on the Node.
	imageLabel := func(img string) map[string]string {
		return map[string]string{nodeinfo.LabelNodeImage: nodeinfo.ImageLabel(img)}
	}
	cp := v1alpha4.Node{Role: v1alpha4.ControlPlaneRole, Image: c.cfg.controlPlaneImage(), Labels: imageLabel(c.cfg.controlPlaneImage())}
	for _, p := range c.cfg.NodePorts {
		host := p.HostPort
		if host == 0 {
			host = p.NodePort
		}
		cp.ExtraPortMappings = append(cp.ExtraPortMappings, v1alpha4.PortMapping{
			ContainerPort: p.NodePort, HostPort: host, ListenAddress: "127.0.0.1", Protocol: v1alpha4.PortMappingProtocolTCP,
		})
	}
	cfg := &v1alpha4.Cluster{Nodes: []v1alpha4.Node{cp}}
	for i := 0; i < c.cfg.Workers; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Image: c.cfg.workerImage(i), Labels: imageLabel(c.cfg.workerImage(i))})
	}
	cfg.Networking.PodSubnet = c.cfg.PodSubnet
	cfg.RuntimeConfig = c.cfg.RuntimeConfig
	v1alpha4.SetDefaultsCluster(cfg)
	return cfg
}

// Delete removes the cluster, including workers added after creation (they
// carry the cluster's label), the source container of a control-plane
// upgrade that was killed midway, its kubeconfig file, and the host routes
// to its pods a rehearsal may have left (package hostroute).
func (c *Cluster) Delete(ctx context.Context) error {
	if err := c.kind.Delete(c.cfg.Name, c.cfg.KubeconfigPath); err != nil {
		return fmt.Errorf("deleting kind cluster %q: %w", c.cfg.Name, err)
	}
	if err := c.removeUpgradeSource(ctx); err != nil {
		return fmt.Errorf("cluster %q deleted, but not the source container of its control-plane upgrade: %w", c.cfg.Name, err)
	}
	_ = os.Remove(c.cfg.KubeconfigPath)
	if err := hostroute.Cleanup(c.cfg.Name); err != nil {
		return fmt.Errorf("cluster %q deleted, but its host routes could not be removed: %w", c.cfg.Name, err)
	}
	return nil
}

// Kubeconfig is the path of the kubeconfig file for this cluster.
func (c *Cluster) Kubeconfig() string { return c.cfg.KubeconfigPath }

// RESTConfig is the client configuration (nil before Create or Connect).
func (c *Cluster) RESTConfig() *rest.Config { return c.rest }

// Client is a Kubernetes clientset (nil before Create or Connect).
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// WaitReady waits until every node is Ready and every kube-system pod runs
// with all containers ready.
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, n := range nodes.Items {
			if !NodeReady(&n) {
				last = "node " + n.Name + " is not Ready"
				return false, nil
			}
		}
		pods, err := c.client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, p := range pods.Items {
			if !PodReady(&p) {
				last = "pod kube-system/" + p.Name + " is not ready (" + string(p.Status.Phase) + ")"
				return false, nil
			}
		}
		return len(nodes.Items) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("cluster %q not ready after %s: %s", c.cfg.Name, timeout, last)
	}
	return nil
}

// NodeReady reports the node's Ready condition.
func NodeReady(n *corev1.Node) bool {
	_, c := nodeutil.GetNodeCondition(&n.Status, corev1.NodeReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// PodReady reports whether the pod is running with its Ready condition true.
func PodReady(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// LoadImage copies an image from the local Docker engine into every node.
func (c *Cluster) LoadImage(ctx context.Context, image string) error {
	dir, err := os.MkdirTemp("", "rehearse-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "image.tar")
	if out, err := exec.CommandContext(ctx, "docker", "save", "-o", archive, image).CombinedOutput(); err != nil {
		return fmt.Errorf("docker save %s: %v: %s", image, err, strings.TrimSpace(string(out)))
	}
	return c.LoadImageArchive(ctx, archive)
}
