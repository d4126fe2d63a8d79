package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/preflight"
)

func newPreflightCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		name         string
		existing     existingFlags
		o            preflight.Options
		drainMinutes int
		s            preflight.Surge
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Check a cluster, reading only, for what will break its upgrade",
		Long: `preflight reads a cluster (never changes it, so any cluster may be checked)
and reports what is known to break an upgrade before it starts, each finding
with its severity, the object, the evidence and the fix:

  ` + preflight.RuleBlockingPDB + `     a PodDisruptionBudget allowing no eviction (drains hang, AKS fails the upgrade)
  ` + preflight.RuleGraceOverDrain + `    a grace period longer than the drain timeout
  ` + preflight.RuleSingleReplica + `             one replica behind a Service (down while its node drains)
  ` + preflight.RuleNoPDB + `                     several replicas and no budget (a drain may take them together)
  ` + preflight.RuleNoReadiness + `         traffic before the pod can answer
  ` + preflight.RuleNoPreStop + `            traffic after SIGTERM, while endpoint removal propagates
  ` + preflight.RuleRemovedAPIsCalled + `          deprecated APIs clients really called (the API server's
                              apiserver_requested_deprecated_apis metric), removed by --to
  ` + preflight.RuleRemovedAPIsInManifests + `    removed APIs in your manifests (--manifests)
  ` + preflight.RuleSurgeCapacity + `            surge nodes against a vCPU quota and a subnet (--max-surge and
                              --cpu-quota-free / --subnet)

A rule that could not look (no right to read /metrics) says so: that is not a
pass. Namespaces of the platform (kube-system...) are skipped unless named.

Exit codes: 0 no blocker found; 1 a blocker found; 2 bad input; 3 the
cluster could not be read.`,
		Example: `  rehearse preflight --context staging --to v1.34
  rehearse preflight --context staging --to v1.34 --manifests ./deploy --namespace shop
  rehearse preflight --context staging --max-surge 33% --pool np1 --cpu-quota-free 40 --subnet 10.240.0.0/22
  rehearse preflight --cluster rehearse-dev --json`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			changed := cmd.Flags().Changed
			if err := existing.notWithCluster(cmd); err != nil {
				return err
			}
			if drainMinutes < 1 || drainMinutes > 1440 {
				return usageErrorf("--drain-timeout-in-minutes %d: use 1 to 1440 (AKS's range)", drainMinutes)
			}
			o.DrainTimeout = time.Duration(drainMinutes) * time.Minute
			if o.Manifests != "" {
				if _, err := os.Stat(o.Manifests); err != nil {
					return usageErrorf("--manifests %s: %v", o.Manifests, errors.Unwrap(err))
				}
			}
			for _, f := range []string{"max-surge", "pool", "cpu-quota-free", "vcpus-per-node", "subnet", "subnet-used", "addresses-per-node"} {
				if changed(f) {
					o.Surge = &s
				}
			}
			if err := o.Validate(); err != nil {
				return usageError(err)
			}
			var client kubernetes.Interface
			if existing.chosen(cmd) {
				e, err := existing.connect()
				if err != nil {
					return err
				}
				client = e.Client()
			} else {
				if err := checkName(name); err != nil {
					return err
				}
				k, err := kindTarget(cmd.Context(), name)
				if err != nil {
					return err
				}
				client = k.Client()
			}
			rep, err := preflight.Run(cmd.Context(), client, o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.Print(stdout)
			}
			if rep.Worst() == preflight.Blocker {
				return silentExit(exitFailed)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "cluster", "rehearse-run", "kind cluster to check")
	existing.register(cmd)
	f.StringSliceVar(&o.Namespaces, "namespace", nil, "namespaces to check, comma-separated (default: all but the platform's)")
	f.StringVar(&o.To, "to", "", "the Kubernetes version the upgrade goes to (v1.34): APIs removed by then are blockers")
	f.IntVar(&drainMinutes, "drain-timeout-in-minutes", 30, "AKS drainTimeoutInMinutes: grace periods longer than this block the drain")
	f.StringVar(&o.Manifests, "manifests", "", "also scan the YAML/JSON manifests at `PATH` (a file or a directory) for removed APIs")
	f.StringVar(&s.MaxSurge, "max-surge", "10%", "AKS maxSurge of the pool: surge nodes, a count or a percentage")
	f.StringVar(&s.Pool, "pool", "", "the node pool (AKS agentpool label; default: every node but the control plane)")
	f.IntVar(&s.CPUQuotaFree, "cpu-quota-free", 0, "vCPUs left in the subscription's regional quota (checks the surge fits)")
	f.IntVar(&s.VCPUsPerNode, "vcpus-per-node", 0, "vCPUs of the pool's VM size (default: a node's capacity)")
	f.StringVar(&s.Subnet, "subnet", "", "the pool's subnet, e.g. 10.240.0.0/22 (checks the surge nodes' addresses fit)")
	f.IntVar(&s.SubnetUsed, "subnet-used", 0, "addresses already used in --subnet (default: the pool's nodes' share)")
	f.IntVar(&s.AddressesPerNode, "addresses-per-node", 0, "addresses a node takes from --subnet (default: its max pods + 1, Azure CNI; 1 for CNI overlay or kubenet)")
	f.BoolVar(&asJSON, "json", false, "print the findings as JSON")
	_ = cmd.MarkFlagFilename("manifests", "yaml", "yml", "json")
	return cmd
}
