// Package rollingrestart rehearses a rolling restart of the rehearsal app
// under two kinds of client (a gateway that routes to pods itself, and a
// client going through the Service with a new connection per request), at
// 100 requests per second each (suite.Rate), on a local kind cluster, and checks that
// each variant gets the verdict it deserves, with and without the app's
// attribution headers (real users' apps do not set them):
//
//   - the well-behaved app passes with zero failed requests;
//   - an app that exits abruptly on SIGTERM fails with class 7;
//   - an app that stops listening at SIGTERM (no endpoint-drain wait)
//     fails with class 8 and a preStop wait covering the measured lag;
//   - an app that ignores SIGTERM is SIGKILLed and fails graceful shutdown;
//   - an app whose readiness lies fails with class 9 in the fault phase,
//     naming the new pods;
//   - an app that fails 2 % of requests all the time cannot be judged.
package rollingrestart

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const (
	suiteName = "rolling-restart"
)

func TestMain(m *testing.M) {
	os.Exit(suite.Main(m, "rehearse-rolling", suite.Options{PodSubnet: "10.243.0.0/16"}))
}

// expectation is the verdict a variant must get.
type expectation struct {
	outcome verdict.Status
	check   string        // the check that must fail (or cannot judge)
	class   verdict.Class // its diagnosis
	text    string        // found in its diagnosis (fix or evidence)
}

var cases = []struct {
	name   string
	preset appspec.Preset
	want   expectation
}{
	{"well-behaved", appspec.PresetWellBehaved, expectation{outcome: verdict.Pass}},
	{"abrupt", appspec.PresetAbrupt, expectation{verdict.Fail, verdict.CheckGracefulShutdown, verdict.ClassNoGracefulShutdown, "lost in flight"}},
	{"no-drain", appspec.PresetNoDrain, expectation{verdict.Fail, verdict.CheckGracefulShutdown, verdict.ClassEndpointLag, "preStop.sleep.seconds"}},
	{"ignores-sigterm", appspec.PresetIgnoresSIGTERM, expectation{verdict.Fail, verdict.CheckGracefulShutdown, verdict.ClassNoGracefulShutdown, "SIGKILL"}},
	{"lying-readiness", appspec.PresetLyingReadiness, expectation{verdict.Fail, verdict.CheckReadiness, verdict.ClassNotReadyTraffic, "was Ready at"}},
}

func TestRollingRestart(t *testing.T) {
	var fs []features.Feature
	for _, c := range cases {
		for _, headers := range []bool{true, false} {
			name := c.name
			if !headers {
				name += "-noheaders"
			}
			c := c
			fs = append(fs, features.New(name).
				Assess(verdictText(c.want), func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
					spec, err := appspec.PresetSpec(c.preset, appspec.Image)
					require.NoError(t, err)
					if !headers {
						spec = spec.WithoutAttributionHeaders()
					}
					res := rehearse(ctx, t, name, spec)
					expect(t, res, c.want)
					if c.want.outcome == verdict.Pass {
						for _, k := range suite.Clients {
							assert.Greater(t, res.Loads[k].Sent, 1000, "%s client requests", k)
							assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
						}
					}
					if c.preset == appspec.PresetNoDrain {
						assertPreStopCoversLag(t, res)
					}
					if c.preset == appspec.PresetLyingReadiness {
						ch, _ := res.Report.Check(verdict.CheckReadiness)
						for _, e := range ch.Diagnosis.Evidence {
							assert.NotContains(t, oldPods(res), e.Pod, "the new pods are named, not the old ones")
						}
						base, _ := res.Report.Check(verdict.CheckBaseline)
						assert.Equal(t, verdict.Pass, base.Status, "the failures are in the fault phase, not the baseline")
					}
					return ctx
				}).Feature())
		}
	}
	fs = append(fs, features.New("flaky").
		Assess("a baseline that is not clean cannot be judged", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			spec, err := appspec.PresetSpec(appspec.PresetFlaky, appspec.Image)
			require.NoError(t, err)
			// Its warm-up can never run clean: bound it, and let the baseline
			// say why the rest cannot be judged.
			res := rehearse(ctx, t, "flaky", spec, harness.WithPhases(20*time.Second, 0, 0))
			assert.Equal(t, verdict.CannotJudge, res.Report.Outcome)
			assert.Contains(t, res.Report.Reason, "baseline not clean")
			return ctx
		}).Feature())
	// make test's core: every verdict once, the app without our headers
	// (no-drain with them); REHEARSE_FULL=1 runs each variant both ways.
	suite.Env.Test.Test(t, suite.Select(fs, "well-behaved-noheaders", "abrupt-noheaders", "no-drain",
		"ignores-sigterm-noheaders", "lying-readiness-noheaders", "flaky")...)
}

