// Package upgrade rehearses node drains and AKS-style node-image surge upgrades of the kind
// cluster's two workers under two kinds of client at 100 requests per
// second each, and checks that each gets the verdict it deserves:
//
//   - the well-behaved app (3 replicas spread over the nodes, a
//     PodDisruptionBudget allowing one disruption) passes a maxSurge 1
//     upgrade with zero failed requests, every worker on the new image
//     after it, the upgrade's figures and extrapolation reported;
//   - the same app without a PodDisruptionBudget under maxSurge 100% (both
//     workers drained at once) reaches zero ready endpoints: class 10;
//   - a budget allowing no disruption blocks the drain: with
//     drainTimeoutInMinutes 1 and undrainableNodeBehavior Cordon the
//     upgrade fails within 3 minutes naming the budget (class 2), the node
//     stays cordoned and quarantined with its surge node kept, and the
//     revert returns the cluster to its earlier nodes;
//   - an upgrade to a node image whose kubelet hands pods a resolver file
//     naming a stub resolver (127.0.0.53): an app resolving its dependency
//     through the cluster's DNS passes, one using its node's resolver fails
//     with class 6 and the failures shown to follow the node image
//     (resolverCases);
//   - last, a Kubernetes minor upgrade from the "from" to the "to" version:
//     the control plane in place with kubeadm (the API server's
//     unavailability recorded), then the workers surged; the well-behaved
//     app passes with zero failed requests and every node reports the new
//     version.
//
// Before the upgrades, `kubectl drain` (the node-drain scenario) of the
// worker running most of the app's pods, against each misbehaving variant:
//
//   - an app that exits abruptly on SIGTERM fails graceful shutdown, class 7;
//   - an app that stops listening at SIGTERM fails with class 8;
//   - an app whose readiness lies fails readiness, class 9;
//   - a single replica without a PodDisruptionBudget leaves zero ready
//     endpoints, class 10.
//
// Each upgrade moves the workers to the other of two node images (the
// cluster's own and its "refresh" variant), so the cases can run in any
// order on the one cluster.
package upgrade

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/drain"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const (
	suiteName   = "node-image-upgrade"
	clusterName = "rehearse-upgrade"
)

// TestMain brings up the suite's one cluster. The test bed's checks
// (testbed_test.go) run on it first, while it is fresh; then the drains and
// upgrades.
func TestMain(m *testing.M) {
	os.Exit(suite.Main(m, clusterName, suite.Options{ToImage: true, PodSubnet: "10.245.0.0/16"}))
}

