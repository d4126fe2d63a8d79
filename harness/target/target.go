// Package target is what rehearsals need from a cluster, behind one small
// interface, so that scenarios work the same on a local kind cluster, an
// existing cluster reached by kubeconfig, or AKS: the API client, where the
// clients of a rehearsal reach the application, the nodes and node pools,
// adding and removing a node, running a command on a node, and logs.
//
// A target that cannot do something (an existing cluster cannot add a node
// from an image) returns an error wrapping ErrNotAvailable that says so; it
// never fakes it.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ErrNotAvailable is wrapped by every error of an operation a target
// cannot perform.
var ErrNotAvailable = errors.New("not available on this target")

// NotAvailable builds an ErrNotAvailable error naming the operation and why.
func NotAvailable(op, why string) error {
	return fmt.Errorf("%s: %w: %s", op, ErrNotAvailable, why)
}

// Node is one node as rehearsals see it.
type Node struct {
	Name         string
	Pool         string // the node pool (AKS agent pool; kind: "workers" or "control-plane")
	ControlPlane bool
	Version      string // the kubelet's version
	Image        string // the node image (kind: the node container's image; AKS: the node image version)
	Address      string // the node's internal address
	PodCIDR      string
	Ready        bool
	Cordoned     bool
}

// NodeSpec describes a node to add.
type NodeSpec struct {
	Name   string            // empty: the target picks one
	Pool   string            // the pool it joins
	Image  string            // the node image (kind) or version
	Labels map[string]string // Kubernetes labels at registration
}

// Target is a cluster a rehearsal runs against.
type Target interface {
	// Name identifies the cluster for people and journals ("kind rehearse-dev").
	Name() string
	// Context is the kubeconfig context that reaches the cluster
	// ("kind-rehearse-dev", "staging"): with the API server's address
	// (RESTConfig().Host), what an allow-list names it by.
	Context() string
	Client() kubernetes.Interface
	RESTConfig() *rest.Config
	// Owned reports whether the harness created this cluster itself, in
	// which case destructive actions need no further permission.
	Owned() bool

	// ServiceURL is where a client on this machine reaches a Service's
	// NodePort (through kube-proxy, like a load balancer in front of the
	// nodes), path included.
	ServiceURL(ctx context.Context, nodePort int32, path string) (string, error)
	// ReachPods makes pod addresses reachable from this machine, for the
	// gateway client, until release is called; an error wrapping
	// ErrNotAvailable says why it cannot.
	ReachPods(ctx context.Context) (release func(), err error)

	Nodes(ctx context.Context) ([]Node, error)
	AddNode(ctx context.Context, spec NodeSpec) (string, error)
	RemoveNode(ctx context.Context, name string) error
	// StopNode powers a node off abruptly (no drain, nothing said to the
	// API server), as a host failure or a spot eviction does; its Node
	// object stays until RemoveNode.
	StopNode(ctx context.Context, name string) error
	Exec(ctx context.Context, node string, stdin io.Reader, cmd ...string) ([]byte, error)
	// UpgradeControlPlane upgrades the control plane in place to version
	// (kind: kubeadm inside the control-plane node, the version's binaries
	// and images taken from image, a node image of that version); the
	// upgrade tool's output goes to log.
	UpgradeControlPlane(ctx context.Context, version, image string, log io.Writer) error

	// LoadImageArchives makes images available to every node without a
	// registry (kind: imported into each node's containerd).
	LoadImageArchives(ctx context.Context, archives ...string) error
	// ExportLogs writes the cluster's logs (nodes, kubelets, containers).
	ExportLogs(ctx context.Context, dir string) error
}
