package preflight

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

// Surge describes what a surge upgrade will add and where it must fit:
// each surge node takes vCPUs of the subscription's quota and addresses of
// the pool's subnet (with Azure CNI without overlay, a node reserves an
// address for each pod it may run, plus its own).
type Surge struct {
	MaxSurge string // AKS maxSurge: a count or a percentage of the pool (default 10%)
	// Pool is the node pool (AKS's agentpool label); "": every node that
	// is not a control-plane node.
	Pool string
	// CPUQuotaFree is the vCPUs the regional quota has left (0: not checked).
	CPUQuotaFree int
	// VCPUsPerNode is the pool's VM size's vCPUs (0: a node's capacity).
	VCPUsPerNode int
	// Subnet is the pool's subnet ("": not checked), SubnetUsed the
	// addresses already taken in it (0: the pool's own nodes' share).
	Subnet     string
	SubnetUsed int
	// AddressesPerNode is what one node takes from the subnet (0: its
	// maximum pods plus one, as Azure CNI without overlay reserves; 1 for
	// CNI overlay or kubenet).
	AddressesPerNode int
}

// azureReserved is the addresses Azure keeps in every subnet.
const azureReserved = 5

// Validate checks the inputs.
func (s Surge) Validate() error {
	if err := (upgrade.Settings{MaxSurge: s.MaxSurge}).Validate(); err != nil {
		return err
	}
	if s.Subnet != "" {
		if _, n, err := net.ParseCIDR(s.Subnet); err != nil || n.IP.To4() == nil {
			return fmt.Errorf("subnet %q: give an IPv4 range, e.g. 10.240.0.0/16", s.Subnet)
		}
	}
	if s.CPUQuotaFree < 0 || s.VCPUsPerNode < 0 || s.SubnetUsed < 0 || s.AddressesPerNode < 0 {
		return fmt.Errorf("surge figures cannot be negative")
	}
	return nil
}

// surgeCapacity checks that the pool's surge nodes fit the quota and the
// subnet. why says what could not be checked.
func surgeCapacity(ctx context.Context, client kubernetes.Interface, s Surge) ([]Finding, string) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Sprintf("the nodes could not be read: %v", err)
	}
	var pool []corev1.Node
	for _, n := range list.Items {
		if i := nodeinfo.Of(&n); (s.Pool == "" && !i.ControlPlane) || (s.Pool != "" && nodeinfo.AgentPool(&n) == s.Pool) {
			pool = append(pool, n)
		}
	}
	if len(pool) == 0 {
		return nil, fmt.Sprintf("no node of pool %q", s.Pool)
	}
	settings := upgrade.Settings{MaxSurge: s.MaxSurge}.WithDefaults()
	surge := settings.Surge(len(pool))
	name := s.Pool
	if name == "" {
		name = "workers"
	}
	obj := fmt.Sprintf("node pool %s (%d nodes, maxSurge %s: %d surge nodes)", name, len(pool), settings.MaxSurge, surge)
	var out []Finding
	var notes []string
	if s.CPUQuotaFree > 0 {
		vcpus := s.VCPUsPerNode
		if vcpus == 0 {
			vcpus = int(pool[0].Status.Capacity.Cpu().Value())
		}
		need := surge * vcpus
		if need > s.CPUQuotaFree {
			out = append(out, Finding{Rule: RuleSurgeCapacity, Severity: Blocker, Class: 1, Object: obj,
				Evidence: fmt.Sprintf("the surge nodes need %d vCPUs (%d × %d) and the quota has %d left: the upgrade fails adding them", need, surge, vcpus, s.CPUQuotaFree),
				Fix:      "raise the regional vCPU quota, or lower maxSurge (the upgrade then takes more batches)"})
		} else {
			notes = append(notes, fmt.Sprintf("%d of %d free vCPUs", need, s.CPUQuotaFree))
		}
	}
	if s.Subnet != "" {
		_, subnet, _ := net.ParseCIDR(s.Subnet)
		ones, bits := subnet.Mask.Size()
		size := 1<<(bits-ones) - azureReserved
		per := s.AddressesPerNode
		if per == 0 {
			per = int(pool[0].Status.Allocatable.Pods().Value()) + 1
		}
		used := s.SubnetUsed
		if used == 0 {
			used = len(pool) * per
		}
		need := used + surge*per
		if need > size {
			out = append(out, Finding{Rule: RuleSurgeCapacity, Severity: Blocker, Class: 1, Object: obj,
				Evidence: fmt.Sprintf("subnet %s has %d usable addresses; %d are used and the surge nodes take %d more (%d × %d per node): the upgrade fails adding them", s.Subnet, size, used, surge*per, surge, per),
				Fix:      "lower maxSurge, lower the pool's maxPods, move to a larger subnet, or to Azure CNI overlay (a node then takes one address)"})
		} else {
			notes = append(notes, fmt.Sprintf("%d of %d subnet addresses", need, size))
		}
	}
	if len(out) == 0 && len(notes) > 0 {
		out = append(out, Finding{Rule: RuleSurgeCapacity, Severity: Info, Class: 1, Object: obj,
			Evidence: "the surge fits: " + joinAnd(notes), Fix: "nothing to do"})
	}
	return out, ""
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}