func TestNodeImageUpgrade(t *testing.T) {
	well := features.New("surge-1").
		Assess("the well-behaved app passes a maxSurge 1 upgrade with zero failed requests", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			to := suite.OtherNodeImage(ctx, t)
			res := rehearse(ctx, t, "surge-1", appspec.PresetWellBehaved, map[string]string{"image": to, "maxSurge": "1"})
			require.Equal(t, verdict.Pass, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			for _, k := range suite.Clients {
				assert.Greater(t, res.Loads[k].Sent, 2500, "%s client requests", k)
				assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
			}
			u, ok := res.Report.Check(verdict.CheckUpgrade)
			require.True(t, ok)
			batches, _ := u.Figure("batches")
			assert.Equal(t, 2.0, batches.Value, "one batch per worker")
			assert.Contains(t, u.Summary, "40 nodes: maxSurge 1 about")
			workersOn(ctx, t, to)
			return ctx
		}).Feature()

	noPDB := features.New("surge-100-no-pdb").
		Assess("without a PodDisruptionBudget a 100% surge leaves zero ready endpoints (class 10)", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			to := suite.OtherNodeImage(ctx, t)
			res := rehearse(ctx, t, "surge-100-no-pdb", appspec.PresetNoPDB, map[string]string{"image": to, "maxSurge": "100%"})
			require.Equal(t, verdict.Fail, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			ch, _ := res.Report.Check(verdict.CheckReadyEndpoints)
			require.Equal(t, verdict.Fail, ch.Status, ch.Summary)
			require.NotNil(t, ch.Diagnosis)
			assert.Equal(t, verdict.ClassZeroReady, ch.Diagnosis.Class)
			zero, _ := ch.Figure("time_zero_ready")
			assert.Greater(t, zero.Value, 0.0)
			workersOn(ctx, t, to)
			return ctx
		}).Feature()

	blocking := features.New("blocking-pdb-cordon").
		Assess("a budget allowing no disruption fails the upgrade at the drain timeout, naming it; Cordon keeps the node quarantined until the revert", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			before := nodeImages(ctx, t)
			to := suite.OtherNodeImage(ctx, t)
			began := time.Now()
			res := rehearse(ctx, t, "blocking-pdb-cordon", appspec.PresetBlockingPDB, map[string]string{"image": to, "maxSurge": "1",
				"drainTimeoutInMinutes": "1", "undrainableNodeBehavior": upgrade.Cordon})
			took := time.Since(began)
			require.Equal(t, verdict.Fail, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			d, _ := res.Report.Check(verdict.CheckDrain)
			require.Equal(t, verdict.Fail, d.Status, d.Summary)
			require.NotNil(t, d.Diagnosis)
			assert.Equal(t, verdict.ClassPDBBlocksDrain, d.Diagnosis.Class)
			assert.Contains(t, d.Diagnosis.Fix, "ug-blocking-pdb-cordon/rehearsal-app")
			steps, _ := res.Report.Check(verdict.CheckSteps)
			assert.Equal(t, verdict.Fail, steps.Status)
			assert.Contains(t, steps.Summary, "upgrade canceled")
			assert.Less(t, took, 5*time.Minute, "the whole rehearsal, the 1 minute drain timeout included")

			// Before the revert: the blocked node cordoned and quarantined,
			// its surge node kept (the timeline holds what the watches saw).
			blocked, surge := quarantined(t, res)
			require.NotEmpty(t, blocked, "a node was labelled Quarantined")
			assert.NotEmpty(t, surge, "a surge node was kept for it")
			// After the revert: the nodes the cluster had, schedulable, unlabelled.
			assert.Equal(t, before, nodeImages(ctx, t), "the revert returns the cluster to its earlier nodes")
			n, err := suite.Env.Target.Client().CoreV1().Nodes().Get(ctx, blocked, metav1.GetOptions{})
			require.NoError(t, err)
			assert.False(t, n.Spec.Unschedulable, "uncordoned by the revert")
			assert.NotContains(t, n.Labels, upgrade.QuarantineLabel)
			left, err := journal.Leftovers(ctx, suite.Env.Target.Client(), journal.Force())
			require.NoError(t, err)
			assert.Empty(t, left, "nothing left in the journal")
			return ctx
		}).Feature()

	// Last: it moves the whole cluster to the "to" version for good.
	minorUp := features.New("kubernetes-upgrade").
		Assess("a Kubernetes minor upgrade (control plane in place, then the workers surged) passes with zero failed requests", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			_, to := nodeimage.Versions()
			spec, err := appspec.PresetSpec(appspec.PresetWellBehaved, appspec.Image)
			require.NoError(t, err)
			res := rehearseSpec(ctx, t, "kubernetes-upgrade", spec, upgrade.KindKubernetes, map[string]string{"version": to, "maxSurge": "100%"})
			require.Equal(t, verdict.Pass, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			for _, k := range suite.Clients {
				assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
			}
			nodes, err := suite.Env.Target.Nodes(ctx)
			require.NoError(t, err)
			for _, n := range nodes {
				assert.Equal(t, to, n.Version, "node %s (control plane %v) runs %s", n.Name, n.ControlPlane, to)
				assert.NotContains(t, n.Name, "surge", "no surge node is left")
			}
			u, _ := res.Report.Check(verdict.CheckUpgrade)
			down, ok := u.Figure("api_unavailable_times")
			assert.True(t, ok && down.Value >= 1, "the API server's unavailability is on the timeline: %v", u.Details)
			return ctx
		}).Feature()

	// make test's core: a drain (class 10), the surge upgrade that passes, the
	// node image whose resolver is broken (resilient passes, fragile fails
	// class 6), the blocking budget (class 2) and the minor upgrade;
	// REHEARSE_FULL=1 adds the drains of the other variants, the 100% surge
	// without a budget and the fragile app without its headers.
	fs := append(drainFeatures(), well)
	fs = append(fs, resolverFeatures()...)
	fs = append(fs, noPDB, blocking, minorUp)
	suite.Env.Test.Test(t, suite.Select(fs, "drain-single-replica", "surge-1", "resolver-stub-resilient", "resolver-stub-fragile",
		"blocking-pdb-cordon", "kubernetes-upgrade")...)
}

