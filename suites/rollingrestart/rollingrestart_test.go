// Package rollingrestart rehearses a rolling restart of an application
// under 200 requests per second, on a local kind cluster, and judges what
// the clients saw:
//
//   - the well-behaved app passes with zero failed requests;
//   - an app that exits abruptly on SIGTERM fails with a graceful-shutdown
//     diagnosis (class 7/8);
//   - an app whose readiness probe lies fails with a readiness diagnosis
//     (class 9);
//   - a user's own app, given only manifests and an image archive, is
//     rehearsed the same way.
package rollingrestart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/fixtures/netcheck"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/deploy"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/observe"
	"github.com/kube-rehearse/rehearse/harness/rehearsal"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/restart"
)

const clusterName = "rehearse-rolling"

// Each rehearsal gets its own NodePort, mapped to its own free host port,
// so namespaces of earlier rehearsals need not be gone first.
var nodePorts = map[string]int32{"well-behaved": 30080, "abrupt": 30081, "lying": 30082, "user-app": 30083}

var (
	testenv   env.Environment
	provider  *cluster.Provider
	hostPorts = map[int32]int32{}
)

func TestMain(m *testing.M) {
	ctx := context.Background()
	if err := prepare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "rollingrestart:", err)
		os.Exit(1)
	}
	testenv = env.New()
	testenv.Setup(envfuncs.CreateClusterWithOpts(provider, clusterName), loadImages)
	testenv.Finish(envfuncs.DestroyCluster(clusterName))
	os.Exit(testenv.Run(m))
}

func prepare(ctx context.Context) error {
	if err := engine.Ensure(ctx, engine.Options{}); err != nil {
		return err
	}
	from, _ := nodeimage.Versions()
	img, err := nodeimage.Image(ctx, nodeimage.Options{Version: from})
	if err != nil {
		return err
	}
	var mappings []cluster.PortMapping
	for _, np := range nodePorts {
		hp, err := cluster.FreeHostPort()
		if err != nil {
			return err
		}
		hostPorts[np] = hp
		mappings = append(mappings, cluster.PortMapping{NodePort: np, HostPort: hp})
	}
	provider = cluster.NewProvider(cluster.Config{
		Name: clusterName, Image: img.Image, Workers: 2, NodePorts: mappings,
		ReplaceExisting: true, // this suite's own cluster name
	})
	return nil
}

// loadImages builds the rehearsal app and the stand-in "user app" images
// and loads them into every node.
func loadImages(ctx context.Context, _ *envconf.Config) (context.Context, error) {
	root, err := engine.FindModuleRoot()
	if err != nil {
		return ctx, err
	}
	dir, err := os.MkdirTemp("", "rehearse-images-")
	if err != nil {
		return ctx, err
	}
	defer os.RemoveAll(dir)
	for _, build := range []func(context.Context, string, string) (string, error){appspec.BuildArchive, netcheck.BuildArchive} {
		archive, err := build(ctx, root, dir)
		if err != nil {
			return ctx, err
		}
		if err := provider.LoadImageArchive(ctx, archive); err != nil {
			return ctx, err
		}
	}
	return ctx, nil
}

// rehearse deploys spec in its own namespace, restarts it under load and
// returns the judged result.
func rehearse(ctx context.Context, t *testing.T, key string, spec appspec.Spec) rehearsal.Result {
	t.Helper()
	spec.Namespace = "rr-" + key
	spec.Service.NodePort = nodePorts[key]
	target, err := deploy.App(ctx, provider.RESTConfig(), provider.Client(), spec)
	require.NoError(t, err)
	return run(ctx, t, key, target, spec.Name)
}

