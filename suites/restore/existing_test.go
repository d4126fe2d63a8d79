package restore

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/safety"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/scenarios/drain"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// TestAnExistingCluster addresses the suite's cluster as a user's staging
// cluster: only by a kubeconfig file and a context, so rehearse does not
// know it made it. A drain without the allow-list is refused (exit 2) and
// the cluster is as it was: the same namespaces, no node cordoned, no
// journal. With the context on the allow-list ($REHEARSE_ALLOW_CLUSTERS),
// the drain is rehearsed through the Service and passes, and the namespace
// the run made for the app is gone afterwards.
func TestAnExistingCluster(t *testing.T) {
	const ns = "rehearsal-existing"
	f := features.New("existing cluster").
		Setup(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			// A real staging cluster pulls the app's image from its
			// registry; this one gets it as kind does.
			root, err := engine.FindModuleRoot()
			require.NoError(t, err)
			archive, err := appspec.BuildArchive(ctx, root, t.TempDir())
			require.NoError(t, err)
			require.NoError(t, suite.Env.Target.LoadImageArchives(ctx, archive))
			return ctx
		}).
		Assess("a drain without the allow-list is refused, nothing changed", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			kubeconfig, kubecontext := stagingKubeconfig(t)
			before := clusterState(ctx, t)
			r := runRehearse(t, nil, "run", "--kubeconfig", kubeconfig, "--context", kubecontext, "--namespace", ns,
				"--scenario", drain.Kind, "--out", t.TempDir())
			require.Equal(t, 2, r.code, "output:\n%s", r.out)
			for _, want := range []string{"not on the allow-list", "context " + kubecontext, "--allow-cluster " + kubecontext, "Nothing was changed"} {
				assert.Contains(t, r.out, want)
			}
			assert.Equal(t, before, clusterState(ctx, t), "the cluster is as it was")
			return ctx
		}).
		Assess("allowed, a drain is rehearsed through the Service and passes", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			kubeconfig, kubecontext := stagingKubeconfig(t)
			before := clusterState(ctx, t)
			out := t.TempDir()
			r := runRehearse(t, []string{safety.EnvVar + "=" + kubecontext}, "run", "--kubeconfig", kubeconfig, "--context", kubecontext,
				"--namespace", ns, "--scenario", drain.Kind, "--baseline", "3s", "--recovery", "3s", "--out", out)
			t.Logf("rehearse run:\n%s", r.out)
			runs, _ := filepath.Glob(filepath.Join(out, "*", "run.json"))
			require.Len(t, runs, 1, "one run record; output:\n%s", r.out)
			rec, err := record.Read(runs[0])
			require.NoError(t, err)
			suite.RecordRun(t, "restore", "existing-cluster/node-drain", rec)
			require.Equal(t, 0, r.code, "the drain rehearsal passes; output:\n%s", r.out)
			assert.Contains(t, r.out, "rehearsal passed")
			assert.Contains(t, r.out, "namespace "+ns+" (made by this run): deleted")
			_, err = suite.Env.Target.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "the run's namespace is gone: %v", err)
			assert.Equal(t, before, clusterState(ctx, t), "the nodes are uncordoned, no journal is left")
			return ctx
		}).Feature()
	suite.Env.Test.Test(t, f)
}

// stagingKubeconfig copies the suite cluster's kubeconfig to a file of
// the test's: the only way the rehearsal is told of the cluster.
func stagingKubeconfig(t *testing.T) (path, context string) {
	t.Helper()
	b, err := os.ReadFile(suite.Env.Target.Cluster().Config().KubeconfigPath)
	require.NoError(t, err)
	path = filepath.Join(t.TempDir(), "staging.kubeconfig")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path, suite.Env.Target.Context()
}

type runResult struct {
	code int
	out  string
}

// runRehearse runs the binary with the environment's allow-list replaced.
func runRehearse(t *testing.T, env []string, args ...string) runResult {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return len(kv) > len(safety.EnvVar) && kv[:len(safety.EnvVar)+1] == safety.EnvVar+"="
	}), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := runResult{out: out.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else {
		require.NoError(t, err, "output:\n%s", &out)
	}
	return r
}

// clusterState is what a refused or finished rehearsal must leave as it
// found: the namespaces, each node's schedulability, the journal entries.
func clusterState(ctx context.Context, t *testing.T) map[string]any {
	t.Helper()
	client := suite.Env.Target.Client()
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, n := range nss.Items {
		if n.Status.Phase != "Terminating" {
			names = append(names, n.Name)
		}
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	cordoned := map[string]bool{}
	for _, n := range nodes.Items {
		cordoned[n.Name] = n.Spec.Unschedulable
	}
	return map[string]any{"namespaces": names, "cordoned": cordoned, "journal entries": entries(ctx, t)}
}
