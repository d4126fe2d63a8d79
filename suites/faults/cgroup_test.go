package faults

// The cgroup audit (catalogue class 5), with a drain moving the app's pods
// to the other worker under load: what each pod's runtime detected of its
// limits and what it used, before and after the move.
//
//   - an app whose runtime reads only cgroup v2 files, on these cgroup v1
//     nodes, finds no limit, sizes its heap from the host: flagged, class 5;
//   - the well-behaved app reads both versions: it passes, and the verdict
//     says that the move to cgroup v2 could not be rehearsed on v1 nodes.

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/drain"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

func TestCgroupAudit(t *testing.T) {
	v2only := features.New("cgroup-v2-only").
		Assess("a runtime reading only cgroup v2 files is flagged on cgroup v1 nodes (class 5)", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			c := audit(ctx, t, "cgroup-v2-only", appspec.PresetCgroupV2Only)
			require.Equal(t, verdict.Fail, c.Status, c.Summary)
			require.NotNil(t, c.Diagnosis)
			assert.Equal(t, verdict.ClassCgroup, c.Diagnosis.Class)
			assert.Contains(t, c.Diagnosis.Evidence[0].Text, "reads cgroup v2 files only and found no limit")
			return ctx
		}).Feature()
	both := features.New("cgroup-both").
		Assess("a runtime reading both versions passes, and the verdict says the move to v2 could not be rehearsed here", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			c := audit(ctx, t, "cgroup-both", appspec.PresetWellBehaved)
			require.Equal(t, verdict.Pass, c.Status, c.Summary)
			assert.Contains(t, c.Summary, "cgroup v1 nodes only")
			require.NotEmpty(t, c.Details)
			assert.Contains(t, c.Details[0], "could not be rehearsed")
			before, ok := c.Figure("memory_before_mib")
			assert.True(t, ok && before.Value > 0, "memory was sampled before the move: %v", c.Measured)
			after, ok := c.Figure("memory_after_mib")
			assert.True(t, ok && after.Value > 0, "and after it: %v", c.Measured)
			return ctx
		}).Feature()
	suite.Env.Test.Test(t, suite.Select([]features.Feature{v2only, both}, "cgroup-v2-only")...)
}

// audit drains the worker running most of the preset's pods under load,
// judged with the drain's checks and the cgroup check, and returns the
// cgroup check.
func audit(ctx context.Context, t *testing.T, name string, preset appspec.Preset) verdict.Check {
	t.Helper()
	spec, err := appspec.PresetSpec(preset, appspec.Image)
	require.NoError(t, err)
	a := harness.RehearsalApp(spec)
	a.Namespace = "cg-" + name
	r := suite.Rehearser(t, harness.WithApp(a), harness.WithName("cgroup/"+name),
		harness.WithChecks(append(append([]string{}, drain.Checks...), verdict.CheckCgroup)...))
	res := suite.Rehearse(ctx, t, r, a.Namespace, "cgroup", name, harness.Scenario(drain.Kind, nil))
	left, err := journal.Leftovers(ctx, suite.Env.Target.Client(), journal.Force())
	require.NoError(t, err)
	assert.Empty(t, left, "nothing left in the journal")
	c, ok := res.Report.Check(verdict.CheckCgroup)
	require.True(t, ok, "the report has a cgroup check")
	return c
}
