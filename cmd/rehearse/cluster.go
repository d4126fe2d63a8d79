package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/kube-rehearse/rehearse/fixtures/netcheck"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/smoke"
)

// Names of clusters this harness makes start with this prefix; `cluster
// down --all` only ever touches those.
const ownPrefix = "rehearse-"

type clusterFlags struct {
	name     string
	workers  int
	version  string
	nodePort int
	hostPort int
	replace  bool
	offline  bool
}

func (f *clusterFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}, defaultName string) {
	from, _ := nodeimage.Versions()
	fs.StringVar(&f.name, "name", defaultName, "kind cluster name")
	fs.IntVar(&f.workers, "workers", 2, "number of worker nodes")
	fs.StringVar(&f.version, "k8s-version", from, "Kubernetes version of every node")
	fs.IntVar(&f.nodePort, "node-port", 30080, "NodePort made reachable from the host")
	fs.IntVar(&f.hostPort, "host-port", 30080, "port on 127.0.0.1 that reaches --node-port")
	fs.BoolVar(&f.replace, "replace", false, "delete an existing cluster of the same name first")
	fs.BoolVar(&f.offline, "offline", false, "use our offline-built node image even if kindest/node exists locally")
}

func (f clusterFlags) config(image string) cluster.Config {
	return cluster.Config{
		Name: f.name, Image: image, Workers: f.workers, ReplaceExisting: f.replace,
		NodePorts: []cluster.PortMapping{{NodePort: int32(f.nodePort), HostPort: int32(f.hostPort)}},
	}
}

// validate checks flags before anything is started or built.
func (f clusterFlags) validate() error {
	if _, err := nodeimage.ParseVersion(f.version); err != nil {
		return err
	}
	return f.config("placeholder").Validate()
}

func runCluster(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"cluster: say what to do: up, smoke or down"}
	}
	switch args[0] {
	case "up":
		return clusterUp(ctx, args[1:])
	case "smoke":
		return clusterSmoke(ctx, args[1:])
	case "down":
		return clusterDown(ctx, args[1:])
	case "add-worker":
		return clusterAddWorker(ctx, args[1:])
	case "remove-node":
		return clusterRemoveNode(ctx, args[1:])
	}
	return usageError{fmt.Sprintf("cluster: unknown action %q: use up, smoke, add-worker, remove-node or down", args[0])}
}

// clusterAddWorker joins a new worker, possibly at another Kubernetes
// version (the way a surge upgrade brings in new nodes).
func clusterAddWorker(ctx context.Context, args []string) error {
	fs := newFlags("cluster add-worker")
	from, _ := nodeimage.Versions()
	name := fs.String("name", "rehearse-dev", "kind cluster to add the worker to")
	node := fs.String("node", "", "name of the new node (default: <cluster>-worker<N>)")
	version := fs.String("k8s-version", from, "Kubernetes version of the new node")
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := nodeimage.ParseVersion(*version); err != nil {
		return err
	}
	c := cluster.New(cluster.Config{Name: *name})
	if err := c.Connect(ctx); err != nil {
		return err
	}
	img, err := nodeimage.Image(ctx, nodeimage.Options{Version: *version})
	if err != nil {
		return err
	}
	start := time.Now()
	added, err := c.AddWorker(ctx, cluster.WorkerSpec{Name: *node, Image: img.Image})
	if err != nil {
		return err
	}
	fmt.Printf("worker %s (%s) Ready in %s\n", added, *version, time.Since(start).Round(time.Second))
	return nil
}

func clusterRemoveNode(ctx context.Context, args []string) error {
	fs := newFlags("cluster remove-node")
	name := fs.String("name", "rehearse-dev", "kind cluster")
	node := fs.String("node", "", "node to remove (Node object and container)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *node == "" {
		return usageError{"cluster remove-node: say which node with --node"}
	}
	c := cluster.New(cluster.Config{Name: *name})
	if err := c.Connect(ctx); err != nil {
		return err
	}
	return c.RemoveNode(ctx, *node)
}

func clusterUp(ctx context.Context, args []string) error {
	var f clusterFlags
	fs := newFlags("cluster up")
	f.register(fs, "rehearse-dev")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := up(ctx, f)
	if err != nil {
		return err
	}
	fmt.Printf("cluster %s is ready: export KUBECONFIG=%s\n", c.Name(), c.Kubeconfig())
	return nil
}

