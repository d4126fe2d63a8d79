package main

import (
	"github.com/spf13/cobra"

	"github.com/kube-rehearse/rehearse/harness/target"
)

// existingFlags are --kubeconfig and --context, which every command that
// reaches a cluster takes to address an existing cluster instead of a kind
// cluster.
type existingFlags struct{ kubeconfig, context string }

func (e *existingFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&e.kubeconfig, "kubeconfig", "", "instead of a kind cluster, an existing cluster: the kubeconfig file at `PATH` (default $KUBECONFIG, ~/.kube/config)")
	f.StringVar(&e.context, "context", "", "instead of a kind cluster, an existing cluster: this kubeconfig context (default: the file's current one)")
	_ = cmd.MarkFlagFilename("kubeconfig")
}

// chosen says whether an existing cluster was asked for (either flag given,
// even empty: --context "" is the file's current context).
func (e *existingFlags) chosen(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("kubeconfig") || cmd.Flags().Changed("context")
}

// notWithCluster refuses --cluster beside them.
func (e *existingFlags) notWithCluster(cmd *cobra.Command) error {
	if e.chosen(cmd) && cmd.Flags().Changed("cluster") {
		return usageErrorf("give --cluster (a kind cluster) or --kubeconfig/--context (any cluster), not both")
	}
	return nil
}

// connect reads the cluster's kubeconfig context. Nothing is contacted, so
// what goes wrong is bad input.
func (e *existingFlags) connect() (*target.Existing, error) {
	t, err := target.Connect(e.kubeconfig, e.context)
	if err != nil {
		return nil, usageError(err)
	}
	return t, nil
}
