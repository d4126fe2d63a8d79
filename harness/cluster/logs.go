package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kinderrors "sigs.k8s.io/kind/pkg/errors"
	kindexec "sigs.k8s.io/kind/pkg/exec"
)

// ExportLogs writes kind's log bundle (journals, containerd and kubelet
// logs, /var/log, container inspections) for every node to dir.
//
// kind also lists each node's images with `crictl images`. Our node images
// have no crictl (cri-tools is not packaged for Debian bookworm), so kind's
// error about that one file is dropped and images.log is written from
// containerd's own `ctr` instead: without this, every export would report a
// failure although the bundle is complete.
func (c *Cluster) ExportLogs(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	nodes, err := c.kind.ListInternalNodes(c.cfg.Name)
	if err != nil {
		return err
	}
	// kind collects from a VM node's container, which holds only QEMU:
	// its errors there are dropped and the VM's own journal is collected
	// through vmexec instead.
	var vms []string
	for _, n := range nodes {
		if isVM(ctx, n.String()) {
			vms = append(vms, n.String())
		}
	}
	var errs []error
	for _, e := range withoutCrictl(c.kind.CollectLogs(c.cfg.Name, dir)) {
		if !slices.ContainsFunc(vms, func(vm string) bool { return strings.Contains(e.Error(), vm) }) {
			errs = append(errs, e)
		}
	}
	for _, n := range nodes {
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		nodeDir := filepath.Join(dir, n.String())
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		logs := map[string][]string{"images.log": {"ctr", "--namespace=k8s.io", "images", "ls"}}
		vm := slices.Contains(vms, n.String())
		if vm {
			logs["journal.log"] = []string{"journalctl", "--no-pager", "--boot"}
		}
		node := asVM(n, vm)
		for file, argv := range logs {
			f, err := os.Create(filepath.Join(nodeDir, file))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := node.Command(argv[0], argv[1:]...).SetStdout(f).SetStderr(f).Run(); err != nil {
				errs = append(errs, fmt.Errorf("%s of node %s: %w", argv[0], n, err))
			}
			f.Close()
		}
	}
	return errors.Join(errs...)
}

// withoutCrictl splits kind's aggregated log-collection error into its
// parts, however deeply kind nested them, and leaves out the failed
// `crictl images` runs.
func withoutCrictl(err error) []error {
	if err == nil {
		return nil
	}
	if parts := kinderrors.Errors(err); parts != nil {
		var keep []error
		for _, p := range parts {
			keep = append(keep, withoutCrictl(p)...)
		}
		return keep
	}
	if run := (*kindexec.RunError)(nil); errors.As(err, &run) && slices.Contains(run.Command, "crictl") {
		return nil
	}
	return []error{err}
}