// resolverCases upgrade the workers to the resolver-stub node image (its
// kubelet hands pods a resolver file naming 127.0.0.53, a stub resolver
// that inside a pod is the pod itself: catalogue class 6) under an app
// that calls a dependency outside the cluster by a host name (the control
// plane node's name, which Docker's DNS knows, on a NodePort of the
// dependency's Service):
//
//   - the resilient app resolves through the cluster's DNS (dnsPolicy
//     ClusterFirst; CoreDNS runs on the control plane, which the upgrade
//     leaves alone) and passes with zero failed requests;
//   - the fragile app uses its node's resolver (dnsPolicy Default) and
//     resolves on every request: on the new nodes every request fails; it
//     fails with class 6, the failures shown to follow the node image, with
//     and without its headers (without them the diagnosis can only name the
//     image).
//
// A finished upgrade is not rolled back (AKS cannot either): after each
// case the workers are upgraded again, to the image they ran before, with
// no app, no load and no verdict (harness.Perform), as a platform team
// would ship the fixed image.
var resolverCases = []struct {
	name     string
	preset   appspec.Preset
	policy   corev1.DNSPolicy
	headers  bool
	nodePort int32 // the dependency's: each case its own, as namespaces overlap
}{
	{"resolver-stub-resilient", appspec.PresetWellBehaved, corev1.DNSClusterFirst, true, 30091},
	{"resolver-stub-fragile", appspec.PresetNoRetry, corev1.DNSDefault, true, 30092},
	{"resolver-stub-fragile-noheaders", appspec.PresetNoRetry, corev1.DNSDefault, false, 30093},
}

