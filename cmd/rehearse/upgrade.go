package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/scenarios"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

// upgradeFlags are AKS's agent-pool upgrade settings as flags, mapped onto
// the node-image-upgrade scenario's settings.
var upgradeFlags = []struct{ flag, setting, usage string }{
	{"kubernetes-version", "version", "a Kubernetes upgrade to this version (v1.MINOR.PATCH, one minor at most): the control plane in place, then the pool; without it, a node-image upgrade"},
	{"image", "image", "the node image the pool moves to (a local image)"},
	{"variant", "variant", "instead of --image: a variant of the pool's current node image, built in seconds: " + strings.Join(variantNames(), ", ")},
	{"pool", "pool", "the node pool to upgrade"},
	{"max-surge", "maxSurge", "AKS maxSurge: surge nodes, a count or a percentage of the pool, rounded up"},
	{"max-unavailable", "maxUnavailable", "AKS maxUnavailable: old nodes that may be down beyond the surge"},
	{"drain-timeout-in-minutes", "drainTimeoutInMinutes", "AKS drainTimeoutInMinutes: each node's drain deadline"},
	{"node-soak-duration-in-minutes", "nodeSoakDurationInMinutes", "AKS nodeSoakDurationInMinutes: wait after each batch's drain"},
	{"undrainable-node-behavior", "undrainableNodeBehavior", "AKS undrainableNodeBehavior: Schedule or Cordon"},
}

func variantNames() []string {
	var out []string
	for _, v := range nodeimage.Variants() {
		out = append(out, v.Name)
	}
	return out
}

func newUpgradeCmd(stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	vals := make([]string, len(upgradeFlags))
	d := upgrade.Defaults()
	defaults := map[string]string{
		"pool": upgrade.DefaultPool, "maxSurge": d.MaxSurge, "maxUnavailable": d.MaxUnavailable,
		"drainTimeoutInMinutes": fmt.Sprint(d.DrainTimeoutInMinutes), "nodeSoakDurationInMinutes": "0",
		"undrainableNodeBehavior": d.UndrainableNodeBehavior,
	}
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Rehearse an AKS-style upgrade under load: a node-image surge upgrade, or a Kubernetes upgrade",
		Long: `upgrade rehearses what AKS does to a node pool when its node image is
upgraded, on a local kind cluster, while the app is under load: it adds
--max-surge surge nodes from the new image, then batch after batch cordons and
drains old nodes (evictions honour PodDisruptionBudgets, --drain-timeout-in-minutes
per node), waits --node-soak-duration-in-minutes, reimages them in place, and
finally removes the surge nodes. A node whose drain does not finish is made
schedulable again (Schedule) or kept cordoned and labelled
kubernetes.azure.com/upgrade-status=Quarantined with a surge node in its place
(Cordon), and the upgrade fails, as on AKS.

With --kubernetes-version, the control plane is upgraded first, in place, with
kubeadm upgrade apply inside the control-plane node (the new version's
binaries and images taken from its node image, built if missing), while the
API server's unavailability is recorded; then the pool is surged to nodes of
the new version. kubeadm upgrades one minor version at a time and never down.

The verdict judges what clients saw (errors, outages, ready endpoints,
readiness, graceful shutdown), the drains (a blocking PodDisruptionBudget is
named, with the fix) and reports the upgrade's figures: per node, per batch,
total, and what they extrapolate to for a 40-node pool.

Every flag of ` + "`rehearse run`" + ` applies too; exit codes are run's.`,
		Example: `  rehearse upgrade --kubernetes-version v1.34.4 --max-surge 1
  rehearse upgrade --variant refresh
  rehearse upgrade --variant refresh --max-surge 100% --preset no-pdb
  rehearse upgrade --variant refresh --preset blocking-pdb --drain-timeout-in-minutes 1 --undrainable-node-behavior Cordon`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			f.scenario = upgrade.KindNodeImage
			changed := cmd.Flags().Changed
			if changed("kubernetes-version") {
				f.scenario = upgrade.KindKubernetes
				if changed("image") || changed("variant") {
					return usageErrorf("upgrade: --kubernetes-version brings its own node image: drop --image and --variant (or drop --kubernetes-version for a node-image upgrade)")
				}
			}
			for i, u := range upgradeFlags {
				if cmd.Flags().Changed(u.flag) {
					f.set = append(f.set, u.setting+"="+vals[i])
				}
			}
			set := map[string]string{}
			for _, kv := range f.set {
				k, v, _ := strings.Cut(kv, "=")
				set[k] = v
			}
			if err := scenarios.CheckSettings(f.scenario, set); err != nil {
				return usageErrorf("upgrade: %v", err)
			}
			if f.scenario == upgrade.KindNodeImage && !changed("image") && !changed("variant") {
				return usageErrorf("upgrade: give the node image to move to (--image IMAGE, or --variant %s), or a version: --kubernetes-version v1.MINOR.PATCH", strings.Join(variantNames(), "|"))
			}
			return f.run(cmd, stdout, stderr)
		}),
	}
	f.register(cmd)
	_ = cmd.Flags().MarkHidden("scenario")
	_ = cmd.Flags().MarkHidden("set")
	for i, u := range upgradeFlags {
		cmd.Flags().StringVar(&vals[i], u.flag, defaults[u.setting], u.usage)
	}
	return cmd
}