func verdictText(e expectation) string {
	if e.outcome == verdict.Pass {
		return "passes with zero failed requests"
	}
	return "fails " + e.check + " with " + e.class.String()
}

// rehearse deploys spec in its own namespace, restarts it under load, and
// deletes the namespace afterwards.
func rehearse(ctx context.Context, t *testing.T, name string, spec appspec.Spec, opts ...harness.Option) *harness.Result {
	t.Helper()
	return rehearseScenario(ctx, t, name, spec, harness.RollingRestart(), opts...)
}

// rehearseScenario is rehearse with another scenario.
func rehearseScenario(ctx context.Context, t *testing.T, name string, spec appspec.Spec, sc harness.Planned, opts ...harness.Option) *harness.Result {
	t.Helper()
	app := harness.RehearsalApp(spec)
	app.Namespace = "rr-" + name
	r := suite.Rehearser(t, append([]harness.Option{harness.WithApp(app), harness.WithName(suiteName + "/" + name)}, opts...)...)
	return suite.Rehearse(ctx, t, r, app.Namespace, suiteName, name, sc)
}

func expect(t *testing.T, res *harness.Result, want expectation) {
	t.Helper()
	require.Equal(t, want.outcome, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
	if want.outcome == verdict.Pass {
		return
	}
	ch, ok := res.Report.Check(want.check)
	require.True(t, ok, "the report has a %s check", want.check)
	require.Equal(t, verdict.Fail, ch.Status, ch.Summary)
	require.NotNil(t, ch.Diagnosis)
	assert.Equal(t, want.class, ch.Diagnosis.Class, ch.Diagnosis.Title)
	text := ch.Diagnosis.Fix
	for _, e := range ch.Diagnosis.Evidence {
		text += "\n" + e.Text
	}
	assert.Contains(t, text, want.text)
}

// preStopSeconds finds the recommended wait in a fix text.
var preStopSeconds = regexp.MustCompile(`preStop\.sleep\.seconds: (\d+)`)

// assertPreStopCoversLag checks that the recommended preStop wait is at
// least the routing lag the rehearsal measured.
func assertPreStopCoversLag(t *testing.T, res *harness.Result) {
	t.Helper()
	ch, _ := res.Report.Check(verdict.CheckGracefulShutdown)
	require.NotNil(t, ch.Diagnosis)
	m := preStopSeconds.FindStringSubmatch(ch.Diagnosis.Fix)
	require.NotNil(t, m, "a preStop wait is recommended: %s", ch.Diagnosis.Fix)
	wait, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	lag, ok := ch.Figure("max_routing_lag")
	require.True(t, ok, "the routing lag is measured: %v", ch.Measured)
	assert.GreaterOrEqual(t, float64(wait), lag.Value, "the recommended preStop wait covers the measured routing lag")
}

// oldPods names the pods that were running before the restart.
func oldPods(res *harness.Result) string {
	var b strings.Builder
	for _, e := range res.Timeline.Events() {
		if e.Kind == timeline.EvPodDeletionRequested && e.Offset > 0 {
			b.WriteString(e.Pod + " ")
		}
	}
	return b.String()
}
