package preflight

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// The rules, by name.
const (
	RuleBlockingPDB            = "pdb-allows-no-eviction"
	RuleSingleReplica          = "single-replica"
	RuleNoPDB                  = "no-pdb"
	RuleNoReadiness            = "no-readiness-probe"
	RuleNoPreStop              = "no-prestop-wait"
	RuleGraceOverDrain         = "grace-longer-than-drain"
	RuleRemovedAPIsCalled      = "removed-api-called"
	RuleRemovedAPIsInManifests = "removed-api-in-manifests"
	RuleSurgeCapacity          = "surge-capacity"
)

// systemNamespaces are skipped unless asked for: the platform's own.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "rehearse-system"}

// workload is a Deployment or StatefulSet as the rules see it.
type workload struct {
	kind      string // "Deployment", "StatefulSet"
	namespace string
	name      string
	replicas  int32
	template  corev1.PodTemplateSpec
}

func (w workload) String() string { return w.kind + " " + w.namespace + "/" + w.name }

// world is what the workload rules read.
type world struct {
	workloads []workload
	pdbs      []policyv1.PodDisruptionBudget
	services  []corev1.Service
}

func readWorkloads(ctx context.Context, client kubernetes.Interface, namespaces []string) (world, error) {
	var w world
	all := len(namespaces) == 0
	if all {
		namespaces = []string{metav1.NamespaceAll}
	}
	keep := func(ns string) bool { return !all || !slices.Contains(systemNamespaces, ns) }
	for _, ns := range namespaces {
		deps, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return w, err
		}
		for _, d := range deps.Items {
			if keep(d.Namespace) {
				w.workloads = append(w.workloads, workload{"Deployment", d.Namespace, d.Name, replicas(d.Spec.Replicas), d.Spec.Template})
			}
		}
		sts, err := client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return w, err
		}
		for _, s := range sts.Items {
			if keep(s.Namespace) {
				w.workloads = append(w.workloads, workload{"StatefulSet", s.Namespace, s.Name, replicas(s.Spec.Replicas), s.Spec.Template})
			}
		}
		pdbs, err := client.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return w, err
		}
		for _, p := range pdbs.Items {
			if keep(p.Namespace) {
				w.pdbs = append(w.pdbs, p)
			}
		}
		svcs, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return w, err
		}
		for _, s := range svcs.Items {
			if keep(s.Namespace) {
				w.services = append(w.services, s)
			}
		}
	}
	return w, nil
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// pdbsOf are the budgets whose selector picks the workload's pods.
func (w world) pdbsOf(wl workload) []policyv1.PodDisruptionBudget {
	var out []policyv1.PodDisruptionBudget
	for _, p := range w.pdbs {
		if p.Namespace != wl.namespace || p.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(wl.template.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

// served says whether a Service sends traffic to the workload's pods.
func (w world) served(wl workload) (string, bool) {
	for _, s := range w.services {
		if s.Namespace == wl.namespace && len(s.Spec.Selector) > 0 &&
			labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(wl.template.Labels)) {
			return s.Name, true
		}
	}
	return "", false
}

type workloadRule struct {
	name  string
	check func(world, Options) []Finding
}

var workloadRules = []workloadRule{
	{RuleBlockingPDB, blockingPDBs},
	{RuleSingleReplica, singleReplicas},
	{RuleNoPDB, noPDBs},
	{RuleNoReadiness, noReadiness},
	{RuleNoPreStop, noPreStop},
	{RuleGraceOverDrain, graceOverDrain},
}

// blockingPDBs: a budget that allows no eviction while its pods are all
// healthy refuses every drain of a node with one of them (HTTP 429) until
// the drain timeout, and AKS fails the upgrade. A budget that can never
// allow one (maxUnavailable 0, minAvailable 100%) is found even when its
// pods are not all healthy now.
func blockingPDBs(w world, _ Options) []Finding {
	var out []Finding
	for _, p := range w.pdbs {
		obj := "PodDisruptionBudget " + p.Namespace + "/" + p.Name
		var why string
		switch {
		case p.Spec.MaxUnavailable != nil && isZero(*p.Spec.MaxUnavailable):
			why = "maxUnavailable is 0"
		case p.Spec.MinAvailable != nil && p.Spec.MinAvailable.String() == "100%":
			why = "minAvailable is 100%"
		case p.Status.ExpectedPods > 0 && p.Status.DisruptionsAllowed == 0 && p.Status.CurrentHealthy >= p.Status.DesiredHealthy:
			why = fmt.Sprintf("with all %d pods healthy it allows 0 disruptions (minAvailable %s = the pods it covers)",
				p.Status.CurrentHealthy, p.Spec.MinAvailable.String())
		default:
			continue
		}
		out = append(out, Finding{Rule: RuleBlockingPDB, Severity: Blocker, Class: 2, Object: obj,
			Evidence: why + ": every eviction from a drained node is refused (HTTP 429), the drain waits out its timeout and the upgrade fails",
			Fix:      "allow one disruption: maxUnavailable: 1 (or minAvailable below the replicas), with at least 2 replicas on different nodes"})
	}
	return out
}

func isZero(v intstr.IntOrString) bool {
	return (v.Type == intstr.Int && v.IntVal == 0) || (v.Type == intstr.String && strings.TrimSpace(v.StrVal) == "0%")
}

// singleReplicas: one replica is down for the whole of its node's drain,
// however well it shuts down.
func singleReplicas(w world, _ Options) []Finding {
	var out []Finding
	for _, wl := range w.workloads {
		if wl.replicas != 1 {
			continue
		}
		svc, ok := w.served(wl)
		if !ok {
			continue // a singleton nobody calls through a Service (a controller, a batch worker) may be fine
		}
		out = append(out, Finding{Rule: RuleSingleReplica, Severity: Warning, Class: 10, Object: wl.String(),
			Evidence: fmt.Sprintf("1 replica behind Service %s: while its node drains, the Service has no ready endpoint until the replacement is Ready", svc),
			Fix:      "run 2 or more replicas, spread over nodes (topologySpreadConstraints), with a PodDisruptionBudget maxUnavailable: 1"})
	}
	return out
}

// noPDBs: without a budget, a drain may evict every replica at once.
func noPDBs(w world, _ Options) []Finding {
	var out []Finding
	for _, wl := range w.workloads {
		if wl.replicas < 2 || len(w.pdbsOf(wl)) > 0 {
			continue
		}
		if _, ok := w.served(wl); !ok {
			continue
		}
		out = append(out, Finding{Rule: RuleNoPDB, Severity: Warning, Class: 10, Object: wl.String(),
			Evidence: fmt.Sprintf("%d replicas and no PodDisruptionBudget selects its pods: a drain of a node holding several of them evicts them together", wl.replicas),
			Fix:      "add a PodDisruptionBudget with maxUnavailable: 1 selecting its pods"})
	}
	return out
}

// noReadiness: a pod without a readiness probe is an endpoint as soon as
// its container starts, before it can answer.
func noReadiness(w world, _ Options) []Finding {
	var out []Finding
	for _, wl := range w.workloads {
		svc, ok := w.served(wl)
		if !ok {
			continue
		}
		for _, c := range wl.template.Spec.Containers {
			if c.ReadinessProbe == nil {
				out = append(out, Finding{Rule: RuleNoReadiness, Severity: Warning, Class: 9, Object: wl.String() + " container " + c.Name,
					Evidence: fmt.Sprintf("no readiness probe, and Service %s sends it traffic: a new pod receives requests as soon as it starts, before it can answer them", svc),
					Fix:      "add a readinessProbe on an endpoint that answers only when the app can serve"})
			}
		}
	}
	return out
}

// noPreStop: endpoint removal reaches kube-proxy and gateways after the
// pod is told to stop, so a pod that stops listening at once drops what
// is still sent to it.
func noPreStop(w world, _ Options) []Finding {
	var out []Finding
	for _, wl := range w.workloads {
		svc, ok := w.served(wl)
		if !ok {
			continue
		}
		for _, c := range wl.template.Spec.Containers {
			if len(c.Ports) == 0 && len(wl.template.Spec.Containers) > 1 {
				continue // a sidecar without ports serves nobody
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
				out = append(out, Finding{Rule: RuleNoPreStop, Severity: Warning, Class: 8, Object: wl.String() + " container " + c.Name,
					Evidence: fmt.Sprintf("no preStop hook, and Service %s sends it traffic: SIGTERM arrives while kube-proxy and gateways still route to the pod (endpoint removal reaches them late); unless the app keeps serving after SIGTERM, those requests fail", svc),
					Fix:      "add a preStop wait longer than your endpoint propagation (lifecycle.preStop.sleep.seconds: 5, or exec sleep 5), and have the app finish in-flight requests on SIGTERM"})
			}
		}
	}
	return out
}

// graceOverDrain: a pod whose grace period outlasts the drain timeout
// makes the drain give up while it is still stopping.
func graceOverDrain(w world, o Options) []Finding {
	var out []Finding
	for _, wl := range w.workloads {
		g := wl.template.Spec.TerminationGracePeriodSeconds
		if g == nil {
			continue
		}
		grace := time.Duration(*g) * time.Second
		if grace <= o.DrainTimeout {
			continue
		}
		out = append(out, Finding{Rule: RuleGraceOverDrain, Severity: Blocker, Class: 2, Object: wl.String(),
			Evidence: fmt.Sprintf("terminationGracePeriodSeconds %d (%s) is longer than the drain timeout %s: a drain waiting for the pod to stop times out, and the upgrade fails", *g, grace, o.DrainTimeout),
			Fix:      "shorten terminationGracePeriodSeconds below the drain timeout, or raise drainTimeoutInMinutes"})
	}
	return out
}
