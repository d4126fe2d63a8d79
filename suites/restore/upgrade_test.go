package restore

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// upgradeRounds is how often each interruption of an upgrade is repeated.
var upgradeRounds = suite.Rounds(1)

// An interrupted node-image upgrade leaves no trace once reverted: no surge
// node (neither the Node nor its container), no cordoned or quarantined
// node, the pool's node names as before, every node Ready, no journal.
// Interrupted at two moments: a surge node added and an old node cordoned
// (being drained); and an old node being reimaged (removed, not yet back).
func TestRevertInterruptedUpgrade(t *testing.T) {
	var cases []features.Feature
	for _, c := range []struct {
		name   string
		signal syscall.Signal
		when   string // the journal entry after which the signal is sent
	}{
		{"upgrade-sigkill-draining", syscall.SIGKILL, journal.KindUncordon},
		{"upgrade-sigkill-reimaging", syscall.SIGKILL, upgrade.KindRestoreNode},
		{"upgrade-sigint-draining", syscall.SIGINT, journal.KindUncordon},
	} {
		cases = append(cases, features.New(c.name).
			Assess(fmt.Sprintf("%s after a %q journal entry: reverted, %d times out of %d", c.signal, c.when, upgradeRounds, upgradeRounds),
				func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
					for i := 1; i <= upgradeRounds; i++ {
						before := nodeNames(ctx, t)
						cmd, out := startUpgrade(ctx, t)
						waitJournaled(ctx, t, cmd, out, c.when)
						require.NoError(t, cmd.Process.Signal(c.signal))
						err := cmd.Wait()
						t.Logf("round %d: after the %s: %s", i, c.signal, workerState(ctx))
						if c.signal == syscall.SIGKILL {
							// Only the journal can undo what the kill left.
							restore := exec.Command(binary, "restore", "--cluster", clusterName)
							b, rerr := restore.CombinedOutput()
							require.NoError(t, rerr, "round %d: rehearse restore:\n%s", i, b)
							t.Logf("round %d: rehearse restore:\n%s", i, b)
						} else {
							var exit *exec.ExitError
							require.ErrorAs(t, err, &exit, "round %d: an interrupted rehearsal is not a pass; output:\n%s", i, out)
							require.Equal(t, 3, exit.ExitCode(), "round %d: exit code 3 (interrupted); output:\n%s", i, out)
						}
						requireUpgradeReverted(ctx, t, before)
					}
					return ctx
				}).Feature())
	}
	suite.Env.Test.Test(t, suite.Select(cases, "upgrade-sigkill-reimaging")...)
}

// startUpgrade runs `rehearse upgrade` of the workers to the node image
// they do not run (the cluster's or its "refresh" variant), one node at a
// time.
func startUpgrade(ctx context.Context, t *testing.T) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	to := suite.OtherNodeImage(ctx, t)
	var out bytes.Buffer
	cmd := exec.Command(binary, "upgrade", "--cluster", clusterName, "--image", to, "--max-surge", "1",
		"--rate", "20", "--baseline", "1s", "--recovery", "1s", "--out", t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	return cmd, &out
}

// waitJournaled waits until the journal holds an entry whose undo is kind.
func waitJournaled(ctx context.Context, t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, kind string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		if cmd.ProcessState != nil {
			return false, fmt.Errorf("rehearse exited early")
		}
		return journaledKinds(ctx)[kind], nil
	})
	require.NoError(t, err, "no %q entry in the journal; output:\n%s", kind, out)
}

// journaledKinds is the set of undo kinds in the cluster's journals.
func journaledKinds(ctx context.Context) map[string]bool {
	kinds := map[string]bool{}
	for _, e := range journalEntries(ctx) {
		kinds[e.Undo.Kind] = true
	}
	return kinds
}

func nodeNames(ctx context.Context, t *testing.T) []string {
	t.Helper()
	nodes, err := suite.Env.Target.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names
}

// requireUpgradeReverted checks that the cluster has the nodes it had, each
// Ready and schedulable, unmarked, with no surge container and no journal.
func requireUpgradeReverted(ctx context.Context, t *testing.T, before []string) {
	t.Helper()
	require.Equal(t, before, nodeNames(ctx, t), "the cluster's nodes")
	nodes, err := suite.Env.Target.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, n := range nodes.Items {
		require.False(t, n.Spec.Unschedulable, "node %s is still cordoned", n.Name)
		require.NotContains(t, n.Labels, upgrade.QuarantineLabel, "node %s", n.Name)
		require.NotContains(t, n.Labels, upgrade.SurgeLabel, "node %s", n.Name)
		for k := range n.Annotations {
			require.False(t, strings.HasPrefix(k, journal.NodeAnnotationPrefix), "node %s still carries journal marker %s", n.Name, k)
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == "Ready" && c.Status == "True")
		}
		require.True(t, ready, "node %s is Ready", n.Name)
	}
	b, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--format", "{{.Names}}", "--filter", "name="+clusterName+"-surge").CombinedOutput()
	require.NoError(t, err, "%s", b)
	require.Empty(t, strings.TrimSpace(string(b)), "surge node containers left")
	require.Zero(t, entries(ctx, t), "journal entries left")
}

// workerState says, for the log, whether each worker's Node and container
// exist and whether the Node is cordoned: where the signal caught the upgrade.
func workerState(ctx context.Context) string {
	var parts []string
	for _, w := range []string{clusterName + "-worker", clusterName + "-worker2", clusterName + "-surge1"} {
		s := w + ": Node "
		if n, err := suite.Env.Target.Client().CoreV1().Nodes().Get(ctx, w, metav1.GetOptions{}); err != nil {
			s += "missing"
		} else if n.Spec.Unschedulable {
			s += "cordoned"
		} else {
			s += "schedulable"
		}
		if b, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.Config.Image}} {{.State.Status}}", w).Output(); err != nil {
			s += ", no container"
		} else {
			s += ", container " + strings.TrimSpace(string(b))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
