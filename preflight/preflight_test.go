package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// app is a Deployment behind a Service that does everything right: 3
// replicas, a budget allowing one eviction, a readiness probe, a preStop
// wait, a grace period within the drain timeout.
func app(ns, name string) (*appsv1.Deployment, *corev1.Service, *policyv1.PodDisruptionBudget) {
	labels := map[string]string{"app": name}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}},
				Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}}},
		}},
	}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: labels}}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: policyv1.PodDisruptionBudgetSpec{
		MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
		Status: policyv1.PodDisruptionBudgetStatus{ExpectedPods: 3, CurrentHealthy: 3, DesiredHealthy: 2, DisruptionsAllowed: 1}}
	return dep, svc, pdb
}

func run(t *testing.T, o Options, metrics string, objs ...runtime.Object) Report {
	t.Helper()
	old := readMetrics
	readMetrics = func(context.Context, kubernetes.Interface) ([]byte, error) { return []byte(metrics), nil }
	t.Cleanup(func() { readMetrics = old })
	rep, err := Run(context.Background(), fake.NewClientset(objs...), o)
	require.NoError(t, err)
	return rep
}

func rules(rep Report) map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Rule]++
	}
	return out
}

func TestAWellBehavedAppHasNoFindings(t *testing.T) {
	dep, svc, pdb := app("shop", "web")
	// The platform's own namespaces are not the user's to fix.
	sys, sysSvc, _ := app("kube-system", "coredns")
	sys.Spec.Replicas = ptr.To[int32](1)
	rep := run(t, Options{To: "v1.34"}, "", dep, svc, pdb, sys, sysSvc)
	assert.Empty(t, rep.Findings)
	assert.Empty(t, rep.NotChecked)
	assert.Len(t, rep.Rules, 7)
}

func TestEachSeededProblemIsFound(t *testing.T) {
	var objs []runtime.Object
	add := func(o ...runtime.Object) { objs = append(objs, o...) }

	// A budget that allows no eviction (minAvailable = replicas).
	dep, svc, pdb := app("shop", "blocked")
	pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable = nil, ptr.To(intstr.FromInt32(3))
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ExpectedPods: 3, CurrentHealthy: 3, DesiredHealthy: 3, DisruptionsAllowed: 0}
	add(dep, svc, pdb)
	// One replica, no budget.
	dep, svc, _ = app("shop", "single")
	dep.Spec.Replicas = ptr.To[int32](1)
	add(dep, svc)
	// Three replicas, no budget.
	dep, svc, _ = app("shop", "unbudgeted")
	add(dep, svc)
	// No readiness probe, no preStop, a grace period over the drain timeout.
	dep, svc, pdb = app("shop", "careless")
	c := &dep.Spec.Template.Spec.Containers[0]
	c.ReadinessProbe, c.Lifecycle = nil, nil
	dep.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](3600)
	add(dep, svc, pdb)

	rep := run(t, Options{To: "v1.34"}, "", objs...)
	assert.Equal(t, map[string]int{RuleBlockingPDB: 1, RuleSingleReplica: 1, RuleNoPDB: 1, RuleNoReadiness: 1, RuleNoPreStop: 1, RuleGraceOverDrain: 1}, rules(rep))
	for _, f := range rep.Findings {
		assert.NotEmpty(t, f.Evidence, f.Rule)
		assert.NotEmpty(t, f.Fix, f.Rule)
		assert.NotZero(t, f.Class, f.Rule)
	}
	assert.Equal(t, Blocker, rep.Findings[0].Severity, "worst first")
	assert.Equal(t, Blocker, rep.Worst())

	var b bytes.Buffer
	rep.Print(&b)
	assert.Contains(t, b.String(), "BLOCKER  pdb-allows-no-eviction (class 2): PodDisruptionBudget shop/blocked")
	assert.Contains(t, b.String(), "preflight: 2 blockers, 4 warnings, 0 notes from 7 rules")
}

