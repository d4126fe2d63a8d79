package smoke

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
)

// Nodes picks the two nodes the checks run between, from the cluster as it
// is: the first and the last worker by name (so a node added later, such as
// a VM worker or a newer version's node, is the far end of the cross-node
// check), the same worker twice when there is one, the control plane when
// there is none. Names are never guessed from a worker count: nodes are
// added and removed after the cluster is made.
func (c Checker) Nodes(ctx context.Context) (from, to string, err error) {
	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", "", fmt.Errorf("listing the cluster's nodes: %w", err)
	}
	return pickNodes(list.Items)
}

func pickNodes(nodes []corev1.Node) (from, to string, err error) {
	var workers, all []string
	for _, n := range nodes {
		all = append(all, n.Name)
		if _, cp := n.Labels[nodeinfo.LabelControlPlane]; !cp {
			workers = append(workers, n.Name)
		}
	}
	if len(workers) == 0 {
		workers = all
	}
	if len(workers) == 0 {
		return "", "", fmt.Errorf("the cluster has no node")
	}
	slices.Sort(workers)
	return workers[0], workers[len(workers)-1], nil
}
