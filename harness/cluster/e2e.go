package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/support"
)

// Provider adapts a Cluster to e2e-framework's cluster provider interfaces,
// so suites use envfuncs.CreateClusterWithOpts / DestroyCluster with it.
type Provider struct {
	*Cluster
}

var (
	_ support.E2EClusterProvider                = (*Provider)(nil)
	_ support.E2EClusterProviderWithImageLoader = (*Provider)(nil)
	_ support.E2EClusterProviderWithLifeCycle   = (*Provider)(nil)
)

// NewProvider wraps a cluster configuration for e2e-framework.
func NewProvider(cfg Config) *Provider { return &Provider{New(cfg)} }

// WithName sets the cluster name (envfuncs passes the name it was given).
func (p *Provider) WithName(name string) support.E2EClusterProvider {
	cfg := p.cfg
	cfg.Name = name
	if p.cfg.KubeconfigPath == defaultKubeconfig(p.cfg.Name) {
		cfg.KubeconfigPath = "" // the default path follows the name
	}
	p.Cluster = New(cfg)
	return p
}

// WithVersion is not how node images are chosen here: set Config.Image
// (see fixtures/nodeimage). Kept for the interface; it does nothing.
func (p *Provider) WithVersion(string) support.E2EClusterProvider { return p }

// WithPath would name a kind binary; this provider uses the kind library.
func (p *Provider) WithPath(string) support.E2EClusterProvider { return p }

// WithOpts applies e2e-framework cluster options.
func (p *Provider) WithOpts(opts ...support.ClusterOpts) support.E2EClusterProvider {
	for _, o := range opts {
		o(p)
	}
	return p
}

// SetDefaults keeps the configuration as given.
func (p *Provider) SetDefaults() support.E2EClusterProvider { return p }

// Create makes the cluster and returns its kubeconfig path.
func (p *Provider) Create(ctx context.Context, _ ...string) (string, error) {
	if err := p.Cluster.Create(ctx); err != nil {
		return "", err
	}
	return p.Kubeconfig(), nil
}

// CreateWithConfig is not supported: clusters are described by Config.
func (p *Provider) CreateWithConfig(context.Context, string) (string, error) {
	return "", fmt.Errorf("kind config files are not used by this provider: describe the cluster with cluster.Config")
}

// GetKubeconfig returns the kubeconfig path.
func (p *Provider) GetKubeconfig() string { return p.Kubeconfig() }

// GenerateKubeconfig writes the kubeconfig again and returns its path.
func (p *Provider) GenerateKubeconfig(...string) (string, error) {
	return p.Kubeconfig(), p.kind.ExportKubeConfig(p.cfg.Name, p.cfg.KubeconfigPath, false)
}

// GetKubectlContext is the context name kind writes.
func (p *Provider) GetKubectlContext() string { return "kind-" + p.cfg.Name }

// Destroy deletes the cluster.
func (p *Provider) Destroy(ctx context.Context) error { return p.Delete(ctx) }

// WaitForControlPlane waits for every node and system pod to be ready.
func (p *Provider) WaitForControlPlane(ctx context.Context, _ klient.Client) error {
	return p.WaitReady(ctx, p.cfg.WaitReady)
}

// KubernetesRestConfig returns the client configuration.
func (p *Provider) KubernetesRestConfig() *rest.Config { return p.RESTConfig() }

// LoadImage copies a local Docker image into every node.
func (p *Provider) LoadImage(ctx context.Context, image string, _ ...string) error {
	return p.Cluster.LoadImage(ctx, image)
}

// LoadImageArchive imports a docker-archive into every node.
func (p *Provider) LoadImageArchive(ctx context.Context, archive string, _ ...string) error {
	return p.Cluster.LoadImageArchive(ctx, archive)
}

// AddNode adds a worker. The image may be given as an "--image=REF" argument;
// the cluster's image is used otherwise.
func (p *Provider) AddNode(ctx context.Context, node *support.Node, args ...string) error {
	spec := WorkerSpec{Name: node.Name}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--image="); ok {
			spec.Image = v
		}
	}
	if node.Role != "" && node.Role != "worker" {
		return fmt.Errorf("only workers can be added, not role %q", node.Role)
	}
	name, err := p.AddWorker(ctx, spec)
	node.Name, node.Cluster, node.Role = name, p.cfg.Name, "worker"
	return err
}

// RemoveNode deletes the node and its container.
func (p *Provider) RemoveNode(ctx context.Context, node *support.Node, _ ...string) error {
	return p.Cluster.RemoveNode(ctx, node.Name)
}

// StartNode starts a stopped node container.
func (p *Provider) StartNode(ctx context.Context, node *support.Node, _ ...string) error {
	return docker(ctx, "start", node.Name)
}

// StopNode stops a node container (the node goes NotReady, like a crash).
func (p *Provider) StopNode(ctx context.Context, node *support.Node, _ ...string) error {
	return docker(ctx, "stop", node.Name)
}

// ListNode lists the cluster's node containers.
func (p *Provider) ListNode(ctx context.Context, _ ...string) ([]support.Node, error) {
	out, err := dockerOutput(ctx, "ps", "-a", "--filter", "label="+kindClusterLabel+"="+p.cfg.Name,
		"--format", `{{.Names}}|{{.Label "`+kindRoleLabel+`"}}|{{.State}}`)
	if err != nil {
		return nil, err
	}
	var nodes []support.Node
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			continue
		}
		n := support.Node{Name: f[0], Role: f[1], State: f[2], Cluster: p.cfg.Name}
		if ip, err := dockerOutput(ctx, "inspect", "--format", "{{ (index .NetworkSettings.Networks \""+kindNetwork+"\").IPAddress }}", f[0]); err == nil {
			n.IP = net.ParseIP(strings.TrimSpace(ip))
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