func TestTheJSONFormRoundTrips(t *testing.T) {
	rep := Report{Findings: []Finding{{Rule: RuleNoPDB, Severity: Warning, Class: 10, Object: "x"}}, Rules: []string{RuleNoPDB}}
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"severity":"warning"`)
	var back Report
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, rep, back)
}

func TestADrainTimeoutJudgesGracePeriods(t *testing.T) {
	dep, svc, pdb := app("shop", "web")
	dep.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](600)
	assert.Empty(t, run(t, Options{}, "", dep, svc, pdb).Findings, "10 minutes fits AKS's default 30")
	assert.Equal(t, map[string]int{RuleGraceOverDrain: 1}, rules(run(t, Options{DrainTimeout: 5 * time.Minute}, "", dep, svc, pdb)))
}

const metrics = `# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",removed_release="1.32",resource="flowschemas",subresource="",version="v1beta3"} 1
apiserver_requested_deprecated_apis{group="",removed_release="",resource="endpoints",subresource="",version="v1"} 1
apiserver_requested_deprecated_apis{group="example.io",removed_release="1.40",resource="widgets",subresource="status",version="v1beta1"} 1
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",verb="GET"} 12
`

func TestRemovedAPIsCalledAreReadFromTheAPIServer(t *testing.T) {
	rep := run(t, Options{To: "v1.34.4"}, metrics)
	require.Len(t, rep.Findings, 3)
	got := map[string]Severity{}
	for _, f := range rep.Findings {
		assert.Equal(t, RuleRemovedAPIsCalled, f.Rule)
		got[f.Object] = f.Severity
	}
	assert.Equal(t, map[string]Severity{
		"flowcontrol.apiserver.k8s.io/v1beta3 flowschemas": Blocker, // gone by v1.34
		"v1 endpoints":                      Info, // deprecated, no removal
		"example.io/v1beta1 widgets/status": Info, // removed after v1.34
	}, got)
}

func TestMetricsThatCannotBeReadAreNotAPass(t *testing.T) {
	old := readMetrics
	defer func() { readMetrics = old }()
	readMetrics = func(context.Context, kubernetes.Interface) ([]byte, error) {
		return nil, apierrors.NewForbidden(schema.GroupResource{}, "/metrics", errors.New("no"))
	}
	rep, err := Run(context.Background(), fake.NewClientset(), Options{})
	require.NoError(t, err)
	assert.Contains(t, rep.NotChecked[RuleRemovedAPIsCalled], "grant get on the non-resource URL /metrics")
	var b bytes.Buffer
	rep.Print(&b)
	assert.Contains(t, b.String(), "NOT CHECKED  removed-api-called")
	assert.Contains(t, b.String(), "(1 could not look)")
}

func TestRemovedAPIsInManifests(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "old.yaml"), []byte(`apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: shop, namespace: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1beta3
kind: FlowSchema
metadata: {name: fs}
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a manifest"), 0o644))

	rep := run(t, Options{To: "v1.31", Manifests: dir}, "")
	require.Len(t, rep.Findings, 2)
	assert.Equal(t, Blocker, rep.Findings[0].Severity)
	assert.Contains(t, rep.Findings[0].Object, "Ingress web/shop")
	assert.Contains(t, rep.Findings[0].Fix, "networking.k8s.io/v1")
	assert.Contains(t, rep.Findings[0].Fix, APIRemovalsSource)
	assert.Equal(t, Info, rep.Findings[1].Severity, "removed in v1.32, after v1.31")

	_, err := Run(context.Background(), fake.NewClientset(), Options{To: "latest"})
	assert.ErrorContains(t, err, "v1.MINOR")
	assert.ErrorContains(t, Options{To: "2.0", Surge: &Surge{MaxSurge: "x"}}.Validate(), "maxSurge")
}

func TestSurgeCapacity(t *testing.T) {
	node := func(name string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.azure.com/agentpool": "np1"}},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")},
				Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("30")},
			}}
	}
	var nodes []runtime.Object
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		nodes = append(nodes, node(n))
	}
	// 12 nodes, maxSurge 33%: 4 surge nodes, 32 vCPUs, 124 addresses.
	s := Surge{MaxSurge: "33%", Pool: "np1", CPUQuotaFree: 20, Subnet: "10.240.0.0/23"}
	require.NoError(t, s.Validate())
	rep := run(t, Options{Surge: &s}, "", nodes...)
	require.Len(t, rep.Findings, 1, "the subnet fits")
	assert.Contains(t, rep.Findings[0].Evidence, "need 32 vCPUs (4 × 8) and the quota has 20 left")
	// 507 usable, 12 × 31 = 372 used, 4 × 31 = 124 more: 496 fits.
	s.CPUQuotaFree = 64
	rep = run(t, Options{Surge: &s}, "", nodes...)
	require.Len(t, rep.Findings, 1)
	assert.Equal(t, Info, rep.Findings[0].Severity)
	assert.Contains(t, rep.Findings[0].Evidence, "32 of 64 free vCPUs and 496 of 507 subnet addresses")
	s.SubnetUsed = 400
	rep = run(t, Options{Surge: &s}, "", nodes...)
	require.Len(t, rep.Findings, 1)
	assert.Equal(t, Blocker, rep.Findings[0].Severity)
	assert.Contains(t, rep.Findings[0].Evidence, "507 usable addresses; 400 are used and the surge nodes take 124 more")

	assert.Error(t, Surge{MaxSurge: "many"}.Validate())
	assert.Error(t, Surge{Subnet: "10.0.0.0"}.Validate())
}