func run(ctx context.Context, t *testing.T, key string, target observe.Target, deployment string) rehearsal.Result {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPorts[nodePorts[key]])
	require.NoError(t, deploy.WaitServing(ctx, url))
	res, err := rehearsal.Run(ctx, provider.Client(), rehearsal.Plan{
		Target: target, URL: url, Rate: 200,
		Baseline: 5 * time.Second, Recovery: 5 * time.Second,
		Scenario: restart.RollingRestart{Namespace: target.Namespace, Deployment: deployment},
	})
	require.NoError(t, err)
	t.Logf("load: %s", res.Load)
	t.Logf("verdict:\n%s", res.Report)
	for _, c := range res.Report.Failed() {
		if c.Diagnosis != nil {
			t.Logf("diagnosis %s: class %d %s; fix: %s", c.Name, c.Diagnosis.Class, c.Diagnosis.Title, c.Diagnosis.Fix)
		}
	}
	if dir := os.Getenv("REHEARSE_TIMELINE_DIR"); dir != "" {
		if f, err := os.Create(filepath.Join(dir, key+".jsonl")); err == nil {
			_ = res.Timeline.Encode(f)
			f.Close()
		}
	}
	return res
}

// classes lists the failure classes diagnosed in a report.
func classes(r verdict.Report) map[verdict.Class]bool {
	out := map[verdict.Class]bool{}
	for _, c := range r.Failed() {
		if c.Diagnosis != nil {
			out[c.Diagnosis.Class] = true
		}
	}
	return out
}

func TestRollingRestart(t *testing.T) {
	wellBehaved := features.New("well-behaved app").
		Assess("passes with zero failed requests at 200 rps", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			res := rehearse(ctx, t, "well-behaved", appspec.WellBehaved(appspec.Image))
			require.Greater(t, res.Load.Sent, 4000, "at 200 rps for 10 s or more")
			require.Zero(t, res.Load.Failed, "failed requests")
			require.Empty(t, res.Report.Failed(), "every verdict passes")
			return ctx
		}).Feature()

	abrupt := features.New("app that exits abruptly on SIGTERM").
		Assess("fails with a graceful-shutdown diagnosis", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			spec, err := appspec.PresetSpec(appspec.PresetAbrupt, appspec.Image)
			require.NoError(t, err)
			res := rehearse(ctx, t, "abrupt", spec)
			require.NotZero(t, res.Load.Failed, "an abrupt exit must cost requests")
			check, ok := res.Report.Check(verdict.CheckGracefulShutdown)
			require.True(t, ok, "the report has a graceful-shutdown verdict")
			require.False(t, check.Passed(), "graceful-shutdown verdict")
			require.NotNil(t, check.Diagnosis)
			require.Contains(t, []verdict.Class{7, 8}, check.Diagnosis.Class)
			return ctx
		}).Feature()

	lying := features.New("app whose readiness probe lies").
		Assess("fails with a readiness diagnosis", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			spec, err := appspec.PresetSpec(appspec.PresetLyingReadiness, appspec.Image)
			require.NoError(t, err)
			res := rehearse(ctx, t, "lying", spec)
			require.NotZero(t, res.Load.Failed, "traffic to pods that cannot serve must fail")
			require.True(t, classes(res.Report)[9], "class 9 (readiness) diagnosed; got %v", classes(res.Report))
			return ctx
		}).Feature()

	userApp := features.New("a user's own app from manifests and an image archive").
		Assess("is rehearsed and judged", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			res := rehearseUserApp(ctx, t)
			require.Greater(t, res.Load.Sent, 1000)
			require.NotEmpty(t, res.Report.Checks, "a verdict was given")
			return ctx
		}).Feature()

	testenv.Test(t, wellBehaved, abrupt, lying, userApp)
}

// userManifests is what a user would hand over: plain YAML, their image, a
// ClusterIP Service. The harness adds its own NodePort entry to reach it.
const userManifests = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: shop
        image: %s
        imagePullPolicy: IfNotPresent
        args: ["serve", ":8080"]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports:
  - port: 80
    targetPort: 8080
`

func rehearseUserApp(ctx context.Context, t *testing.T) rehearsal.Result {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "shop.yaml"), []byte(fmt.Sprintf(userManifests, netcheck.Image)), 0o644))
	target, err := deploy.User(ctx, provider.RESTConfig(), provider.Client(), deploy.UserApp{
		Manifests: dir, Namespace: "rr-user-app", Deployment: "shop", Service: "shop", Port: 80, NodePort: nodePorts["user-app"],
	})
	require.NoError(t, err)
	return run(ctx, t, "user-app", target, "shop")
}
