package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// UpgradeControlPlane upgrades the control-plane node in place to the
// Kubernetes version of image, a node image of that version (kind itself
// cannot upgrade a cluster; this is how kubeadm clusters are upgraded):
//
//  1. the new version's kubeadm, kubelet and kubectl and its control-plane
//     images (API server, controller manager, scheduler, kube-proxy, etcd,
//     CoreDNS, pause) are taken from image: a container of it runs only
//     its containerd, and the images the node lacks are copied over;
//  2. `kubeadm upgrade apply <version>` runs inside the node: it rewrites
//     the static pod manifests one component at a time (the API server is
//     unavailable while its pod restarts) and upgrades kube-proxy and
//     CoreDNS;
//  3. the node's kubelet and kubectl are replaced and the kubelet restarted.
//
// kubeadm's output goes to log. It returns when the node reports the new
// version and is Ready, the API server answers steadily, and kube-proxy and
// CoreDNS run their new version on every node.
func (c *Cluster) UpgradeControlPlane(ctx context.Context, image, version string, log io.Writer) error {
	if c.client == nil {
		return fmt.Errorf("cluster %q is not connected: call Create or Connect first", c.cfg.Name)
	}
	if log == nil {
		log = io.Discard
	}
	cp := c.cfg.Name + "-control-plane"
	source := c.cfg.Name + "-upgrade-source"
	_ = c.removeUpgradeSource(context.WithoutCancel(ctx))
	// Only containerd runs in the source container: enough to export its
	// preloaded images. /var is a volume as in kind's nodes, so containerd's
	// snapshotter does not sit on the image's own overlay.
	if err := docker(ctx, "run", "--detach", "--name", source, "--privileged", "--tmpfs", "/run", "--volume", "/var",
		"--label", upgradeSourceLabel+"="+c.cfg.Name, "--entrypoint", "sh", image, "-c", "exec containerd"); err != nil {
		return fmt.Errorf("starting the source of version %s's files: %w", version, err)
	}
	defer func() { _ = c.removeUpgradeSource(context.WithoutCancel(ctx)) }()
	if err := waitContainerd(ctx, source, 30*time.Second); err != nil {
		return fmt.Errorf("containerd of image %s did not answer: %w", image, err)
	}
	// kubeadm also rolls kube-proxy and CoreDNS to the new version: every
	// node needs their images, or its kube-proxy pod waits for a pull that
	// cannot happen (there is no registry). The copies run side by side.
	workers, err := dockerOutput(ctx, "ps", "--filter", "label="+kindClusterLabel+"="+c.cfg.Name, "--filter", "label="+kindRoleLabel+"=worker", "--format", "{{.Names}}")
	if err != nil {
		return err
	}
	copies, cctx := errgroup.WithContext(ctx)
	copies.Go(func() error {
		if err := copyImages(cctx, source, cp, func(string) bool { return true }); err != nil {
			return fmt.Errorf("giving %s the images of %s: %w", cp, version, err)
		}
		return nil
	})
	for _, w := range strings.Fields(workers) {
		copies.Go(func() error {
			if err := syncImages(cctx, source, w); err != nil {
				return fmt.Errorf("giving %s the images of %s: %w", w, version, err)
			}
			return nil
		})
	}
	if err := copies.Wait(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "rehearse-upgrade-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, bin := range []string{"kubeadm", "kubelet", "kubectl"} {
		local := filepath.Join(tmp, bin)
		if err := docker(ctx, "cp", source+":/usr/bin/"+bin, local); err != nil {
			return fmt.Errorf("taking %s %s from image %s: %w", bin, version, image, err)
		}
		// Beside the running binary, then renamed over it: a binary in use
		// cannot be written to, but it can be replaced.
		if err := docker(ctx, "cp", local, cp+":/usr/bin/"+bin+".new"); err != nil {
			return err
		}
	}
	if err := docker(ctx, "exec", cp, "mv", "-f", "/usr/bin/kubeadm.new", "/usr/bin/kubeadm"); err != nil {
		return err
	}
	apply := []string{"exec", cp, "kubeadm", "upgrade", "apply", version, "--yes",
		// The preflight checks pull images (there is no registry: they are
		// in the node already) and compare versions the rehearsal chose.
		"--ignore-preflight-errors=all",
		// etcd stays at its version. AKS manages its control plane's
		// store out of the user's sight, and kind's single etcd member
		// restarting takes the API away for over a minute (measured:
		// 74 s) without rehearsing anything about the workloads; kubeadm
		// supports the older etcd with the newer API server.
		"--etcd-upgrade=false",
		"--v=1"}
	out, err := dockerOutput(ctx, apply...)
	fmt.Fprint(log, out)
	if err != nil {
		return fmt.Errorf("kubeadm upgrade apply %s on %s: %w", version, cp, err)
	}
	for _, bin := range []string{"kubelet", "kubectl"} {
		if err := docker(ctx, "exec", cp, "mv", "-f", "/usr/bin/"+bin+".new", "/usr/bin/"+bin); err != nil {
			return err
		}
	}
	if err := docker(ctx, "exec", cp, "systemctl", "restart", "kubelet"); err != nil {
		return fmt.Errorf("restarting the kubelet of %s: %w", cp, err)
	}
	if err := c.waitNodeVersion(ctx, cp, version, 3*time.Minute); err != nil {
		return err
	}
	// The new kubelet restarts the static pods whose spec hash it computes
	// differently, the API server among them, and a freshly started API
	// server refuses requests until its authorizer has synced: the upgrade
	// is over when the API server has answered steadily for a while.
	if err := c.waitAPISteady(ctx, 15*time.Second, 3*time.Minute); err != nil {
		return err
	}
	// kubeadm only rewrites the kube-proxy DaemonSet and the CoreDNS
	// Deployment; their pods roll afterwards, one node at a time. AKS
	// finishes its add-ons before it touches a node pool, and a kube-proxy
	// restarting in the middle of the pool's drains would freeze the
	// Service rules of its node for seconds: wait for both rollouts here.
	return c.waitRollouts(ctx, 5*time.Minute)
}

