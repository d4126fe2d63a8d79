package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
)

// Existing is a cluster the harness did not create, reached by a
// kubeconfig context: a staging cluster, a cluster another tool made. What
// the Kubernetes API offers works as on kind (deploying, draining,
// cordoning, CoreDNS faults); what needs the nodes' machines (adding,
// removing or powering off a node, running a command on one, loading
// images) is not available, and says so. It is never owned: destructive
// actions need the cluster on the allow-list (package safety).
type Existing struct {
	context string
	server  string
	cfg     *rest.Config
	client  kubernetes.Interface
}

var _ Target = (*Existing)(nil)

// Connect reads the kubeconfig (path "": $KUBECONFIG, else
// ~/.kube/config) and builds a client for the context (kubecontext "": the
// file's current context). Nothing is contacted, so every error here is
// about the input.
func Connect(path, kubecontext string) (*Existing, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubecontext})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", describeKubeconfig(path), err)
	}
	name := kubecontext
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		return nil, fmt.Errorf("kubeconfig %s has no current context: name one (--context)", describeKubeconfig(path))
	}
	if _, ok := raw.Contexts[name]; !ok {
		return nil, fmt.Errorf("kubeconfig %s has no context %q (it has: %v)", describeKubeconfig(path), name, slices.Sorted(maps.Keys(raw.Contexts)))
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s, context %s: %w", describeKubeconfig(path), name, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s, context %s: %w", describeKubeconfig(path), name, err)
	}
	return &Existing{context: name, server: cfg.Host, cfg: cfg, client: client}, nil
}

func describeKubeconfig(path string) string {
	if path == "" {
		return "($KUBECONFIG or ~/.kube/config)"
	}
	return path
}

func (e *Existing) Name() string {
	return fmt.Sprintf("cluster %s (context %s)", e.server, e.context)
}
func (e *Existing) Context() string              { return e.context }
func (e *Existing) Server() string               { return e.server }
func (e *Existing) Client() kubernetes.Interface { return e.client }
func (e *Existing) RESTConfig() *rest.Config     { return e.cfg }
func (e *Existing) Owned() bool                  { return false }

// ServiceURL is a NodePort on a Ready node's address (its external one if
// it has one), the way a load balancer in front of the nodes reaches the
// Service. Whether this machine can reach it is found out by the first
// request: nodes on a private network are not reachable from outside it.
func (e *Existing) ServiceURL(ctx context.Context, nodePort int32, path string) (string, error) {
	if path == "" {
		path = "/"
	}
	nodes, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	for _, want := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for i := range nodes.Items {
			n := &nodes.Items[i]
			if !cluster.NodeReady(n) || n.Spec.Unschedulable {
				continue
			}
			for _, a := range n.Status.Addresses {
				if a.Type == want && a.Address != "" {
					return "http://" + net.JoinHostPort(a.Address, strconv.Itoa(int(nodePort))) + path, nil
				}
			}
		}
	}
	return "", errors.New("no Ready node has an address for the Service's node port")
}

// ReachPods is not available: an existing cluster's pod addresses are not
// routed to this machine.
func (e *Existing) ReachPods(context.Context) (func(), error) {
	return nil, NotAvailable("reaching pod addresses from this machine",
		"an existing cluster's pod network is not routed here: rehearse with the service client only")
}

// Nodes lists the nodes. The pool is AKS's agent pool label where there is
// one; the image is AKS's node-image version label, else the OS image the
// kubelet reports.
func (e *Existing) Nodes(ctx context.Context) ([]Node, error) {
	list, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, apiNode(&list.Items[i]))
	}
	return out, nil
}

// apiNode is what the Node object alone says about a node.
func apiNode(n *corev1.Node) Node {
	i := nodeinfo.Of(n)
	return Node{
		Name: n.Name, Pool: i.Pool, ControlPlane: i.ControlPlane, Version: i.Kubelet,
		Image: i.Image, Address: internalIP(n), PodCIDR: n.Spec.PodCIDR,
		Ready: cluster.NodeReady(n), Cordoned: n.Spec.Unschedulable,
	}
}

const noMachines = "the harness reaches this cluster only through its API, not its nodes' machines"

func (e *Existing) AddNode(context.Context, NodeSpec) (string, error) {
	return "", NotAvailable("adding a node", noMachines+" (on AKS, the upgrade driver adds nodes)")
}

func (e *Existing) RemoveNode(_ context.Context, name string) error {
	return NotAvailable("removing node "+name, noMachines)
}

func (e *Existing) StopNode(_ context.Context, name string) error {
	return NotAvailable("powering off node "+name, noMachines)
}

func (e *Existing) Exec(_ context.Context, node string, _ io.Reader, _ ...string) ([]byte, error) {
	return nil, NotAvailable("running a command on node "+node, noMachines)
}

func (e *Existing) UpgradeControlPlane(context.Context, string, string, io.Writer) error {
	return NotAvailable("upgrading the control plane in place", noMachines+" (on AKS, the upgrade driver upgrades it)")
}

// LoadImageArchives is not available: the cluster pulls its images from
// its registry, so the images must be pushed there.
func (e *Existing) LoadImageArchives(_ context.Context, archives ...string) error {
	if len(archives) == 0 {
		return nil
	}
	return NotAvailable("loading image archives", "an existing cluster pulls images from its registry: push them there")
}

func (e *Existing) ExportLogs(context.Context, string) error {
	return NotAvailable("exporting node logs", noMachines)
}