func resolverFeatures() []features.Feature {
	var fs []features.Feature
	for _, c := range resolverCases {
		what := "the " + strings.TrimPrefix(c.name, "resolver-stub-") + " app fails with the node image named"
		if c.preset == appspec.PresetWellBehaved {
			what = "the app resolving through the cluster's DNS passes with zero failed requests"
		}
		fs = append(fs, features.New(c.name).Assess(what, func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			controlPlane := coreDNSOnControlPlane(ctx, t)
			healthy := workerImage(ctx, t)
			require.NotContains(t, healthy, "-resolver-stub-", "the workers must start on a working node image")
			// Registered before the case's own clean-up, so it runs after
			// it, once the app is gone: whatever the verdict, the workers
			// go back to the image they ran, for the cases after this one
			// (a Kubernetes upgrade would roll CoreDNS onto broken nodes).
			t.Cleanup(func() { upgradeBack(t, healthy) })
			dnsBefore := suite.ClusterDNS(ctx, t)
			spec, err := appspec.PresetSpec(c.preset, appspec.Image)
			require.NoError(t, err)
			spec.DNSPolicy = c.policy
			// A rooted name (trailing dot): no search domains are tried, so
			// each lookup is one query, answered by Docker's DNS.
			spec = spec.WithOutsideDependency(controlPlane+".", c.nodePort)
			if !c.headers {
				spec = spec.WithoutAttributionHeaders()
			}
			res := rehearseSpec(ctx, t, c.name, spec, upgrade.KindNodeImage, map[string]string{"variant": "resolver-stub", "maxSurge": "1"})
			if c.preset == appspec.PresetWellBehaved {
				require.Equal(t, verdict.Pass, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
				for _, k := range suite.Clients {
					assert.Greater(t, res.Loads[k].Sent, 2500, "%s client requests", k)
					assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
				}
			} else {
				require.Equal(t, verdict.Fail, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
				for _, k := range suite.Clients {
					ch, ok := res.Report.Check(verdict.CheckErrorRate + "/" + k.String())
					require.True(t, ok)
					require.Equal(t, verdict.Fail, ch.Status, ch.Summary)
					require.NotNil(t, ch.Diagnosis)
					if c.headers {
						assert.Equal(t, verdict.ClassDNS, ch.Diagnosis.Class, ch.Diagnosis.Title)
						assert.Contains(t, ch.Diagnosis.Fix, "127.0.0.53")
					}
					// Without headers only the gateway, which chose the pod,
					// knows where a request failed.
					if c.headers || k == timeline.ClientGateway {
						assert.Contains(t, evidence(ch.Diagnosis), "the failures follow the node image")
					}
					if !c.headers && k == timeline.ClientGateway {
						assert.Equal(t, "the app failed on the nodes of the new node image", ch.Diagnosis.Title)
					}
				}
			}
			nodes, err := suite.Env.Target.Nodes(ctx)
			require.NoError(t, err)
			for _, n := range nodes {
				if !n.ControlPlane {
					assert.Contains(t, n.Image, "-resolver-stub-", "node %s runs the broken image", n.Name)
				}
			}
			assert.Equal(t, dnsBefore, suite.ClusterDNS(ctx, t), "the cluster's DNS is as it was: the image broke only what its kubelet hands to pods")
			return ctx
		}).Feature())
	}
	return fs
}

// workerImage is the image the workers run (all of them: the cases leave
// them on one).
func workerImage(ctx context.Context, t *testing.T) string {
	t.Helper()
	images := workerImages(ctx, t)
	require.Len(t, images, 1, "the workers run one image")
	return images[0]
}

// workerImages lists the images the workers run, each once.
func workerImages(ctx context.Context, t *testing.T) []string {
	t.Helper()
	nodes, err := suite.Env.Target.Nodes(ctx)
	require.NoError(t, err)
	var out []string
	for _, n := range nodes {
		if !n.ControlPlane && !slices.Contains(out, n.Image) {
			out = append(out, n.Image)
		}
	}
	return out
}

// upgradeBack upgrades the workers to image all at once (maxUnavailable
// 100%, no surge: nothing runs there to protect), unjudged.
func upgradeBack(t *testing.T, image string) {
	ctx := context.Background()
	if slices.Equal(workerImages(ctx, t), []string{image}) {
		return
	}
	out, err := harness.Perform(ctx, suite.Env.Target, harness.Scenario(upgrade.KindNodeImage,
		map[string]string{"image": image, "maxSurge": "0", "maxUnavailable": "100%"}), harness.PerformOptions{})
	if err == nil {
		err = out.Err
	}
	if err != nil {
		t.Errorf("upgrading the workers back to %s: %v", image, err)
		return
	}
	workersOn(ctx, t, image)
}

// coreDNSOnControlPlane requires every CoreDNS pod to run on the control
// plane (where kubeadm put them; the upgraded pool is the workers), so the
// resilient case judges the app, not where CoreDNS happened to be, and
// returns the control plane node's name.
func coreDNSOnControlPlane(ctx context.Context, t *testing.T) string {
	t.Helper()
	nodes, err := suite.Env.Target.Nodes(ctx)
	require.NoError(t, err)
	controlPlane := map[string]bool{}
	name := ""
	for _, n := range nodes {
		if n.ControlPlane {
			controlPlane[n.Name], name = true, n.Name
		}
	}
	require.NotEmpty(t, name, "no control plane node")
	pods, err := suite.Env.Target.Client().CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	require.NoError(t, err)
	for _, p := range pods.Items {
		require.True(t, controlPlane[p.Spec.NodeName], "CoreDNS pod %s runs on %s, not the control plane: the case would judge where CoreDNS is", p.Name, p.Spec.NodeName)
	}
	return name
}

func evidence(d *verdict.Diagnosis) string {
	var b strings.Builder
	for _, e := range d.Evidence {
		b.WriteString(e.Text + "\n")
	}
	return b.String()
}

// drainCases are the misbehaving variants a drain must catch.
var drainCases = []struct {
	name     string
	preset   appspec.Preset
	replicas int32 // 0: the preset's
	check    string
	class    verdict.Class
}{
	{"drain-abrupt", appspec.PresetAbrupt, 0, verdict.CheckGracefulShutdown, verdict.ClassNoGracefulShutdown},
	{"drain-no-drain", appspec.PresetNoDrain, 0, verdict.CheckGracefulShutdown, verdict.ClassEndpointLag},
	{"drain-lying-readiness", appspec.PresetLyingReadiness, 0, verdict.CheckReadiness, verdict.ClassNotReadyTraffic},
	{"drain-single-replica", appspec.PresetNoPDB, 1, verdict.CheckReadyEndpoints, verdict.ClassZeroReady},
}

func drainFeatures() []features.Feature {
	var fs []features.Feature
	for _, c := range drainCases {
		fs = append(fs, features.New(c.name).
			Assess("a drain fails "+c.check+" with "+c.class.String(), func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				spec, err := appspec.PresetSpec(c.preset, appspec.Image)
				require.NoError(t, err)
				if c.replicas > 0 {
					spec.Replicas = c.replicas
				}
				res := rehearseSpec(ctx, t, c.name, spec, drain.Kind, nil)
				require.Equal(t, verdict.Fail, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
				ch, ok := res.Report.Check(c.check)
				require.True(t, ok)
				require.Equal(t, verdict.Fail, ch.Status, ch.Summary)
				require.NotNil(t, ch.Diagnosis)
				assert.Equal(t, c.class, ch.Diagnosis.Class, ch.Diagnosis.Title)
				d, _ := res.Report.Check(verdict.CheckDrain)
				assert.Equal(t, verdict.Pass, d.Status, "the drain itself went through: %s", d.Summary)
				return ctx
			}).Feature())
	}
	return fs
}

// rehearse deploys a preset in its own namespace and upgrades the workers.
func rehearse(ctx context.Context, t *testing.T, name string, preset appspec.Preset, set map[string]string) *harness.Result {
	t.Helper()
	spec, err := appspec.PresetSpec(preset, appspec.Image)
	require.NoError(t, err)
	return rehearseSpec(ctx, t, name, spec, upgrade.KindNodeImage, set)
}

// rehearseSpec deploys spec in its own namespace and rehearses a scenario
// of the catalogue.
func rehearseSpec(ctx context.Context, t *testing.T, name string, spec appspec.Spec, kind string, set map[string]string) *harness.Result {
	t.Helper()
	app := harness.RehearsalApp(spec)
	app.Namespace = "ug-" + name
	r := suite.Rehearser(t, harness.WithApp(app), harness.WithName(suiteName+"/"+name))
	return suite.Rehearse(ctx, t, r, app.Namespace, suiteName, name, harness.Scenario(kind, set))
}

// nodeImages maps each node to its image.
func nodeImages(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	nodes, err := suite.Env.Target.Nodes(ctx)
	require.NoError(t, err)
	out := map[string]string{}
	for _, n := range nodes {
		out[n.Name] = n.Image
	}
	return out
}

// workersOn checks that every worker runs image and no surge node is left.
func workersOn(ctx context.Context, t *testing.T, image string) {
	t.Helper()
	nodes, err := suite.Env.Target.Nodes(ctx)
	require.NoError(t, err)
	workers := 0
	for _, n := range nodes {
		if n.ControlPlane {
			continue
		}
		workers++
		assert.Equal(t, image, n.Image, "node %s runs the new image", n.Name)
		assert.NotContains(t, n.Name, "surge", "no surge node is left")
		assert.True(t, n.Ready, "node %s is Ready", n.Name)
	}
	assert.Equal(t, 2, workers, "the pool keeps its size")
}

// quarantined finds, on the timeline, the node labelled Quarantined and the
// surge node that was still there when the revert began.
func quarantined(t *testing.T, res *harness.Result) (blocked, surge string) {
	t.Helper()
	var revertAt time.Duration = -1
	added, removed := map[string]bool{}, map[string]bool{}
	for _, e := range res.Timeline.Events() {
		switch e.Kind {
		case timeline.EvFaultInjected:
			if strings.Contains(e.Detail, upgrade.QuarantineLabel+"=Quarantined") {
				blocked = e.Node
				if blocked == "" {
					f := strings.Fields(e.Detail) // "label node NAME key=Quarantined"
					if len(f) > 2 {
						blocked = f[2]
					}
				}
			}
		case timeline.EvFaultReverted:
			if revertAt < 0 {
				revertAt = e.Offset
			}
		case timeline.EvNodeAdded:
			if strings.Contains(e.Node, "surge") {
				added[e.Node] = true
			}
		case timeline.EvNodeDeleted:
			if revertAt < 0 || e.Offset < revertAt {
				removed[e.Node] = true
			}
		}
	}
	for n := range added {
		if !removed[n] {
			surge = n
		}
	}
	return blocked, surge
}
