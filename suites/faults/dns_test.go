package faults

// Broken name resolution (catalogue class 6). The rehearsal app calls a
// dependency (another Deployment, by its Service's cluster name) on every
// request, and each fault is rehearsed against two variants of it:
//
//   - the resilient app caches resolved addresses for 30 s, keeps using
//     expired ones while it looks them up again, and retries: it passes
//     every fault with zero failed requests;
//   - the fragile app (preset no-retry) resolves on every request and does
//     not retry: it fails the dns check with class 6, with and without
//     telling the harness why (its X-Downstream-Error header).
//
// The faults: CoreDNS scaled to 0 (coredns-outage), CoreDNS answering
// SERVFAIL for svc.cluster.local (coredns-misconfig), and DNS packets from
// the app's nodes dropped (dns-drop). After every rehearsal the cluster is
// as before: the Corefile byte for byte, CoreDNS's replicas, each node's
// packet filter (raw table) and resolver file.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/dns"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const hold = "10s"

var cases = []struct {
	name     string
	scenario string
	set      map[string]string
}{
	{"outage", dns.KindOutage, map[string]string{"hold": hold}},
	{"servfail", dns.KindMisconfig, map[string]string{"mode": dns.ModeServfail, "zone": "svc.cluster.local", "hold": hold}},
	{"drop", dns.KindDrop, map[string]string{"hold": hold}},
}

func TestDNS(t *testing.T) {
	var fs []features.Feature
	for _, c := range cases {
		for _, v := range []struct {
			variant string
			preset  appspec.Preset
			headers bool
		}{{"resilient", appspec.PresetWellBehaved, true}, {"fragile", appspec.PresetNoRetry, true}, {"fragile-noheaders", appspec.PresetNoRetry, false}} {
			if v.variant == "fragile-noheaders" && c.name != "outage" {
				continue // once is enough to show the timing alone convicts
			}
			name := c.name + "-" + v.variant
			what := "the " + v.variant + " app fails the dns check with class 6"
			if v.variant == "resilient" {
				what = "the resilient app passes with zero failed requests"
			}
			fs = append(fs, features.New(name).Assess(what, func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				before := suite.ClusterDNS(ctx, t)
				spec, err := appspec.PresetSpec(v.preset, appspec.Image)
				require.NoError(t, err)
				spec = spec.WithDependency()
				// A lookup whose packets are dropped never answers: one
				// attempt gives up after 1 s, inside the clients' timeout.
				spec.App.DownstreamTimeout = time.Second
				if !v.headers {
					spec = spec.WithoutAttributionHeaders()
				}
				res := rehearse(ctx, t, name, spec, c.scenario, c.set)
				d, ok := res.Report.Check(verdict.CheckDNS)
				require.True(t, ok)
				if v.variant == "resilient" {
					require.Equal(t, verdict.Pass, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
					for _, k := range suite.Clients {
						assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
					}
				} else {
					require.Equal(t, verdict.Fail, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
					require.Equal(t, verdict.Fail, d.Status, d.Summary)
					require.NotNil(t, d.Diagnosis)
					assert.Equal(t, verdict.ClassDNS, d.Diagnosis.Class)
					said, _ := d.Figure("failed_said_dns")
					if v.headers && c.name != "drop" {
						assert.Positive(t, said.Value, "the app said which failures were DNS")
					}
					if !v.headers {
						assert.Zero(t, said.Value)
						assert.Contains(t, d.Diagnosis.Evidence[0].Text, "did not say why")
					}
				}
				broken, _ := d.Figure("broken_for")
				recovery, _ := d.Figure("recovery_after_repair")
				t.Logf("name resolution broken for %.1f s; the last failure %.3f s after the repair", broken.Value, recovery.Value)
				assert.Equal(t, before, suite.ClusterDNS(ctx, t), "the cluster's DNS is as it was")
				return ctx
			}).Feature())
		}
	}
	// make test's core: the outage passed and failed (without headers), the
	// dropped packets failed; REHEARSE_FULL=1 runs every fault both ways.
	suite.Env.Test.Test(t, suite.Select(fs, "outage-resilient", "outage-fragile-noheaders", "drop-fragile")...)
}

// rehearse deploys spec in its own namespace and rehearses a DNS scenario.
func rehearse(ctx context.Context, t *testing.T, name string, spec appspec.Spec, kind string, set map[string]string) *harness.Result {
	t.Helper()
	app := harness.RehearsalApp(spec)
	app.Namespace = "dns-" + name
	r := suite.Rehearser(t, harness.WithApp(app), harness.WithName("dns/"+name))
	res := suite.Rehearse(ctx, t, r, app.Namespace, "dns", name, harness.Scenario(kind, set))
	left, err := journal.Leftovers(ctx, suite.Env.Target.Client(), journal.Force())
	require.NoError(t, err)
	assert.Empty(t, left, "nothing left in the journal")
	return res
}
