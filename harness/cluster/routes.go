package cluster

import (
	"errors"
	"fmt"

	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/kube-rehearse/rehearse/harness/hostroute"
)

// RemoveStaleRoutes removes the host routes recorded for kind clusters that
// no longer exist, and returns the names of those clusters. A run killed
// before it could delete its cluster's routes leaves them behind with their
// record (the kernel keeps routes until a reboot, whatever happens to the
// node containers); they route to nobody, and left alone they would refuse
// every later cluster on the same pod range. The caller must know that
// Docker answers: which clusters exist only Docker can say.
func RemoveStaleRoutes() ([]string, error) {
	recorded, err := hostroute.Recorded()
	if err != nil || len(recorded) == 0 {
		return nil, err
	}
	names, err := kindcluster.NewProvider(kindcluster.ProviderWithDocker()).List()
	if err != nil {
		return nil, fmt.Errorf("listing kind clusters: %w", err)
	}
	exists := map[string]bool{}
	for _, n := range names {
		exists[n] = true
	}
	var removed []string
	var errs []error
	for _, c := range recorded {
		if exists[c] {
			continue
		}
		if err := hostroute.Cleanup(c); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, c)
	}
	return removed, errors.Join(errs...)
}
