// Package cluster creates and manages local multi-node kind clusters for
// rehearsals, through the kind Go library. It implements e2e-framework's
// cluster provider interfaces (support.E2EClusterProvider, its image-loading
// and node life-cycle extensions), and adds what kind lacks and surge
// upgrades need: adding a worker to a running cluster (a node container from
// any node image, joined with kubeadm) and removing a node.
package cluster

import (
	"fmt"
	"net"
	"regexp"
	"time"
)

// Config describes a cluster: one control plane and N workers.
type Config struct {
	Name string
	// Image is the node image of every node unless overridden per node.
	Image string
	// ControlPlaneImage and WorkerImages override Image per node
	// (WorkerImages[i] for worker i, empty entries use Image).
	ControlPlaneImage string
	WorkerImages      []string
	Workers           int
	// NodePorts are Service node ports made reachable on 127.0.0.1 of the
	// host (through the control-plane node, which every upgrade keeps).
	NodePorts []PortMapping
	// KubeconfigPath is where the cluster's kubeconfig is written; a file in
	// the cache directory named after the cluster when empty.
	KubeconfigPath string
	// WaitReady bounds the wait for every node to be Ready (default 3m).
	WaitReady time.Duration
	// ReplaceExisting allows deleting a cluster of the same name before
	// creating this one. Without it an existing cluster is an error: it may
	// be someone's work.
	ReplaceExisting bool
	// PodSubnet is the cluster's pod address range (kind's default
	// 10.244.0.0/16 when empty). Host routes to pods (package hostroute)
	// need the ranges of clusters that exist side by side to differ: the
	// test suites give each of their clusters its own.
	PodSubnet string
	// RuntimeConfig turns API versions on or off in the API server
	// (kube-apiserver --runtime-config): {"admissionregistration.k8s.io/v1beta1": "true"}
	// serves a deprecated version a cluster would otherwise not, so that a
	// client can call it.
	RuntimeConfig map[string]string
}

// PortMapping exposes a NodePort on the host's loopback.
type PortMapping struct {
	NodePort int32 // 30000-32767
	HostPort int32 // 0 picks NodePort
}

var namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var problems []string
	if !namePattern.MatchString(c.Name) || len(c.Name) > 40 {
		problems = append(problems, fmt.Sprintf("name %q: use lower-case letters, digits and '-', at most 40 characters (e.g. rehearse-dev)", c.Name))
	}
	if c.Workers < 0 || c.Workers > 20 {
		problems = append(problems, fmt.Sprintf("workers %d: choose 0 to 20 on one machine", c.Workers))
	}
	if c.Image == "" && c.ControlPlaneImage == "" {
		problems = append(problems, "no node image: set Image (e.g. the result of `rehearse image node`)")
	}
	if len(c.WorkerImages) > c.Workers {
		problems = append(problems, fmt.Sprintf("%d worker images for %d workers: give at most one image per worker", len(c.WorkerImages), c.Workers))
	}
	for i, img := range c.WorkerImages {
		if img == "" && c.Image == "" {
			problems = append(problems, fmt.Sprintf("worker %d has no image: set WorkerImages[%d] or Image", i, i))
		}
	}
	for _, p := range c.NodePorts {
		if p.NodePort < 30000 || p.NodePort > 32767 {
			problems = append(problems, fmt.Sprintf("node port %d: Kubernetes assigns node ports from 30000-32767", p.NodePort))
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			problems = append(problems, fmt.Sprintf("host port %d: use 1-65535, or 0 for the node port itself", p.HostPort))
		}
	}
	if c.PodSubnet != "" {
		if ip, n, err := net.ParseCIDR(c.PodSubnet); err != nil || ip.To4() == nil {
			problems = append(problems, fmt.Sprintf("pod subnet %q: give an IPv4 range such as 10.244.0.0/16", c.PodSubnet))
		} else if ones, _ := n.Mask.Size(); ones > 20 {
			problems = append(problems, fmt.Sprintf("pod subnet %s: each node takes a /24 of it, so give a /20 or wider (e.g. 10.244.0.0/16)", c.PodSubnet))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("cluster config is not usable:\n  - %s", joinLines(problems))
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  - "
		}
		out += l
	}
	return out
}

func (c Config) controlPlaneImage() string {
	if c.ControlPlaneImage != "" {
		return c.ControlPlaneImage
	}
	return c.Image
}

func (c Config) workerImage(i int) string {
	if i < len(c.WorkerImages) && c.WorkerImages[i] != "" {
		return c.WorkerImages[i]
	}
	return c.Image
}

// FreeHostPort finds a free TCP port on 127.0.0.1 for a PortMapping, so
// several clusters (or suites) can map the same NodePort side by side.
func FreeHostPort() (int32, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port), nil
}