// upgradeSourceLabel marks the container UpgradeControlPlane takes the new
// version's files from, so that Delete finds one a killed upgrade left.
const upgradeSourceLabel = kindClusterLabel + "-upgrade-source"

// removeUpgradeSource removes that container, if there is one.
func (c *Cluster) removeUpgradeSource(ctx context.Context) error {
	ids, err := dockerOutput(ctx, "ps", "--all", "--quiet", "--filter", "label="+upgradeSourceLabel+"="+c.cfg.Name)
	if err != nil || strings.TrimSpace(ids) == "" {
		return err
	}
	return docker(ctx, append([]string{"rm", "--force", "--volumes"}, strings.Fields(ids)...)...)
}

// waitRollouts waits until the kube-proxy DaemonSet and the CoreDNS
// Deployment run their new pods everywhere.
func (c *Cluster) waitRollouts(ctx context.Context, timeout time.Duration) error {
	var why string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		ds, err := c.client.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		st := ds.Status
		if ds.Generation > st.ObservedGeneration || st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled {
			why = fmt.Sprintf("kube-proxy: %d of %d pods updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable)
			return false, nil
		}
		dep, err := c.client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		dst := dep.Status
		want := int32(1)
		if dep.Spec.Replicas != nil {
			want = *dep.Spec.Replicas
		}
		if dep.Generation > dst.ObservedGeneration || dst.UpdatedReplicas < want || dst.AvailableReplicas < want || dst.Replicas > want {
			why = fmt.Sprintf("coredns: %d of %d replicas updated, %d available, %d in all", dst.UpdatedReplicas, want, dst.AvailableReplicas, dst.Replicas)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("the add-ons did not finish rolling to the new version within %s: %s", timeout, why)
	}
	return nil
}

// waitAPISteady waits until the API server has answered its readiness
// endpoint and an authorized read without a failure for steady.
func (c *Cluster) waitAPISteady(ctx context.Context, steady, timeout time.Duration) error {
	var since time.Time
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(rctx).Error()
		if err == nil {
			_, err = c.client.CoreV1().ConfigMaps("kube-system").List(rctx, metav1.ListOptions{Limit: 1})
		}
		if err != nil {
			since, last = time.Time{}, err
			return false, nil
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) >= steady, nil
	})
	if err != nil {
		return fmt.Errorf("the API server did not answer steadily for %s within %s after the upgrade (last error: %v)", steady, timeout, last)
	}
	return nil
}

// waitNodeVersion waits until node is Ready with its kubelet at version.
func (c *Cluster) waitNodeVersion(ctx context.Context, name, version string, timeout time.Duration) error {
	var seen string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		seen = n.Status.NodeInfo.KubeletVersion
		return NodeReady(n) && strings.TrimPrefix(seen, "v") == strings.TrimPrefix(version, "v"), nil
	})
	if err != nil {
		return fmt.Errorf("node %s did not become Ready at %s within %s (kubelet reports %q)", name, version, timeout, seen)
	}
	return nil
}
