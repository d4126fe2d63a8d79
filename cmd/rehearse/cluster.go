package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/kube-rehearse/rehearse/fixtures/netcheck"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/hostroute"
	"github.com/kube-rehearse/rehearse/harness/smoke"
)

// Names of clusters this harness makes start with this prefix; `cluster
// down --all` only ever touches those.
const ownPrefix = "rehearse-"

const defaultDevCluster = "rehearse-dev"

func newClusterCmd(stdout, stderr io.Writer) *cobra.Command {
	return group("cluster", "Manage a local kind cluster for rehearsals",
		newClusterUpCmd(stdout, stderr),
		newClusterSmokeCmd(stdout, stderr),
		newClusterAddWorkerCmd(stdout, stderr),
		newClusterRemoveNodeCmd(stderr),
		newClusterDownCmd(stdout, stderr),
	)
}

// portFlags are the NodePort made reachable on the host's loopback.
type portFlags struct{ nodePort, hostPort int }

func (p *portFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.nodePort, "node-port", 30080, "NodePort made reachable from the host")
	cmd.Flags().IntVar(&p.hostPort, "host-port", 30080, "port on 127.0.0.1 that reaches --node-port")
}

func newClusterUpCmd(stdout, stderr io.Writer) *cobra.Command {
	from, _ := nodeimage.Versions()
	var (
		name, version    string
		workers          int
		ports            portFlags
		replace, offline bool
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create a kind cluster: one control plane and --workers workers",
		Long: `up creates a kind cluster from our node image (built offline if need be, see
` + "`rehearse image node`" + `) and waits until every node is Ready. It prints the
KUBECONFIG to use with kubectl. An existing cluster of the same name is never
deleted unless --replace is given.`,
		Example: "  rehearse cluster up --name rehearse-dev --workers 2",
		Args:    cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			cfg := cluster.Config{
				Name: name, Workers: workers, ReplaceExisting: replace,
				NodePorts: []cluster.PortMapping{{NodePort: int32(ports.nodePort), HostPort: int32(ports.hostPort)}},
			}
			if err := checkClusterConfig(cfg, version); err != nil {
				return err
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			ctx := in.work
			if err := engine.Ensure(ctx, engine.Options{Out: stderr}); err != nil {
				return err
			}
			img, err := nodeimage.Image(ctx, nodeimage.Options{Version: version, Offline: offline, Out: stderr})
			if err != nil {
				return err
			}
			cfg.Image = img.Image
			c := cluster.New(cfg)
			start := time.Now()
			if err := c.Create(ctx); err != nil {
				return fmt.Errorf("%w (what was created is deleted by `rehearse cluster down --name %s`)", err, name)
			}
			fmt.Fprintf(stderr, "cluster %s: %d nodes Ready in %s (node image %s)\n", name, workers+1, time.Since(start).Round(time.Second), img.Image)
			fmt.Fprintf(stdout, "cluster %s is ready: export KUBECONFIG=%s\n", name, c.Kubeconfig())
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", defaultDevCluster, "kind cluster name")
	f.IntVar(&workers, "workers", 2, "number of worker nodes (0 to 20)")
	f.StringVar(&version, "k8s-version", from, "Kubernetes version of every node")
	ports.register(cmd)
	f.BoolVar(&replace, "replace", false, "delete an existing cluster of the same name first")
	f.BoolVar(&offline, "offline", false, "use our offline-built node image even if kindest/node exists locally")
	return cmd
}

// checkClusterConfig validates flags before anything is started or built.
func checkClusterConfig(cfg cluster.Config, version string) error {
	var problems []string
	if _, err := nodeimage.ParseVersion(version); err != nil {
		problems = append(problems, "--k8s-version: "+err.Error())
	}
	problems = append(problems, clusterProblems(cfg)...)
	if len(problems) > 0 {
		return usageErrorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

// clusterProblems are what cluster.Config.Validate finds, the node image
// aside: it is found (or built) after validation.
func clusterProblems(cfg cluster.Config) []string {
	var problems []string
	cfg.Image = "checked-later"
	if cfg.Workers < 0 {
		// Said here, and not by Validate, which would add a confusing
		// complaint about worker images for a negative count.
		problems = append(problems, fmt.Sprintf("--workers %d: choose 0 to 20 on one machine", cfg.Workers))
		cfg.Workers = 0
	}
	if err := cfg.Validate(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// checkName validates a cluster name given to a command that only connects.
func checkName(name string) error {
	if err := (cluster.Config{Name: name, Image: "x"}).Validate(); err != nil {
		return usageError(err)
	}
	return nil
}

func newClusterSmokeCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		name  string
		ports portFlags
	)
	cmd := &cobra.Command{
		Use:   "smoke",
		Short: "Check a cluster: nodes Ready, DNS, pod traffic across nodes, the NodePort on 127.0.0.1",
		Long: `smoke runs the test bed's checks on a cluster made by ` + "`rehearse cluster up`" + `:
every node Ready, CoreDNS answering from a pod, a pod on one worker reaching a
Service backed on another (the first and the last worker by name: a worker
added later, such as a VM worker, is the far end), and the NodePort answering
on 127.0.0.1 through that worker. A failed check exits 1.`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if err := checkName(name); err != nil {
				return err
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			c := cluster.New(cluster.Config{Name: name})
			if err := c.Connect(in.work); err != nil {
				return err
			}
			return smokeChecks(in.work, stdout, c, ports)
		}),
	}
	cmd.Flags().StringVar(&name, "name", defaultDevCluster, "kind cluster name")
	// --workers used to name the nodes the checks use (<cluster>-worker,
	// -worker2); the checks now find them in the cluster. Accepted, ignored.
	cmd.Flags().Int("workers", 0, "ignored: the checks find the cluster's workers")
	_ = cmd.Flags().MarkDeprecated("workers", "the checks find the cluster's workers themselves")
	ports.register(cmd)
	return cmd
}

// smokeChecks are the test bed's checks: DNS, pod traffic across nodes
// through a Service, and the NodePort on the host. A failed check exits 1;
// failing to prepare them exits 3.
func smokeChecks(ctx context.Context, stdout io.Writer, c *cluster.Cluster, ports portFlags) error {
	root, err := engine.FindModuleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rehearse-smoke-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive, err := netcheck.BuildArchive(ctx, root, dir)
	if err != nil {
		return err
	}
	if err := c.LoadImageArchive(ctx, archive); err != nil {
		return err
	}
	// A namespace of its own per run: a previous run's may still be terminating.
	ns := fmt.Sprintf("rehearse-smoke-%d", time.Now().Unix())
	chk := smoke.Checker{Client: c.Client(), Namespace: ns, Image: netcheck.Image}
	if err := chk.Prepare(ctx); err != nil {
		return err
	}
	defer func() { _ = chk.Cleanup(context.WithoutCancel(ctx)) }()
	w1, w2, err := chk.Nodes(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Smoke checks:")
	for _, step := range []struct {
		name  string
		check func() error
	}{
		{"all nodes Ready", func() error { return c.WaitReady(ctx, time.Minute) }},
		{"CoreDNS resolves kubernetes.default from a pod on " + w1, func() error { return chk.DNS(ctx, w1) }},
		{"pod on " + w1 + " reaches a Service backed on " + w2, func() error { return chk.CrossNode(ctx, w1, w2) }},
		{fmt.Sprintf("NodePort %d answers on 127.0.0.1:%d", ports.nodePort, ports.hostPort), func() error {
			return chk.NodePort(ctx, w2, int32(ports.nodePort), int32(ports.hostPort))
		}},
	} {
		if err := smoke.Step(step.name, step.check); err != nil {
			if ctx.Err() != nil {
				return err // interrupted, not failed
			}
			return &exitError{code: exitFailed, err: err}
		}
	}
	return nil
}

func newClusterAddWorkerCmd(stdout, stderr io.Writer) *cobra.Command {
	from, _ := nodeimage.Versions()
	var (
		name, node, version, cgroup, accel string
		vm                                 bool
	)
	cmd := &cobra.Command{
		Use:   "add-worker",
		Short: "Join a new worker, possibly at another Kubernetes version (as a surge upgrade does) or as a VM of another cgroup mode",
		Long: `add-worker starts a node container like kind's own and joins it with kubeadm,
at any version there is a node image for. The new node first gets, from the
control plane, every image the cluster runs that its own image lacks, since
there is no registry to pull them from.

With --vm the worker is a QEMU virtual machine booted from the same node image
(see ` + "`rehearse image vm`" + `), in the cgroup mode --cgroup asks for, whatever this
machine's own: the only way to rehearse a node pool moving from cgroup v1 to
v2 (or back) on one host. It sits in a container on the cluster's network
like the other nodes, so deleting the cluster or the node removes it. QEMU
uses KVM when a guest runs on it here, otherwise software emulation (TCG,
about 15 times slower: the join takes minutes); --accel forces one.`,
		Example: `  rehearse cluster add-worker --name rehearse-dev --k8s-version v1.34.4
  rehearse cluster add-worker --name rehearse-dev --vm --cgroup v2`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if err := checkName(name); err != nil {
				return err
			}
			if _, err := nodeimage.ParseVersion(version); err != nil {
				return usageErrorf("--k8s-version: %v", err)
			}
			if !vm && (cmd.Flags().Changed("cgroup") || cmd.Flags().Changed("accel")) {
				return usageErrorf("--cgroup and --accel are for VM workers: add --vm")
			}
			if cgroup != "v1" && cgroup != "v2" {
				return usageErrorf("--cgroup %q: use v1 or v2", cgroup)
			}
			if accel != "" && accel != "kvm" && accel != "tcg" {
				return usageErrorf("--accel %q: use kvm or tcg (or leave it out to use KVM when it works here)", accel)
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			ctx := in.work
			c := cluster.New(cluster.Config{Name: name})
			if err := c.Connect(ctx); err != nil {
				return err
			}
			img, err := nodeimage.Image(ctx, nodeimage.Options{Version: version, Out: stderr})
			if err != nil {
				return err
			}
			spec := cluster.WorkerSpec{Name: node, Image: img.Image}
			kind := version
			if vm {
				images, err := nodeimage.VMImages(ctx, nodeimage.VMOptions{NodeImage: img.Image, Out: stderr})
				if err != nil {
					return err
				}
				spec.VM = &cluster.VMNode{Runner: images.Runner, Disk: images.Disk, Cgroup: cgroup, Accel: accel}
				if accel == "" {
					var why string
					spec.VM.Accel, why = cluster.VMAccel(ctx, images.Runner)
					fmt.Fprintf(stderr, "VM accelerator: %s (%s)\n", spec.VM.Accel, why)
				}
				kind = fmt.Sprintf("%s, VM, cgroup %s, %s, kernel %s", version, cgroup, spec.VM.Accel, images.Kernel)
			}
			start := time.Now()
			added, err := c.AddWorker(ctx, spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "worker %s (%s) Ready in %s\n", added, kind, time.Since(start).Round(time.Second))
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", defaultDevCluster, "kind cluster to add the worker to")
	cmd.Flags().StringVar(&node, "node", "", "name of the new node (default: <cluster>-worker<N>)")
	cmd.Flags().StringVar(&version, "k8s-version", from, "Kubernetes version of the new node")
	cmd.Flags().BoolVar(&vm, "vm", false, "make the worker a QEMU virtual machine (for --cgroup)")
	cmd.Flags().StringVar(&cgroup, "cgroup", "v2", "cgroup mode of a VM worker: v2 or v1")
	cmd.Flags().StringVar(&accel, "accel", "", "QEMU accelerator of a VM worker: kvm or tcg (default: KVM when it works here)")
	return cmd
}

func newClusterRemoveNodeCmd(stderr io.Writer) *cobra.Command {
	var name, node string
	cmd := &cobra.Command{
		Use:     "remove-node",
		Short:   "Delete a node: its Node object and its container (no drain)",
		Example: "  rehearse cluster remove-node --name rehearse-dev --node rehearse-dev-worker3",
		Args:    cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if err := checkName(name); err != nil {
				return err
			}
			if node == "" {
				return usageErrorf("say which node with --node (e.g. --node %s-worker2)", name)
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			c := cluster.New(cluster.Config{Name: name})
			if err := c.Connect(in.work); err != nil {
				return err
			}
			return c.RemoveNode(in.work, node)
		}),
	}
	cmd.Flags().StringVar(&name, "name", defaultDevCluster, "kind cluster")
	cmd.Flags().StringVar(&node, "node", "", "node to remove (Node object and container)")
	return cmd
}

func newClusterDownCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		name string
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Delete a kind cluster (or every rehearse-* cluster) and its host routes",
		Long: `down deletes a kind cluster, its kubeconfig file, and what a rehearsal may
have left: host routes to its pods, the source container of a control-plane
upgrade that was killed midway. --all deletes every kind cluster whose name
starts with ` + ownPrefix + `, and no other.`,
		Example: "  rehearse cluster down --name rehearse-dev\n  rehearse cluster down --all",
		Args:    cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if all && cmd.Flags().Changed("name") {
				return usageErrorf("give --name or --all, not both")
			}
			if !all {
				if err := checkName(name); err != nil {
					return err
				}
				return deleteCluster(name)
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			if !engine.Answers(in.work) {
				return nil // no engine, no clusters
			}
			names, err := kindcluster.NewProvider(kindcluster.ProviderWithDocker()).List()
			if err != nil {
				return err
			}
			for _, n := range names {
				if strings.HasPrefix(n, ownPrefix) {
					fmt.Fprintln(stdout, "deleting cluster", n)
					if err := deleteCluster(n); err != nil {
						return err
					}
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", defaultDevCluster, "kind cluster to delete")
	cmd.Flags().BoolVar(&all, "all", false, "delete every kind cluster whose name starts with "+ownPrefix)
	return cmd
}

// deleteCluster deletes the cluster, then its host routes. Deleting the
// cluster removes them too; the explicit Cleanup keeps `cluster down` the
// one command that leaves the host clean whatever the cluster package does,
// and costs nothing when there is nothing recorded.
func deleteCluster(name string) error {
	if err := cluster.New(cluster.Config{Name: name}).Delete(context.Background()); err != nil {
		return err
	}
	if err := hostroute.Cleanup(name); err != nil {
		return fmt.Errorf("cluster %s deleted, but its host routes could not be removed: %w (`rehearse restore` retries)", name, err)
	}
	return nil
}
