package vmnode

// The move to the VM node interrupted: `rehearse run` SIGKILLed while it
// drains the old pool (the cgroup-v1-only app's replacements never become
// Ready on the v2 node, so the drain waits on its PodDisruptionBudget),
// then `rehearse restore`: the old pool schedulable again, the new pool
// cordoned again, no journal. Last, the VM node removed: no container, no
// QEMU, no tap device, no Node.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/scenarios/poolmove"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// interruptedMove is the move SIGKILLed, then restored.
func interruptedMove() features.Feature {
	worker := clusterName + "-worker"
	return features.New("pool-move-sigkill").
		Assess("SIGKILLed while draining the old pool, rehearse restore reopens it and closes the VM pool", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vm := suite.Env.VM.Node
			var out bytes.Buffer
			cmd := exec.Command(binary, "run", "--cluster", clusterName, "--preset", "cgroup-v1-only", "--namespace", "vm-killed",
				"--scenario", poolmove.Kind, "--set", "to="+vm, "--set", "from="+worker, "--set", "timeout=10m",
				"--rate", "20", "--baseline", "2s", "--recovery", "1s", "--out", t.TempDir())
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			t.Cleanup(func() {
				_ = suite.Env.Target.Client().CoreV1().Namespaces().Delete(context.Background(), "vm-killed", metav1.DeleteOptions{})
			})
			client := suite.Env.Target.Client()
			// Both pools changed and journaled, and the drain under way.
			err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 6*time.Minute, true, func(ctx context.Context) (bool, error) {
				if cmd.ProcessState != nil {
					return false, fmt.Errorf("rehearse exited early")
				}
				w, err1 := client.CoreV1().Nodes().Get(ctx, worker, metav1.GetOptions{})
				v, err2 := client.CoreV1().Nodes().Get(ctx, vm, metav1.GetOptions{})
				if err1 != nil || err2 != nil || !w.Spec.Unschedulable || v.Spec.Unschedulable {
					return false, nil
				}
				return strings.Contains(out.String(), "drain node "+worker), nil
			})
			require.NoError(t, err, "the move did not reach the drain; output:\n%s", &out)
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			left, err := journal.Leftovers(ctx, client, journal.Force())
			require.NoError(t, err)
			require.NotEmpty(t, left, "the kill left the move journaled")
			b, err := exec.Command(binary, "restore", "--cluster", clusterName).CombinedOutput()
			require.NoError(t, err, "rehearse restore:\n%s", b)
			t.Logf("rehearse restore:\n%s", b)
			w, err := client.CoreV1().Nodes().Get(ctx, worker, metav1.GetOptions{})
			require.NoError(t, err)
			assert.False(t, w.Spec.Unschedulable, "the old pool is schedulable again")
			v, err := client.CoreV1().Nodes().Get(ctx, vm, metav1.GetOptions{})
			require.NoError(t, err)
			assert.True(t, v.Spec.Unschedulable, "the VM pool is closed again")
			left, err = journal.Leftovers(ctx, client, journal.Force())
			require.NoError(t, err)
			assert.Empty(t, left, "no journal left")
			return ctx
		}).Feature()
}

// removal removes the VM node (last: the other features need it).
func removal() features.Feature {
	return features.New("vm-node-removed").
		Assess("removing the VM node leaves no container, QEMU, tap device or Node", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vm := suite.Env.VM.Node
			require.NoError(t, suite.Env.Provider.Cluster.RemoveNode(ctx, vm))
			_, err := suite.Env.Target.Client().CoreV1().Nodes().Get(ctx, vm, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "the Node is gone: %v", err)
			ps, _ := exec.Command("docker", "ps", "-a", "--filter", "name=^"+vm+"$", "--format", "{{.Names}}").Output()
			assert.Empty(t, strings.TrimSpace(string(ps)), "no container")
			qemu, _ := exec.Command("pgrep", "-a", "-f", "qemu-system-x86_64").Output()
			assert.NotContains(t, string(qemu), "/vm/disk", "no QEMU left on this machine")
			links, _ := exec.Command("ip", "-o", "link", "show", "type", "tun").Output()
			assert.Empty(t, strings.TrimSpace(string(links)), "no tap device on this machine")
			return ctx
		}).Feature()
}
