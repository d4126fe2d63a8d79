package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/deploy"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/safety"
	"github.com/kube-rehearse/rehearse/preflight"
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
			loadAppImage(ctx, t)
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

// preflightCases are rehearsal apps, each in its own namespace, and the
// problems `rehearse preflight` must find in each (rule -> severity).
var preflightCases = []struct {
	preset appspec.Preset
	edit   func(*appspec.Spec)
	want   map[string]string
}{
	{appspec.PresetWellBehaved, nil, map[string]string{}},
	{appspec.PresetBlockingPDB, nil, map[string]string{preflight.RuleBlockingPDB: "blocker"}},
	{appspec.PresetNoPDB, nil, map[string]string{preflight.RuleNoPDB: "warning"}},
	{appspec.PresetNoReadinessProbe, nil, map[string]string{preflight.RuleNoReadiness: "warning"}},
	{appspec.PresetNoDrain, nil, map[string]string{preflight.RuleNoPreStop: "warning"}},
	{"single-replica", func(s *appspec.Spec) { s.Replicas = 1 }, map[string]string{preflight.RuleSingleReplica: "warning"}},
	{"long-grace", func(s *appspec.Spec) { s.TerminationGracePeriod = 2 * time.Minute }, map[string]string{preflight.RuleGraceOverDrain: "blocker"}},
}

// The removed API a client calls at run time: the suite's API server
// serves this deprecated version too (see TestMain), which v1.34 no longer
// serves.
const (
	removedAPIGroupVersion = "admissionregistration.k8s.io/v1beta1"
	removedAPIResource     = "validatingadmissionpolicies"
)

// TestPreflight seeds each problem in a namespace of its own on the
// suite's cluster, addressed by kubeconfig and context, and checks that
// `rehearse preflight` (read-only: no allow-list needed) finds exactly it,
// and nothing in the well-behaved app's namespace; a blocker exits 1.
// A client (this test) also lists ValidatingAdmissionPolicies through
// admissionregistration.k8s.io/v1beta1, removed in v1.34: before an
// upgrade to v1.34 that is a blocker, found from the API server's own
// count of deprecated calls (no manifest mentions it); before one to v1.33
// it is not.
func TestPreflight(t *testing.T) {
	f := features.New("preflight").
		Setup(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			loadAppImage(ctx, t)
			for _, c := range preflightCases {
				base := c.preset
				if c.edit != nil {
					base = appspec.PresetWellBehaved
				}
				spec, err := appspec.PresetSpec(base, appspec.Image)
				require.NoError(t, err)
				if c.edit != nil {
					c.edit(&spec)
				}
				spec.Namespace, spec.Service.NodePort = "preflight-"+string(c.preset), 0
				_, err = deploy.App(ctx, suite.Env.Target.RESTConfig(), suite.Env.Target.Client(), spec)
				require.NoError(t, err, c.preset)
			}
			_, err := suite.Env.Target.Client().AdmissionregistrationV1beta1().ValidatingAdmissionPolicies().List(ctx, metav1.ListOptions{})
			require.NoError(t, err, "the deprecated API is served (runtime-config)")
			return ctx
		}).
		Assess("each seeded problem is found, and nothing on the clean app", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			kubeconfig, kubecontext := stagingKubeconfig(t)
			for _, c := range preflightCases {
				ns := "preflight-" + string(c.preset)
				r := runRehearse(t, nil, "preflight", "--kubeconfig", kubeconfig, "--context", kubecontext, "--namespace", ns,
					"--drain-timeout-in-minutes", "1", "--to", "v1.33", "--json")
				var rep preflight.Report
				require.NoError(t, json.Unmarshal([]byte(r.out), &rep), "%s: output:\n%s", ns, r.out)
				got := map[string]string{}
				for _, f := range rep.Findings {
					if f.Rule == preflight.RuleRemovedAPIsCalled && f.Severity == preflight.Info {
						t.Logf("%s: cluster-wide note: %s: %s", ns, f.Object, f.Evidence)
						continue
					}
					got[f.Rule] = f.Severity.String()
				}
				assert.Equal(t, c.want, got, "%s: findings %+v", ns, rep.Findings)
				assert.Empty(t, rep.NotChecked, "%s: every rule could look", ns)
				wantCode := 0
				if slices.Contains(slices.Collect(maps.Values(c.want)), "blocker") {
					wantCode = 1
				}
				assert.Equal(t, wantCode, r.code, "%s: exit code", ns)
			}
			return ctx
		}).
		Assess("a removed API a client called is a blocker before the upgrade that removes it", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			kubeconfig, kubecontext := stagingKubeconfig(t)
			r := runRehearse(t, nil, "preflight", "--kubeconfig", kubeconfig, "--context", kubecontext,
				"--namespace", "preflight-"+string(appspec.PresetWellBehaved), "--to", "v1.34", "--json")
			var rep preflight.Report
			require.NoError(t, json.Unmarshal([]byte(r.out), &rep), "output:\n%s", r.out)
			var found []preflight.Finding
			for _, f := range rep.Findings {
				if f.Rule == preflight.RuleRemovedAPIsCalled && strings.Contains(f.Object, removedAPIGroupVersion+" "+removedAPIResource) {
					found = append(found, f)
				}
			}
			require.Len(t, found, 1, "findings: %+v", rep.Findings)
			assert.Equal(t, preflight.Blocker, found[0].Severity)
			assert.Contains(t, found[0].Evidence, "v1.34 no longer serves it")
			assert.Equal(t, 1, r.code, "a blocker")
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			for _, c := range preflightCases {
				_ = suite.Env.Target.Client().CoreV1().Namespaces().Delete(ctx, "preflight-"+string(c.preset), metav1.DeleteOptions{})
			}
			return ctx
		}).Feature()
	suite.Env.Test.Test(t, f)
}

// loadAppImage gives the cluster the rehearsal app's image: a real staging
// cluster pulls it from its registry; this one gets it as kind does.
func loadAppImage(ctx context.Context, t *testing.T) {
	t.Helper()
	root, err := engine.FindModuleRoot()
	require.NoError(t, err)
	archive, err := appspec.BuildArchive(ctx, root, t.TempDir())
	require.NoError(t, err)
	require.NoError(t, suite.Env.Target.LoadImageArchives(ctx, archive))
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
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, safety.EnvVar+"=") }), env...)
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
