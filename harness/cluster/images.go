package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// controlPlaneOnly are images only the control plane runs as static pods;
// workers never need them.
var controlPlaneOnly = []string{"/kube-apiserver:", "/kube-controller-manager:", "/kube-scheduler:", "/etcd:"}

// syncImages copies into node `to` every image of node `from`'s containerd
// that `to` lacks (control-plane components aside). Without a registry this
// is how a new node gets what the cluster runs: kube-proxy and CoreDNS at
// the cluster's version (a newer node image carries its own version's), the
// pod network, and every image loaded into the cluster for the application.
func syncImages(ctx context.Context, from, to string) error {
	return copyImages(ctx, from, to, func(ref string) bool { return !isControlPlaneOnly(ref) })
}

// copyImages copies into node `to` the images of node `from` that `to`
// lacks and want accepts.
func copyImages(ctx context.Context, from, to string, want func(ref string) bool) error {
	have, err := imageRefs(ctx, to)
	if err != nil {
		return err
	}
	offered, err := imageRefs(ctx, from)
	if err != nil {
		return err
	}
	var missing []string
	for ref := range offered {
		if !have[ref] && want(ref) {
			missing = append(missing, ref)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	export := exec.CommandContext(ctx, "docker", ExecArgs(ctx, from, false, append([]string{"ctr", "--namespace=k8s.io", "images", "export", "-"}, sorted(missing)...)...)...)
	imp := exec.CommandContext(ctx, "docker", ExecArgs(ctx, to, true, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "-")...)
	pipe, err := export.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	var exportErr, importErr strings.Builder
	export.Stderr, imp.Stderr = &exportErr, &importErr
	if err := export.Start(); err != nil {
		return err
	}
	if err := imp.Run(); err != nil {
		_ = export.Wait()
		return fmt.Errorf("importing %d images into %s: %v: %s", len(missing), to, err, strings.TrimSpace(importErr.String()))
	}
	if err := export.Wait(); err != nil {
		return fmt.Errorf("exporting images from %s: %v: %s", from, err, strings.TrimSpace(exportErr.String()))
	}
	return nil
}

// imageRefs lists a node's image names (digest-only references aside).
func imageRefs(ctx context.Context, node string) (map[string]bool, error) {
	out, err := dockerOutput(ctx, ExecArgs(ctx, node, false, "ctr", "--namespace=k8s.io", "images", "list", "--quiet")...)
	if err != nil {
		return nil, err
	}
	refs := map[string]bool{}
	for _, ref := range strings.Fields(out) {
		if !strings.HasPrefix(ref, "sha256:") && !strings.Contains(ref, "@sha256:") {
			refs[ref] = true
		}
	}
	return refs, nil
}

func isControlPlaneOnly(ref string) bool {
	for _, c := range controlPlaneOnly {
		if strings.Contains(ref, c) {
			return true
		}
	}
	return false
}
