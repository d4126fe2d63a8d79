package faults

// A worker lost without a drain, as a failed host or a reclaimed spot
// instance loses it:
//
//   - the well-behaved app (3 replicas spread over the workers, pods that
//     tolerate an unreachable node for 10 s) keeps serving from its other
//     node and has its replicas back within minutes: it passes, with the
//     requests its lost pods could not answer before Kubernetes noticed
//     counted and explained (also for an app without attribution headers);
//   - the same app with every replica on the lost node (the scheduler was
//     allowed to pack them: its spread constraint only says ScheduleAnyway)
//     has no pod left to serve: it fails with class 10 and the spread fix;
//   - with a spot-style notice (the node drained for 30 s, then powered
//     off) the well-behaved app loses no request at all.
//
// After each rehearsal the cluster has the nodes it had, all Ready, and no
// journal entry is left.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/nodeloss"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const nodeLossName = "node-loss"

// lossApp is the well-behaved app with a short toleration of an unreachable
// node, so that a rehearsal waits 10 s, not 30, for its replacements.
func lossApp(t *testing.T, headers bool) appspec.Spec {
	t.Helper()
	spec, err := appspec.PresetSpec(appspec.PresetWellBehaved, appspec.Image)
	require.NoError(t, err)
	spec.UnreachableToleration = 10 * time.Second
	if !headers {
		spec = spec.WithoutAttributionHeaders()
	}
	return spec
}

func TestNodeLoss(t *testing.T) {
	spread := features.New("spread-noheaders").
		Assess("a well-spread app keeps serving and has its replicas back: it passes, the requests lost before Kubernetes noticed explained", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			res := rehearseLoss(ctx, t, "spread-noheaders", lossApp(t, false), nil, nil)
			require.Equal(t, verdict.Pass, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			c, ok := res.Report.Check(verdict.CheckNodeLoss)
			require.True(t, ok)
			for _, k := range suite.Clients {
				lost, _ := c.Figure("lost_to_node_" + k.String())
				assert.Positive(t, lost.Value, "%s requests went to the lost pods before they left the endpoints", k)
			}
			notReady, ok := c.Figure("time_to_node_not_ready")
			assert.True(t, ok && notReady.Value > 20 && notReady.Value < 120, "the node controller noticed after its grace period: %v", c.Measured)
			back, ok := c.Figure("time_to_serving_again")
			assert.True(t, ok && back.Value > notReady.Value, "the replicas serve again after the node was noticed: %v", c.Measured)
			logFigures(t, c)
			return ctx
		}).Feature()

	packed := features.New("packed").
		Assess("every replica on the lost node: no pod serves, class 10 with the spread fix", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			res := rehearseLoss(ctx, t, "packed", lossApp(t, true), nil, packOnto)
			require.Equal(t, verdict.Fail, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			c, _ := res.Report.Check(verdict.CheckNodeLoss)
			require.Equal(t, verdict.Fail, c.Status, c.Summary)
			require.NotNil(t, c.Diagnosis)
			assert.Equal(t, verdict.ClassZeroReady, c.Diagnosis.Class)
			assert.Contains(t, c.Diagnosis.Fix, "whenUnsatisfiable DoNotSchedule")
			logFigures(t, c)
			return ctx
		}).Feature()

	notice := features.New("spot-notice").
		Assess("with a 30 s notice (drained, then powered off) the well-behaved app loses nothing", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			res := rehearseLoss(ctx, t, "spot-notice", lossApp(t, true), map[string]string{"notice": "30s"}, nil)
			require.Equal(t, verdict.Pass, res.Report.Outcome, "outcome (%s)", res.Report.Reason)
			for _, k := range suite.Clients {
				assert.Zero(t, res.Loads[k].Failed, "%s client: no request may fail", k)
			}
			return ctx
		}).Feature()

	suite.Env.Test.Test(t, suite.Select([]features.Feature{spread, packed, notice}, "spread-noheaders", "packed")...)
}

// rehearseLoss deploys spec in its own namespace (arrange, when given, runs
// once it is deployed) and loses a worker, then checks that the cluster is
// as before.
func rehearseLoss(ctx context.Context, t *testing.T, name string, spec appspec.Spec, set map[string]string,
	arrange func(ctx context.Context, t *testing.T, r *harness.Rehearser, ns string)) *harness.Result {
	t.Helper()
	before := nodesReady(ctx, t)
	a := harness.RehearsalApp(spec)
	a.Namespace = "nl-" + name
	r := suite.Rehearser(t, harness.WithApp(a), harness.WithName(nodeLossName+"/"+name))
	if arrange != nil {
		arrange(ctx, t, r, a.Namespace)
	}
	res := suite.Rehearse(ctx, t, r, a.Namespace, nodeLossName, name, harness.Scenario(nodeloss.Kind, set))
	assert.Equal(t, before, nodesReady(ctx, t), "the cluster has its nodes back, all Ready")
	left, err := journal.Leftovers(ctx, suite.Env.Target.Client(), journal.Force())
	require.NoError(t, err)
	assert.Empty(t, left, "nothing left in the journal")
	return res
}

// packOnto deploys the app while only the first worker takes pods, as a
// scheduler allowed to (ScheduleAnyway) may place them, then makes the
// other workers schedulable again. The rehearsal then finds every replica
// on that worker, which it loses (the worker with most of the app's pods).
func packOnto(ctx context.Context, t *testing.T, r *harness.Rehearser, ns string) {
	t.Helper()
	client := suite.Env.Target.Client()
	ns0, err := suite.Env.Target.Nodes(ctx)
	require.NoError(t, err)
	var others []string
	first := ""
	for _, n := range ns0 {
		switch {
		case n.ControlPlane:
		case first == "":
			first = n.Name
		default:
			others = append(others, n.Name)
		}
	}
	for _, n := range others {
		require.NoError(t, drain.Cordon(ctx, client, n, true))
		n := n
		t.Cleanup(func() { _ = drain.Cordon(context.Background(), client, n, false) })
	}
	dep, err := r.Deploy(ctx)
	require.NoError(t, err)
	for _, n := range others {
		require.NoError(t, drain.Cordon(ctx, client, n, false))
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: dep.Target.PodSelector})
	require.NoError(t, err)
	for _, p := range pods.Items {
		require.Equal(t, first, p.Spec.NodeName, "pod %s placed on %s", p.Name, first)
	}
}

// nodesReady maps each node to whether it is Ready.
func nodesReady(ctx context.Context, t *testing.T) map[string]bool {
	t.Helper()
	ns, err := suite.Env.Target.Nodes(ctx)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, n := range ns {
		out[n.Name] = n.Ready
	}
	return out
}

func logFigures(t *testing.T, c verdict.Check) {
	t.Helper()
	for _, f := range c.Measured {
		t.Logf("  %s", f)
	}
}
