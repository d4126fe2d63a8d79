package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/hostroute"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/scenarios"
)

func newRestoreCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		name     string
		existing existingFlags
		force    bool
	)
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Undo what earlier rehearsals left in a cluster (killed, or interrupted twice)",
		Long: `restore undoes every change that earlier rehearsals on a cluster journaled and
did not revert: a rehearsal killed (SIGKILL, a lost machine) or interrupted
twice leaves its journal in the cluster. Only journals whose owner is gone are
taken (its process exited on this host, or its heartbeat stopped); --force
also takes those of a rehearsal that seems alive, which may undo a change
under its feet.

It also removes the host routes of kind clusters that no longer exist.

It exits 0 when everything left was undone (or nothing was left; journals of
rehearsals still running are listed and left alone) and 3 when something
could not be undone: that stays in the journal for the next restore.`,
		Example: `  rehearse restore                        # the cluster rehearse run uses
  rehearse restore --cluster rehearse-dev
  rehearse restore --kubeconfig ~/.kube/config --context staging`,
		Args: cobra.NoArgs,
		RunE: doing(func(cmd *cobra.Command, _ []string) error {
			if err := existing.notWithCluster(cmd); err != nil {
				return err
			}
			var client kubernetes.Interface
			var tgt target.Target // node operations, for node undos
			if existing.chosen(cmd) {
				e, err := existing.connect()
				if err != nil {
					return err
				}
				client, tgt = e.Client(), e
			} else if err := checkName(name); err != nil {
				return err
			}
			var opts []journal.Option
			if force {
				opts = append(opts, journal.Force())
			}

			in := notifyInterrupts(cmd.Context(), plainInterrupts, stderr)
			defer in.stop()
			ctx := in.work
			var failed []error
			if err := removeStaleRoutes(ctx, stdout); err != nil {
				failed = append(failed, err)
			}
			if client == nil {
				k, err := kindTarget(ctx, name)
				if err != nil {
					return errors.Join(append(failed, err)...)
				}
				client, tgt = k.Client(), k
			}
			rep, err := journal.Restore(ctx, client, scenarios.Undos(tgt), opts...)
			fmt.Fprint(stdout, rep)
			if err != nil {
				failed = append(failed, err)
			}
			if len(failed) > 0 {
				fmt.Fprintln(stdout, "restore: something could not be undone; it stays for the next `rehearse restore`")
				return errors.Join(failed...)
			}
			if len(rep.Journals) == 0 {
				fmt.Fprintln(stdout, "restore: nothing was left to undo")
			} else {
				fmt.Fprintln(stdout, "restore: everything left was undone")
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "cluster", "rehearse-run", "kind cluster to restore")
	existing.register(cmd)
	f.BoolVar(&force, "force", false, "also undo the journals of rehearsals that seem alive")
	return cmd
}

// kindTarget connects to a local kind cluster (the harness's own to restore).
func kindTarget(ctx context.Context, name string) (*target.Kind, error) {
	if !engine.Answers(ctx) {
		return nil, fmt.Errorf("no Docker engine answers, so kind cluster %s cannot be reached: start Docker (or `rehearse engine`), then retry", name)
	}
	c := cluster.New(cluster.Config{Name: name})
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	return target.NewKind(c, true), nil
}

// removeStaleRoutes removes the host routes recorded for kind clusters that
// no longer exist (a cluster deleted by kind itself, or by a killed run).
// Which clusters exist only Docker knows: without it nothing is removed.
func removeStaleRoutes(ctx context.Context, stdout io.Writer) error {
	recorded, err := hostroute.Recorded()
	if err != nil || len(recorded) == 0 {
		return err
	}
	if !engine.Answers(ctx) {
		fmt.Fprintf(stdout, "host routes of %v: not checked (no Docker engine answers, so which kind clusters exist is unknown)\n", recorded)
		return nil
	}
	removed, err := cluster.RemoveStaleRoutes()
	for _, c := range removed {
		fmt.Fprintf(stdout, "host routes of deleted cluster %s: removed\n", c)
	}
	return err
}
