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
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"rehearse/fixtures/app"
	"rehearse/fixtures/netcheck"
	"rehearse/fixtures/nodeimage"
	"rehearse/harness/apply"
	"rehearse/harness/cluster"
	"rehearse/harness/engine"
	"rehearse/harness/observe"
	"rehearse/harness/rehearsal"
	"rehearse/harness/verdict"
	"rehearse/scenarios/restart"
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
		hp, err := freePort()
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
	for _, build := range []func(context.Context, string, string) (string, error){app.BuildArchive, netcheck.BuildArchive} {
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

func freePort() (int32, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port), nil
}

// rehearse deploys spec in its own namespace, restarts it under load and
// returns the judged result.
func rehearse(ctx context.Context, t *testing.T, key string, spec app.AppSpec) rehearsal.Result {
	t.Helper()
	spec.Namespace = "rr-" + key
	spec.Service.NodePort = nodePorts[key]
	manifests, err := spec.Manifests()
	require.NoError(t, err)
	deployNamespace(ctx, t, spec.Namespace)
	ap, err := apply.New(provider.RESTConfig())
	require.NoError(t, err)
	require.NoError(t, ap.ApplyTyped(ctx, spec.Namespace, manifests.Objects()...))
	waitAvailable(ctx, t, spec.Namespace, spec.Name)
	return run(ctx, t, key, observe.Target{Namespace: spec.Namespace, PodSelector: spec.PodSelector(), Service: spec.Name}, spec.Name)
}

func run(ctx context.Context, t *testing.T, key string, target observe.Target, deployment string) rehearsal.Result {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPorts[nodePorts[key]])
	waitServing(ctx, t, url)
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
			res := rehearse(ctx, t, "well-behaved", app.WellBehaved(app.Image))
			require.Greater(t, res.Load.Sent, 4000, "at 200 rps for 10 s or more")
			require.Zero(t, res.Load.Failed, "failed requests")
			require.Empty(t, res.Report.Failed(), "every verdict passes")
			return ctx
		}).Feature()

	abrupt := features.New("app that exits abruptly on SIGTERM").
		Assess("fails with a graceful-shutdown diagnosis", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			spec, err := app.PresetSpec(app.PresetAbrupt, app.Image)
			require.NoError(t, err)
			res := rehearse(ctx, t, "abrupt", spec)
			require.NotZero(t, res.Load.Failed, "an abrupt exit must cost requests")
			check, ok := res.Report.Check(verdict.CheckGracefulShutdown)
			require.True(t, ok, "the report has a graceful-shutdown verdict")
			require.False(t, check.Passed, "graceful-shutdown verdict")
			require.NotNil(t, check.Diagnosis)
			require.Contains(t, []verdict.Class{7, 8}, check.Diagnosis.Class)
			return ctx
		}).Feature()

	lying := features.New("app whose readiness probe lies").
		Assess("fails with a readiness diagnosis", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			spec, err := app.PresetSpec(app.PresetLyingReadiness, app.Image)
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
	objs, err := apply.Load(dir)
	require.NoError(t, err)
	ns := "rr-user-app"
	deployNamespace(ctx, t, ns)
	ap, err := apply.New(provider.RESTConfig())
	require.NoError(t, err)
	require.NoError(t, ap.Apply(ctx, ns, objs...))
	entry, err := apply.NodePortEntry(ctx, provider.Client(), ns, "shop", 80, nodePorts["user-app"])
	require.NoError(t, err)
	t.Logf("harness entry Service %s/%s -> shop:80", ns, entry)
	waitAvailable(ctx, t, ns, "shop")
	return run(ctx, t, "user-app", observe.Target{Namespace: ns, PodSelector: "app=shop", Service: "shop"}, "shop")
}

func deployNamespace(ctx context.Context, t *testing.T, ns string) {
	_, err := provider.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func waitAvailable(ctx context.Context, t *testing.T, ns, name string) {
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = provider.Client().AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Spec.Replicas != nil && d.Status.AvailableReplicas == *d.Spec.Replicas && d.Status.UpdatedReplicas == *d.Spec.Replicas, nil
	})
	require.NoError(t, err, "deployment %s/%s not available: %+v", ns, name, d.Status)
}

// waitServing waits until the entry answers, so the baseline measures the
// app and not kube-proxy programming a new NodePort.
func waitServing(ctx context.Context, t *testing.T, url string) {
	client := netHTTPClient()
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
	require.NoError(t, err, "%s does not answer", url)
}
