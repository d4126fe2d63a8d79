// Package restore proves that every change a rehearsal makes is undone
// whatever happens to the harness. The `rehearse` command rehearses a
// scenario that cordons and taints a node, and is
//
//   - SIGKILLed in the middle of the step (nothing of the process can
//     react): `rehearse restore` then brings the node back, from the
//     journal in the cluster;
//   - interrupted with SIGINT in the middle of the step: it reverts before
//     it exits.
//
// After each, the node is schedulable, carries no taint and no journal
// marker, and no journal is left. The same holds for node-image upgrades
// interrupted while draining and reimaging (upgrade_test.go) and for each
// DNS fault interrupted while it holds (dns_test.go). REHEARSE_ROUNDS
// repeats every case.
package restore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/scenarios/cordon"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const (
	clusterName = "rehearse-restore"
	node        = clusterName + "-worker"
)

// rounds is how often each interruption of a step is repeated.
var rounds = suite.Rounds(1)

var binary string

func TestMain(m *testing.M) {
	var remove func()
	var err error
	if binary, remove, err = suite.BuildRehearse(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The API server also serves admissionregistration.k8s.io/v1beta1,
	// deprecated and removed in v1.34, so that pre-flight has a removed
	// API a client really calls to find.
	code := suite.Main(m, clusterName, suite.Options{PodSubnet: "10.242.0.0/16",
		RuntimeConfig: map[string]string{removedAPIGroupVersion: "true"}})
	remove()
	os.Exit(code)
}

// start runs `rehearse run` with the cordon scenario held long enough to be
// interrupted in the middle of it.
func start(t *testing.T) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(binary, "run", "--cluster", clusterName, "--scenario", cordon.Kind,
		"--set", "node="+node, "--set", "hold=5m", "--rate", "20", "--warmup", "1m", "--baseline", "1s", "--recovery", "1s",
		"--out", t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	return cmd, &out
}

// waitFaulted waits until both changes are made and journaled: the node is
// cordoned and tainted, and the journal holds two entries.
func waitFaulted(ctx context.Context, t *testing.T, cmd *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	client := suite.Env.Target.Client()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		if cmd.ProcessState != nil {
			return false, fmt.Errorf("rehearse exited early")
		}
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || !n.Spec.Unschedulable || !hasTaint(n) {
			return false, nil
		}
		return entries(ctx, t) == 2, nil
	})
	require.NoError(t, err, "the node was not cordoned and tainted with a journal of two entries; output:\n%s", out)
}

func hasTaint(n *corev1.Node) bool {
	for _, tn := range n.Spec.Taints {
		if tn.Key == cordon.Taint.Key {
			return true
		}
	}
	return false
}

// entries counts the journal entries in the cluster (-1: unreadable).
func entries(ctx context.Context, t *testing.T) int {
	es := journalEntries(ctx)
	if es == nil {
		return -1
	}
	return len(es)
}

// journalEntries are the entries of every journal in the cluster, live
// runs' included; nil when the journals cannot be read.
func journalEntries(ctx context.Context) []journal.Entry {
	ls, err := journal.Leftovers(ctx, suite.Env.Target.Client(), journal.Force())
	if err != nil {
		return nil
	}
	out := []journal.Entry{}
	for _, l := range ls {
		out = append(out, l.Entries...)
	}
	return out
}

// requireRestored checks the node and the journal are as before the run.
func requireRestored(ctx context.Context, t *testing.T) {
	t.Helper()
	n, err := suite.Env.Target.Client().CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	require.NoError(t, err)
	require.False(t, n.Spec.Unschedulable, "node %s is still cordoned", node)
	require.False(t, hasTaint(n), "node %s still has the taint: %v", node, n.Spec.Taints)
	for k := range n.Annotations {
		require.False(t, strings.HasPrefix(k, journal.NodeAnnotationPrefix), "node %s still carries journal marker %s", node, k)
	}
	cms, err := suite.Env.Target.Client().CoreV1().ConfigMaps(journal.Namespace).List(ctx, metav1.ListOptions{LabelSelector: journal.LabelJournal + "=true"})
	require.NoError(t, err)
	require.Empty(t, cms.Items, "journals left in %s", journal.Namespace)
}

func TestRevertAfterInterruption(t *testing.T) {
	sigkill := features.New("SIGKILL in the middle of a step, then rehearse restore").
		Assess(fmt.Sprintf("the node is back, %d times out of %d", rounds, rounds), func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			for i := 1; i <= rounds; i++ {
				cmd, out := start(t)
				waitFaulted(ctx, t, cmd, out)
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				_ = cmd.Wait()
				// The kill left the fault in place: only the journal can undo it.
				require.Equal(t, 2, entries(ctx, t), "round %d: the journal still holds both changes", i)
				restore := exec.Command(binary, "restore", "--cluster", clusterName)
				b, err := restore.CombinedOutput()
				require.NoError(t, err, "round %d: rehearse restore:\n%s", i, b)
				t.Logf("round %d: rehearse restore:\n%s", i, b)
				requireRestored(ctx, t)
			}
			return ctx
		}).Feature()

	sigint := features.New("SIGINT in the middle of a step").
		Assess(fmt.Sprintf("reverts before it exits, %d times out of %d", rounds, rounds), func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			for i := 1; i <= rounds; i++ {
				cmd, out := start(t)
				waitFaulted(ctx, t, cmd, out)
				require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
				err := cmd.Wait()
				var exit *exec.ExitError
				require.ErrorAs(t, err, &exit, "round %d: an interrupted rehearsal is not a pass; output:\n%s", i, out)
				require.Equal(t, 3, exit.ExitCode(), "round %d: exit code 3 (interrupted); output:\n%s", i, out)
				require.Contains(t, out.String(), "interrupted", "round %d", i)
				requireRestored(ctx, t)
			}
			return ctx
		}).Feature()

	suite.Env.Test.Test(t, suite.Select([]features.Feature{sigkill, sigint}, sigkill.Name())...)
}