// up validates, prepares the engine and node image, and creates the cluster.
func up(ctx context.Context, f clusterFlags) (*cluster.Cluster, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	if err := engine.Ensure(ctx, engine.Options{}); err != nil {
		return nil, err
	}
	img, err := nodeimage.Image(ctx, nodeimage.Options{Version: f.version, Offline: f.offline})
	if err != nil {
		return nil, err
	}
	c := cluster.New(f.config(img.Image))
	start := time.Now()
	if err := c.Create(ctx); err != nil {
		// kind removes what it made when its own steps fail, but a cluster
		// that came up and then never got Ready is still there: hand it back
		// so the caller can delete it.
		return c, err
	}
	fmt.Printf("cluster %s: %d nodes Ready in %s (node image %s)\n", c.Name(), f.workers+1, time.Since(start).Round(time.Second), img.Image)
	return c, nil
}

func clusterSmoke(ctx context.Context, args []string) error {
	var f clusterFlags
	fs := newFlags("cluster smoke")
	f.register(fs, "rehearse-dev")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := cluster.New(cluster.Config{Name: f.name})
	if err := c.Connect(ctx); err != nil {
		return err
	}
	return smokeChecks(ctx, c, f)
}

// smokeChecks are the test bed's checks: DNS, pod traffic across nodes
// through a Service, and the NodePort on the host.
func smokeChecks(ctx context.Context, c *cluster.Cluster, f clusterFlags) error {
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
	w1, w2 := f.name+"-worker", f.name+"-worker2"
	if f.workers < 2 {
		w2 = w1
	}
	if f.workers < 1 {
		w1, w2 = f.name+"-control-plane", f.name+"-control-plane"
	}
	fmt.Println("Smoke checks:")
	for _, step := range []struct {
		name  string
		check func() error
	}{
		{"all nodes Ready", func() error { return c.WaitReady(ctx, time.Minute) }},
		{"CoreDNS resolves kubernetes.default from a pod on " + w1, func() error { return chk.DNS(ctx, w1) }},
		{"pod on " + w1 + " reaches a Service backed on " + w2, func() error { return chk.CrossNode(ctx, w1, w2) }},
		{fmt.Sprintf("NodePort %d answers on 127.0.0.1:%d", f.nodePort, f.hostPort), func() error {
			return chk.NodePort(ctx, w2, int32(f.nodePort), int32(f.hostPort))
		}},
	} {
		if err := smoke.Step(step.name, step.check); err != nil {
			return err
		}
	}
	return nil
}

func clusterDown(ctx context.Context, args []string) error {
	fs := newFlags("cluster down")
	name := fs.String("name", "rehearse-dev", "kind cluster to delete")
	all := fs.Bool("all", false, "delete every kind cluster whose name starts with "+ownPrefix)
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*all {
		return cluster.New(cluster.Config{Name: *name}).Delete(ctx)
	}
	if !engine.Answers(ctx) {
		return nil // no engine, no clusters
	}
	names, err := kindcluster.NewProvider(kindcluster.ProviderWithDocker()).List()
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, ownPrefix) {
			fmt.Println("deleting cluster", n)
			if err := cluster.New(cluster.Config{Name: n}).Delete(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// runRehearsal is `make rehearse`: a cluster up, the smoke checks, then the
// application (the rehearsal app, or the user's own) restarted under load and
// judged; the cluster is deleted again at the end, also when something fails
// or on Ctrl-C.
func runRehearsal(ctx context.Context, args []string) error {
	var f clusterFlags
	fs := newFlags("run")
	f.register(fs, "rehearse-run")
	keep := fs.Bool("keep", false, "keep the cluster after the rehearsal (delete it with `rehearse cluster down --name ...`)")
	var r rehearsalFlags
	r.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := r.validate(); err != nil {
		return err
	}
	f.replace = true // the run's own cluster name: a leftover is ours
	c, err := up(ctx, f)
	if c != nil && !*keep {
		defer func() {
			fmt.Println("deleting cluster", c.Name())
			_ = c.Delete(context.WithoutCancel(ctx))
		}()
	}
	if err != nil {
		return err
	}
	if err := smokeChecks(ctx, c, f); err != nil {
		return err
	}
	return r.rehearse(ctx, c, f)
}
