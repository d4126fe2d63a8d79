package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/incluster"
)

func newEngineCmd(stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "engine",
		Short: "Make sure a Docker engine answers (as root on Debian/Ubuntu: install and start docker.io)",
		Long: `engine makes sure ` + "`docker info`" + ` answers. A running daemon (Docker Desktop, a CI
runner's) is used as it is. Otherwise, as root on Debian/Ubuntu, Debian's
docker.io is installed and dockerd started in the background (its log in
` + engine.DaemonLog + `); without root it says how to get Docker.`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			return engine.Ensure(in.work, engine.Options{Out: stderr})
		}),
	}
}

func newImageCmd(stdout, stderr io.Writer) *cobra.Command {
	return group("image", "Build container images without a registry", newImageNodeCmd(stdout, stderr), newImageVMCmd(stdout, stderr), newImageLoadGeneratorCmd(stdout))
}

func newImageLoadGeneratorCmd(stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "load-generator",
		Short: "Write the in-cluster client's image as an archive, to push to your registry",
		Long: `load-generator builds the image the in-cluster client's pods run
(` + incluster.Image + `, the harness's own generator) from this checkout, without Docker or
a registry, and writes it as a docker-archive into --out. A kind cluster gets
it from rehearse itself; for a cluster that pulls from a registry, load and
push it, then name it: rehearse run --clients in-cluster --in-cluster-image
REGISTRY/rehearse-load:v1.`,
		Example: `  rehearse image load-generator --out .
  docker load -i rehearse-load.tar && docker tag ` + incluster.Image + ` myregistry.azurecr.io/rehearse-load:v1 && docker push myregistry.azurecr.io/rehearse-load:v1`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if fi, err := os.Stat(out); err != nil || !fi.IsDir() {
				return usageErrorf("--out %s: give an existing directory", out)
			}
			root, err := engine.FindModuleRoot()
			if err != nil {
				return err
			}
			archive, err := incluster.BuildArchive(cmd.Context(), root, out)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, archive)
			return nil
		}),
	}
	cmd.Flags().StringVar(&out, "out", ".", "directory the archive is written to")
	return cmd
}

func newImageNodeCmd(stdout, stderr io.Writer) *cobra.Command {
	from, to := nodeimage.Versions()
	var (
		version            string
		all, offline, pull bool
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Build (or find) the kind node image of a Kubernetes version",
		Long: `node prints the kind node image to use for a Kubernetes version, one line per
version: version, image, and where it came from (kindest, cache or built).

It takes, in this order: kindest/node:<version> if it is in the local Docker
(--pull also tries to pull it; --offline skips it); our own image built
before from the same inputs; otherwise it builds that image offline (15 to 20
minutes the first time on 2 cores, cached afterwards in ~/.cache/rehearse or
$REHEARSE_CACHE_DIR).

The rehearsal versions are ` + from + ` (from) and ` + to + ` (to); REHEARSE_K8S_FROM and
REHEARSE_K8S_TO override them.`,
		Example: "  rehearse image node --k8s-version " + to + "\n  rehearse image node --all",
		Args:    cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			versions := []string{version}
			if all {
				if cmd.Flags().Changed("k8s-version") {
					return usageErrorf("give --k8s-version or --all, not both")
				}
				versions = []string{from, to}
			}
			for _, v := range versions {
				if _, err := nodeimage.ParseVersion(v); err != nil {
					return usageError(err)
				}
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			if err := engine.Ensure(in.work, engine.Options{Out: stderr}); err != nil {
				return err
			}
			for _, v := range versions {
				res, err := nodeimage.Image(in.work, nodeimage.Options{Version: v, Offline: offline, Pull: pull, Out: stderr})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\t%s\t%s\n", v, res.Image, res.Source)
				if res.Source == "built" {
					fmt.Fprintf(stderr, "cold build of %s: %s\n", v, summarize(res.Timings))
				}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&version, "k8s-version", from, "Kubernetes version of the node image (v1.MINOR.PATCH)")
	f.BoolVar(&all, "all", false, "the node images of both rehearsal versions ("+from+" and "+to+")")
	f.BoolVar(&offline, "offline", false, "build our own image even if a kindest/node image of that version exists locally")
	f.BoolVar(&pull, "pull", false, "try \"docker pull kindest/node:<version>\" before building (needs a registry)")
	return cmd
}

func newImageVMCmd(stdout, stderr io.Writer) *cobra.Command {
	from, _ := nodeimage.Versions()
	var version string
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Build (or find) what a VM node of a Kubernetes version boots: runner image and disk",
		Long: `vm prints the runner image (QEMU and Debian's cloud kernel, in a container kind
can manage) and the disk (the node image's file system with the kernel's
modules, as an ext4 image) of a VM node, building them when they are not
cached (a few minutes the first time; the node image is built first if need
be). VM nodes are how a rehearsal gets a node of the other cgroup mode: see
` + "`rehearse cluster add-worker --vm`" + `.`,
		Example: "  rehearse image vm --k8s-version " + from,
		Args:    cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if _, err := nodeimage.ParseVersion(version); err != nil {
				return usageError(err)
			}
			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			if err := engine.Ensure(in.work, engine.Options{Out: stderr}); err != nil {
				return err
			}
			node, err := nodeimage.Image(in.work, nodeimage.Options{Version: version, Offline: true, Out: stderr})
			if err != nil {
				return err
			}
			vm, err := nodeimage.VMImages(in.work, nodeimage.VMOptions{NodeImage: node.Image, Out: stderr})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\n", version, vm.Runner, vm.Disk, vm.Kernel, vm.Source)
			return nil
		}),
	}
	cmd.Flags().StringVar(&version, "k8s-version", from, "Kubernetes version of the node image the VM boots")
	return cmd
}

func summarize(ts []nodeimage.Timing) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		how := ""
		if t.Cached {
			how = " cached"
		}
		parts = append(parts, fmt.Sprintf("%s %s%s", t.Step, t.Duration.Round(100*time.Millisecond), how))
	}
	return strings.Join(parts, "; ")
}
