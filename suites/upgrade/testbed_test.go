// The test bed's checks, run first on the suite's fresh cluster: this
// machine can host rehearsals. A kind cluster of one control plane and two
// workers at the "from" Kubernetes version, built without any registry, has
// working DNS, pod networking across nodes and a NodePort on the host's
// loopback; then a worker at the "to" version joins the running cluster,
// serves, and is removed cleanly.

package upgrade

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/netcheck"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/smoke"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const nodePort = 30080

func hostPort() int32 { return suite.Env.Provider.Config().NodePorts[0].HostPort }

func checker(t *testing.T) smoke.Checker {
	return smoke.Checker{Client: suite.Env.Provider.Client(), Namespace: "testbed", Image: netcheck.Image}
}

func TestTestBed(t *testing.T) {
	worker1, worker2 := clusterName+"-worker", clusterName+"-worker2"
	from, to := nodeimage.Versions()
	var added string

	f := features.New("kind test bed").
		Setup(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			archive, err := netcheck.BuildArchive(ctx, mustModuleRoot(t), t.TempDir())
			require.NoError(t, err)
			require.NoError(t, suite.Env.Provider.LoadImageArchive(ctx, archive))
			require.NoError(t, checker(t).Prepare(ctx))
			return ctx
		}).
		Assess("all nodes are Ready at version "+from, func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			nodes, err := suite.Env.Provider.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			require.Len(t, nodes.Items, 3)
			for _, n := range nodes.Items {
				require.True(t, cluster.NodeReady(&n), "node %s is not Ready", n.Name)
				require.Equal(t, from, n.Status.NodeInfo.KubeletVersion, "kubelet version of %s", n.Name)
			}
			return ctx
		}).
		Assess("CoreDNS resolves kubernetes.default from a pod", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			require.NoError(t, checker(t).DNS(ctx, worker1))
			return ctx
		}).
		Assess("a pod on worker 1 reaches a ClusterIP Service whose only backend runs on worker 2", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			require.NoError(t, checker(t).CrossNode(ctx, worker1, worker2))
			return ctx
		}).
		Assess("a NodePort answers on 127.0.0.1 from the host", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			require.NoError(t, checker(t).NodePort(ctx, worker2, nodePort, hostPort()))
			return ctx
		}).
		Assess("a worker at version "+to+" joins the running cluster and serves", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			start := time.Now()
			name, err := suite.Env.Provider.AddWorker(ctx, cluster.WorkerSpec{Image: suite.Env.Images.To.Image})
			added = name
			require.NoError(t, err)
			t.Logf("worker %s (%s) Ready %s after docker run", name, to, time.Since(start).Round(time.Second))
			node, err := suite.Env.Provider.Client().CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, to, node.Status.NodeInfo.KubeletVersion)
			// Pod networking both ways: into the new node through a Service,
			// and out of it to a backend on an old node.
			require.NoError(t, checker(t).CrossNode(ctx, worker1, name))
			require.NoError(t, checker(t).CrossNode(ctx, name, worker2))
			return ctx
		}).
		Assess("removing the worker leaves no Node and no container", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			require.NotEmpty(t, added, "no worker was added")
			require.NoError(t, suite.Env.Provider.Cluster.RemoveNode(ctx, added))
			_, err := suite.Env.Provider.Client().CoreV1().Nodes().Get(ctx, added, metav1.GetOptions{})
			require.True(t, apierrors.IsNotFound(err), "Node %s still exists (err=%v)", added, err)
			nodes, err := suite.Env.Provider.ListNode(ctx)
			require.NoError(t, err)
			for _, n := range nodes {
				require.NotEqual(t, added, n.Name, "container %s still exists", added)
			}
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			_ = checker(t).Cleanup(ctx)
			return ctx
		}).
		Feature()
	suite.Env.Test.Test(t, f)
}

func TestRemoveNodeRefusesTheControlPlane(t *testing.T) {
	err := suite.Env.Provider.Cluster.RemoveNode(context.Background(), clusterName+"-control-plane")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "control-plane"), err.Error())
	_, err = suite.Env.Provider.Client().CoreV1().Nodes().Get(context.Background(), clusterName+"-control-plane", metav1.GetOptions{})
	require.NoError(t, err, "the control plane must still be there")
}

func mustModuleRoot(t *testing.T) string {
	root, err := engine.FindModuleRoot()
	require.NoError(t, err)
	return root
}
