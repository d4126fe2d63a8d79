package restore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/incluster"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/scenarios/restart"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// inClusterSkew is how far the generator pods' clocks are made to lie
// (behind this machine's): the harness must measure it and place every
// result where it happened.
const inClusterSkew = -3 * time.Second

// TestInClusterLoad rehearses rolling restarts on the suite's cluster,
// addressed only by kubeconfig and context, with the in-cluster client
// alone: two generator pods in the app's namespace, their clocks 3 s
// behind. The measured offsets are within a quarter second of the lie;
// every result lands inside the rehearsal, at the rate asked for; the
// well-behaved app passes, and the app that exits at SIGTERM fails with
// class 7, its failures put at the pods that were shutting down, which
// only holds if the clocks were corrected.
func TestInClusterLoad(t *testing.T) {
	var fs []features.Feature
	for _, c := range []struct {
		preset   appspec.Preset
		wantCode int
	}{{appspec.PresetWellBehaved, 0}, {appspec.PresetAbrupt, 1}} {
		fs = append(fs, features.New("in-cluster/"+string(c.preset)).
			Setup(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				loadAppImage(ctx, t)
				root, err := engine.FindModuleRoot()
				require.NoError(t, err)
				archive, err := incluster.BuildArchive(ctx, root, t.TempDir())
				require.NoError(t, err)
				require.NoError(t, suite.Env.Target.LoadImageArchives(ctx, archive), "the generator's image, as a registry would give it")
				return ctx
			}).
			Assess("the results land on the timeline at the right time", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				kubeconfig, kubecontext := stagingKubeconfig(t)
				out := t.TempDir()
				r := runRehearse(t, []string{incluster.SkewEnv + "=" + inClusterSkew.String()}, "run",
					"--kubeconfig", kubeconfig, "--context", kubecontext, "--namespace", "rehearsal-incluster",
					"--preset", string(c.preset), "--clients", "in-cluster", "--in-cluster-pods", "2",
					"--scenario", restart.Kind, "--baseline", "5s", "--recovery", "5s", "--out", out)
				t.Logf("rehearse run:\n%s", r.out)
				runs, _ := filepath.Glob(filepath.Join(out, "*", "run.json"))
				require.Len(t, runs, 1)
				rec, err := record.Read(runs[0])
				require.NoError(t, err)
				suite.RecordRun(t, "restore", "in-cluster/"+string(c.preset), rec)
				assert.Equal(t, c.wantCode, r.code)

				s := rec.Timeline.Snapshot()
				var clocks int
				for _, e := range s.Events {
					if e.Kind == timeline.EvNote && strings.Contains(e.Detail, "in-cluster load pod") && strings.Contains(e.Detail, "behind this machine's") {
						clocks++
						got := clockIn(t, e.Detail)
						assert.InDelta(t, (-inClusterSkew).Seconds(), got.Seconds(), 0.25, "measured: %s", e.Detail)
					}
				}
				assert.Equal(t, 2, clocks, "each pod's clock measured")
				sum, ok := rec.Load(timeline.ClientInCluster)
				require.True(t, ok, "the in-cluster client's summary")
				assert.InDelta(t, 100, sum.Achieved, 5, "the pods sent at the rate asked for: %s", sum)
				end := s.End()
				for _, q := range s.Requests {
					require.Equal(t, timeline.ClientInCluster, q.Client)
					require.True(t, q.Offset > 0 && q.Offset <= end, "request at %v outside the rehearsal (0 to %v): clocks not corrected", q.Offset, end)
				}
				if c.wantCode == 0 {
					assert.Equal(t, verdict.Pass, rec.Verdict.Outcome, rec.Verdict.Reason)
					return ctx
				}
				assert.Equal(t, verdict.Fail, rec.Verdict.Outcome)
				ck, ok := rec.Verdict.Check("error-rate/in-cluster")
				require.True(t, ok)
				require.NotNil(t, ck.Diagnosis, "%+v", ck)
				assert.Equal(t, verdict.ClassNoGracefulShutdown, ck.Diagnosis.Class, ck.Summary)
				return ctx
			}).Feature())
	}
	suite.Env.Test.Test(t, fs...)
}

// clockIn reads "its clock is 3.001s behind" from a note.
func clockIn(t *testing.T, detail string) time.Duration {
	t.Helper()
	_, rest, ok := strings.Cut(detail, "its clock is ")
	require.True(t, ok, detail)
	d, err := time.ParseDuration(strings.Fields(rest)[0])
	require.NoError(t, err, detail)
	return d
}
