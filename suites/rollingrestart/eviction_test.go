package rollingrestart

// Graceful shutdown under evictions: the app's pods evicted one at a time
// through the Eviction API (scenario pod-eviction), under both client
// kinds, for an app that stops listening at SIGTERM:
//
//   - without a preStop wait it fails with class 8, and the fix names a
//     preStop wait covering the routing lag it measured;
//   - the same app with exactly that wait (taken from the first verdict)
//     passes with zero failed requests: the fix the verdict gives works.

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/evict"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

func TestEvictions(t *testing.T) {
	var wait time.Duration // the preStop wait the first verdict recommends
	without := features.New("evict-no-prestop").
		Assess("evicted one at a time, an app without a preStop wait fails with class 8 and the wait it needs", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			spec, err := appspec.PresetSpec(appspec.PresetNoDrain, appspec.Image)
			require.NoError(t, err)
			res := rehearseScenario(ctx, t, "evict-no-prestop", spec.WithoutAttributionHeaders(), harness.Scenario(evict.Kind, nil))
			expect(t, res, expectation{verdict.Fail, verdict.CheckGracefulShutdown, verdict.ClassEndpointLag, "preStop.sleep.seconds"})
			assertPreStopCoversLag(t, res)
			ch, _ := res.Report.Check(verdict.CheckGracefulShutdown)
			m := preStopSeconds.FindStringSubmatch(ch.Diagnosis.Fix)
			require.NotNil(t, m)
			secs, err := strconv.Atoi(m[1])
			require.NoError(t, err)
			wait = time.Duration(secs) * time.Second
			return ctx
		}).Feature()
	with := features.New("evict-recommended-prestop").
		Assess("the same app with the recommended preStop wait passes with zero failed requests", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			if wait == 0 {
				t.Skip("the case without a preStop wait did not recommend one")
			}
			spec, err := appspec.PresetSpec(appspec.PresetNoDrain, appspec.Image)
			require.NoError(t, err)
			spec.PreStop = appspec.PreStop{Kind: appspec.PreStopSleep, Wait: wait}
			t.Logf("preStop sleep %s, as the verdict recommended", wait)
			res := rehearseScenario(ctx, t, "evict-recommended-prestop", spec.WithoutAttributionHeaders(), harness.Scenario(evict.Kind, nil))
			expect(t, res, expectation{outcome: verdict.Pass})
			for _, k := range suite.Clients {
				assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
			}
			return ctx
		}).Feature()
	suite.Env.Test.Test(t, without, with)
}
