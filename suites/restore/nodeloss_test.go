package restore

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/scenarios/nodeloss"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// TestNodeLossRevertAfterKill loses a worker with `rehearse run` and
// SIGKILLs it while the node is powered off (its replacement journaled,
// Kubernetes not yet aware): `rehearse restore` then brings the node back
// under its name from its image, and the cluster has the nodes it had, all
// Ready and schedulable, with no journal left.
func TestNodeLossRevertAfterKill(t *testing.T) {
	f := features.New("node-loss "+syscall.SIGKILL.String()).
		Assess(fmt.Sprintf("the lost node is back, %d times out of %d", rounds, rounds), func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			for i := 1; i <= rounds; i++ {
				before := nodeNames(ctx, t)
				var out bytes.Buffer
				cmd := exec.Command(binary, "run", "--cluster", clusterName, "--scenario", nodeloss.Kind, "--set", "node="+node,
					"--rate", "20", "--baseline", "1s", "--recovery", "1s", "--out", t.TempDir())
				cmd.Stdout, cmd.Stderr = &out, &out
				require.NoError(t, cmd.Start())
				err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
					if cmd.ProcessState != nil {
						return false, fmt.Errorf("rehearse exited early")
					}
					return journaledKinds(ctx)[nodeloss.KindReplaceNode] && !running(ctx, node), nil
				})
				require.NoError(t, err, "round %d: the node was not powered off; output:\n%s", i, &out)
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				_ = cmd.Wait()
				b, err := exec.Command(binary, "restore", "--cluster", clusterName).CombinedOutput()
				require.NoError(t, err, "round %d: rehearse restore:\n%s", i, b)
				t.Logf("round %d: rehearse restore:\n%s", i, b)
				require.True(t, running(ctx, node), "round %d: the node's machine runs again", i)
				requireUpgradeReverted(ctx, t, before)
			}
			return ctx
		}).Feature()
	suite.Env.Test.Test(t, f)
}

// running says whether the node's container runs.
func running(ctx context.Context, name string) bool {
	b, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Running}}", name).Output()
	return err == nil && strings.TrimSpace(string(b)) == "true"
}
