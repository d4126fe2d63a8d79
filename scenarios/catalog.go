// Package scenarios is the catalogue of what a rehearsal can do to a
// cluster: each scenario kind with its settings, built from names and
// strings (the command line's --scenario and --set, a config file), and the
// undo kinds their journal entries need.
package scenarios

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/aks"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/scenarios/aksupgrade"
	"github.com/kube-rehearse/rehearse/scenarios/cordon"
	"github.com/kube-rehearse/rehearse/scenarios/dns"
	"github.com/kube-rehearse/rehearse/scenarios/drain"
	"github.com/kube-rehearse/rehearse/scenarios/evict"
	"github.com/kube-rehearse/rehearse/scenarios/nodeloss"
	"github.com/kube-rehearse/rehearse/scenarios/poolmove"
	"github.com/kube-rehearse/rehearse/scenarios/restart"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

// Env is what a scenario is built against: the cluster and the app.
type Env struct {
	Target     target.Target
	Namespace  string // the app's namespace
	Deployment string // the app's Deployment
}

// Kind describes one scenario kind.
type Kind struct {
	Name     string
	Summary  string
	Settings map[string]string // setting -> what it means and its default
	// Disrupts says what the scenario does to the cluster beyond the
	// rehearsal's own namespace, in words that finish "this rehearsal
	// would ..." ("" when it touches only the app): a cluster the harness
	// did not create must be allowed for it (package safety).
	Disrupts string
	build    func(ctx context.Context, env Env, set settings) (scenario.Scenario, error)
}

var kinds = []Kind{
	{
		Name:    restart.Kind,
		Summary: "replace every pod of the app's Deployment, as `kubectl rollout restart` does",
		Settings: map[string]string{
			"deployment": "the Deployment to restart (default: the app's)",
			"timeout":    "how long the rollout may take (default " + restart.DefaultTimeout.String() + ")",
		},
		build: func(_ context.Context, env Env, s settings) (scenario.Scenario, error) {
			dep := s.str("deployment", env.Deployment)
			if dep == "" {
				return scenario.Scenario{}, fmt.Errorf("no Deployment to restart: set deployment=NAME")
			}
			return restart.Scenario(env.Namespace, dep, s.duration("timeout", restart.DefaultTimeout)), s.err()
		},
	},
	{
		Name:     cordon.Kind,
		Disrupts: "cordon and taint a node (every workload loses it for new pods)",
		Summary:  "cordon and taint a node for a while (no pod moves), then undo both",
		Settings: map[string]string{
			"node": "the node (default: the first worker by name)",
			"hold": "how long the node stays cordoned (default 30s)",
		},
		build: func(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
			node := s.str("node", "")
			if node == "" {
				n, err := firstWorker(ctx, env.Target)
				if err != nil {
					return scenario.Scenario{}, err
				}
				node = n
			}
			return cordon.Scenario(node, s.duration("hold", 30*time.Second)), s.err()
		},
	},
	{
		Name:     drain.Kind,
		Disrupts: "cordon and drain a node (evicting every pod on it, not only the app's)",
		Summary:  "cordon and drain a node as `kubectl drain` does (evictions honour PodDisruptionBudgets), then uncordon it",
		Settings: map[string]string{
			"node":    "the node (default: the node running most of the app's pods)",
			"timeout": "how long the drain may take (default 30m, AKS's drainTimeoutInMinutes)",
		},
		build: func(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
			node := s.str("node", "")
			if node == "" {
				n, err := busiestWorker(ctx, env)
				if err != nil {
					return scenario.Scenario{}, err
				}
				node = n
			}
			return drain.Scenario(node, s.duration("timeout", 30*time.Minute)), s.err()
		},
	},
	{
		Name:     dns.KindOutage,
		Disrupts: "scale CoreDNS to zero (name resolution fails for every workload)",
		Summary:  "no CoreDNS pod answers for a while (its Deployment scaled to 0), then it is scaled back",
		Settings: map[string]string{
			"hold": "how long name resolution is down (default " + dns.DefaultHold.String() + ")",
		},
		build: func(_ context.Context, _ Env, s settings) (scenario.Scenario, error) {
			return dns.Outage(s.duration("hold", dns.DefaultHold)), s.err()
		},
	},
	{
		Name:     dns.KindMisconfig,
		Disrupts: "rewrite CoreDNS's Corefile (name resolution fails for every workload)",
		Summary:  "CoreDNS misconfigured for a while: its Corefile forwards to a dead upstream, or answers SERVFAIL for a zone; restored byte for byte",
		Settings: map[string]string{
			"mode": "dead-upstream (names outside the cluster fail) or servfail (default: every name of zone fails)",
			"zone": "the zone that answers SERVFAIL (default svc.cluster.local: every Service name)",
			"hold": "how long the misconfiguration lasts (default " + dns.DefaultHold.String() + ")",
		},
		build: func(_ context.Context, _ Env, s settings) (scenario.Scenario, error) {
			sc, err := dns.Misconfig(s.str("mode", dns.ModeServfail), s.str("zone", "svc.cluster.local"), s.duration("hold", dns.DefaultHold))
			if err != nil {
				return scenario.Scenario{}, err
			}
			return sc, s.err()
		},
	},
	{
		Name:     dns.KindDrop,
		Disrupts: "drop DNS packets on nodes (every pod on them)",
		Summary:  "DNS packets from the pods of chosen nodes dropped for a while (a packet-filter rule in each node), then the rules removed",
		Settings: map[string]string{
			"nodes": "comma-separated nodes (default: every worker running the app's pods)",
			"hold":  "how long the packets are dropped (default " + dns.DefaultHold.String() + ")",
		},
		build: func(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
			nodes := nodeList(s.str("nodes", ""))
			if len(nodes) == 0 {
				ns, err := appWorkers(ctx, env)
				if err != nil {
					return scenario.Scenario{}, err
				}
				nodes = ns
			}
			return dns.Drop(nodes, s.duration("hold", dns.DefaultHold)), s.err()
		},
	},
	{
		Name:    evict.Kind,
		Summary: "evict the app's pods one at a time through the Eviction API (PodDisruptionBudgets honoured), each once the previous one is replaced: a scale-down or descheduler's way",
		Settings: map[string]string{
			"pods":    "how many pods to evict, oldest first (default: as many as the app's replicas)",
			"timeout": "how long each eviction and replacement may take (default " + evict.DefaultTimeout.String() + ")",
		},
		build: func(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
			sel, replicas, err := appPods(ctx, env)
			if err != nil {
				return scenario.Scenario{}, err
			}
			o := evict.Options{Selector: sel, Replicas: replicas, Pods: s.integer("pods", 0), Timeout: s.duration("timeout", evict.DefaultTimeout)}
			if err := s.err(); err != nil {
				return scenario.Scenario{}, err
			}
			return evict.Scenario(o)
		},
	},
	{
		Name:     nodeloss.Kind,
		Disrupts: "power a node off (every pod on it)",
		Summary:  "a node lost without a drain (powered off, as a failed host or a reclaimed spot instance), optionally after a spot-style notice; brought back from its image",
		Settings: map[string]string{
			"node":    "the node (default: the worker running most of the app's pods)",
			"notice":  "a spot-style eviction notice: the node is drained for this long, then powered off (default 0: no notice; Azure's spot notice is 30s)",
			"timeout": "how long to wait for the app to serve its replicas from other nodes (default " + nodeloss.DefaultTimeout.String() + ")",
		},
		build: buildNodeLoss,
	},
	{
		Name:     poolmove.Kind,
		Disrupts: "cordon and drain the old pool's nodes (every pod on them) and open the new pool's",
		Summary:  "move the app to a new node pool, as AKS users do to change node image, VM size or cgroup version: open the new pool, cordon the old one, drain its nodes one at a time; undone by opening the old pool and closing the new one",
		Settings: map[string]string{
			"to":      "comma-separated nodes of the new pool (required; kept cordoned until the move, e.g. VM nodes of another cgroup version)",
			"from":    "comma-separated nodes of the old pool (default: the workers running the app's pods, but the new pool's)",
			"timeout": "each drain's deadline (default 30m, AKS's drainTimeoutInMinutes)",
		},
		build: func(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
			o := poolmove.Options{To: nodeList(s.str("to", "")), From: nodeList(s.str("from", "")), Timeout: s.duration("timeout", 30*time.Minute)}
			if len(o.From) == 0 && len(o.To) > 0 {
				ns, err := appWorkers(ctx, env)
				if err != nil {
					return scenario.Scenario{}, err
				}
				for _, n := range ns {
					if !slices.Contains(o.To, n) {
						o.From = append(o.From, n)
					}
				}
			}
			if err := s.err(); err != nil {
				return scenario.Scenario{}, err
			}
			return poolmove.Scenario(o)
		},
	},
	{
		Name:     upgrade.KindNodeImage,
		Disrupts: "add, drain and replace the pool's nodes (every pod on them)",
		Summary:  "AKS's rolling node-pool upgrade to a new node image: surge nodes, cordon and drain per batch, reimage, remove the surge",
		Settings: withPoolSettings(map[string]string{
			"image":   "the node image to upgrade to (or variant=)",
			"variant": "build the new image as a variant of the pool's current one: " + strings.Join(VariantNames(), ", "),
		}),
		build: buildNodeImageUpgrade,
	},
	{
		Name:     upgrade.KindKubernetes,
		Disrupts: "upgrade the control plane and replace the pool's nodes (every workload)",
		Summary:  "AKS's Kubernetes upgrade: the control plane in place with kubeadm, then the pool surged to nodes of the new version",
		Settings: withPoolSettings(map[string]string{
			"version": "the Kubernetes version to upgrade to (default: the rehearsal's \"to\" version; its node image is built if missing)",
		}),
		build: buildKubernetesUpgrade,
	},
	{
		Name:     aksupgrade.Kind,
		Summary:  "AKS itself upgrades the cluster (an AKS cluster reached by --context): the control plane alone, a node pool's Kubernetes version, or its node image, followed to the end with every state on the timeline",
		Disrupts: "have AKS upgrade the cluster, which cannot be undone",
		Settings: withPoolSettings(map[string]string{
			"subscription":  "the Azure subscription (default $AZURE_SUBSCRIPTION_ID)",
			"resourceGroup": "the cluster's resource group",
			"cluster":       "the AKS cluster's name",
			"operation":     strings.Join(aksupgrade.Operations(), ", "),
			"version":       "the Kubernetes version (for control-plane and kubernetes)",
			"pool":          "the node pool (for kubernetes and node-image; its upgrade settings are set first when any is given)",
		}),
		build: buildAKSUpgrade,
	},
}

// aksOptions reads the aks-upgrade settings (nothing is contacted).
func aksOptions(s *settings) (aks.Cluster, aksupgrade.Options, error) {
	c := aks.Cluster{Subscription: s.str("subscription", os.Getenv("AZURE_SUBSCRIPTION_ID")), ResourceGroup: s.str("resourceGroup", ""), Name: s.str("cluster", "")}
	o := aksupgrade.Options{Operation: s.str("operation", ""), Version: s.str("version", ""), Pool: s.str("pool", "")}
	for _, k := range []string{"maxSurge", "maxUnavailable", "drainTimeoutInMinutes", "nodeSoakDurationInMinutes", "undrainableNodeBehavior"} {
		if _, ok := s.m[k]; ok {
			st := upgradeSettings(s)
			o.Settings = &st
			break
		}
	}
	if err := c.Validate(); err != nil {
		return c, o, fmt.Errorf("%w: set subscription=, resourceGroup= and cluster=", err)
	}
	return c, o, o.Validate()
}

func buildAKSUpgrade(_ context.Context, _ Env, s settings) (scenario.Scenario, error) {
	c, o, err := aksOptions(&s)
	if err != nil {
		return scenario.Scenario{}, err
	}
	cred, err := aks.DefaultCredential()
	if err != nil {
		return scenario.Scenario{}, fmt.Errorf("Azure credentials (azidentity's default chain: environment, workload or managed identity, az login): %w", err)
	}
	d, err := aks.New(c, cred, nil)
	if err != nil {
		return scenario.Scenario{}, err
	}
	return aksupgrade.Scenario(d, o)
}

// withPoolSettings adds AKS's node-pool upgrade settings to a kind's own;
// a kind's own description of one of them (pool, say) is kept.
func withPoolSettings(own map[string]string) map[string]string {
	for k, v := range map[string]string{
		"pool":                      "the node pool (default workers)",
		"maxSurge":                  "surge nodes, a count or a percentage of the pool (default 10%)",
		"maxUnavailable":            "old nodes that may be down beyond the surge (default 0)",
		"drainTimeoutInMinutes":     "each node's drain deadline (default 30)",
		"nodeSoakDurationInMinutes": "wait after each batch's drain (default 0)",
		"undrainableNodeBehavior":   "Schedule (default) or Cordon",
	} {
		if _, ok := own[k]; !ok {
			own[k] = v
		}
	}
	return own
}

// intSettings are the settings read as whole numbers.
var intSettings = map[string]bool{"drainTimeoutInMinutes": true, "nodeSoakDurationInMinutes": true, "pods": true}

// Kinds lists the scenario kinds, by name.
func Kinds() []Kind {
	out := append([]Kind(nil), kinds...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names lists the scenario kinds' names.
func Names() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.Name)
	}
	return out
}

// Lookup finds a kind by name.
func Lookup(name string) (Kind, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Disruption says what a scenario kind does to the cluster beyond the
// rehearsal's own namespace ("" for nothing). A kind not in the catalogue
// (a scenario a caller built) may do anything.
func Disruption(kind string) string {
	k, ok := Lookup(kind)
	if !ok {
		return "run scenario " + kind + ", which is not in the catalogue (it may change anything)"
	}
	return k.Disrupts
}

// CheckSettings reports unknown kinds and settings without building
// anything (for validating flags before a cluster is touched).
func CheckSettings(name string, set map[string]string) error {
	k, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("unknown scenario %q: use one of %s", name, strings.Join(Names(), ", "))
	}
	var bad []string
	for key := range set {
		if _, ok := k.Settings[key]; !ok {
			bad = append(bad, key)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		var known []string
		for key := range k.Settings {
			known = append(known, key)
		}
		sort.Strings(known)
		return fmt.Errorf("scenario %s has no setting %s: its settings are %s", name, strings.Join(bad, ", "), strings.Join(known, ", "))
	}
	s := settings{m: set}
	if name == upgrade.KindNodeImage || name == upgrade.KindKubernetes {
		if err := upgradeSettings(&s).Validate(); err != nil {
			return err
		}
	}
	if name == aksupgrade.Kind {
		if _, _, err := aksOptions(&s); err != nil {
			return err
		}
	}
	if name == dns.KindMisconfig {
		if _, err := dns.Misconfig(s.str("mode", dns.ModeServfail), s.str("zone", "svc.cluster.local"), time.Second); err != nil {
			return err
		}
	}
	for key := range set {
		if key == "timeout" || key == "hold" {
			s.duration(key, 0)
		}
		if key == "notice" && s.m[key] != "0" && s.m[key] != "0s" {
			s.duration(key, 0)
		}
		if intSettings[key] {
			s.integer(key, 0)
		}
	}
	return s.err()
}

// Build makes a scenario of a kind from its settings.
func Build(ctx context.Context, name string, set map[string]string, env Env) (scenario.Scenario, error) {
	if err := CheckSettings(name, set); err != nil {
		return scenario.Scenario{}, err
	}
	k, _ := Lookup(name)
	return k.build(ctx, env, settings{m: set})
}

// Undos is the registry of every undo kind a scenario's journal entries
// may carry, for reverting a run and for `rehearse restore`. Node undos
// (a surge node to remove) are carried out on t; with t nil (a cluster
// reached by kubeconfig only) they fail and stay in the journal.
func Undos(t target.Target) *journal.Registry {
	reg := journal.NewRegistry()
	upgrade.RegisterUndos(reg, t)
	dns.RegisterUndos(reg, t)
	nodeloss.RegisterUndos(reg, t)
	return reg
}

type settings struct {
	m    map[string]string
	errs []string
}

func (s *settings) str(key, def string) string {
	if v, ok := s.m[key]; ok && v != "" {
		return v
	}
	return def
}

func (s *settings) duration(key string, def time.Duration) time.Duration {
	v, ok := s.m[key]
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		s.errs = append(s.errs, fmt.Sprintf("%s=%q is not a positive duration (use e.g. 30s, 2m)", key, v))
		return def
	}
	return d
}

func (s *settings) integer(key string, def int) int {
	v, ok := s.m[key]
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("%s=%q is not a whole number", key, v))
		return def
	}
	return n
}

func (s *settings) err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(s.errs, "; "))
}

func firstWorker(ctx context.Context, t target.Target) (string, error) {
	if t == nil {
		return "", fmt.Errorf("no node given: set node=NAME")
	}
	nodes, err := t.Nodes(ctx)
	if err != nil {
		return "", err
	}
	var workers []string
	for _, n := range nodes {
		if !n.ControlPlane {
			workers = append(workers, n.Name)
		}
	}
	if len(workers) == 0 {
		return "", fmt.Errorf("the cluster has no worker node: set node=NAME")
	}
	sort.Strings(workers)
	return workers[0], nil
}

// nodeList splits a comma-separated setting into node names.
func nodeList(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// appWorkers are the workers running the app's pods, sorted.
func appWorkers(ctx context.Context, env Env) ([]string, error) {
	if env.Target == nil || env.Namespace == "" {
		return nil, fmt.Errorf("no node given: set nodes=NAME[,NAME]")
	}
	pods, err := env.Target.Client().CoreV1().Pods(env.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range pods.Items {
		if n := p.Spec.NodeName; n != "" && p.DeletionTimestamp == nil && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no pod of the app runs on a node yet: set nodes=NAME[,NAME]")
	}
	sort.Strings(out)
	return out, nil
}

// busiestWorker is the worker running most of the app's pods (the first by
// name on a tie): draining it moves the most.
func busiestWorker(ctx context.Context, env Env) (string, error) {
	first, err := firstWorker(ctx, env.Target)
	if err != nil {
		return "", err
	}
	if env.Target == nil || env.Namespace == "" {
		return first, nil
	}
	pods, err := env.Target.Client().CoreV1().Pods(env.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			count[p.Spec.NodeName]++
		}
	}
	best := first
	for n, c := range count {
		if c > count[best] || c == count[best] && n < best && c > 0 {
			best = n
		}
	}
	return best, nil
}

// poolUpgrade is what both upgrade kinds start from: AKS's pool upgrade
// settings, read and checked, and the cluster's nodes. what names the kind
// in the error of a run without a cluster.
func poolUpgrade(ctx context.Context, env Env, s *settings, what string) (upgrade.Options, []target.Node, error) {
	st := upgradeSettings(s)
	if err := s.err(); err != nil {
		return upgrade.Options{}, nil, err
	}
	if env.Target == nil {
		return upgrade.Options{}, nil, fmt.Errorf("%s needs a cluster", what)
	}
	nodes, err := env.Target.Nodes(ctx)
	if err != nil {
		return upgrade.Options{}, nil, err
	}
	return upgrade.Options{Pool: s.str("pool", upgrade.DefaultPool), Settings: st}, nodes, nil
}

func buildNodeImageUpgrade(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
	o, nodes, err := poolUpgrade(ctx, env, &s, "a node-image upgrade")
	if err != nil {
		return scenario.Scenario{}, err
	}
	image, variant := s.str("image", ""), s.str("variant", "")
	switch {
	case image != "" && variant != "":
		return scenario.Scenario{}, fmt.Errorf("give image= or variant=, not both")
	case variant != "":
		base := ""
		for _, n := range nodes {
			if n.Pool == o.Pool && !n.ControlPlane {
				base = n.Image
				break
			}
		}
		if base == "" {
			return scenario.Scenario{}, fmt.Errorf("pool %q has no node whose image a variant could be built from", o.Pool)
		}
		if image, err = BuildVariant(ctx, base, variant); err != nil {
			return scenario.Scenario{}, err
		}
	case image == "":
		return scenario.Scenario{}, fmt.Errorf("no node image to upgrade to: set image=IMAGE or variant=%s", strings.Join(VariantNames(), "|"))
	}
	o.Image = image
	return upgrade.Scenario(upgrade.KindNodeImage, o, nodes)
}

// VariantNames lists the node image variants a node-image upgrade can build.
func VariantNames() []string {
	var out []string
	for _, v := range nodeimage.Variants() {
		out = append(out, v.Name)
	}
	return out
}

// BuildVariant builds a node image variant of base.
func BuildVariant(ctx context.Context, base, name string) (string, error) {
	return nodeimage.BuildVariant(ctx, base, name)
}

// upgradeSettings reads AKS's upgrade settings (unset ones: AKS's defaults).
func upgradeSettings(s *settings) upgrade.Settings {
	return upgrade.Settings{
		MaxSurge:                  s.str("maxSurge", ""),
		MaxUnavailable:            s.str("maxUnavailable", ""),
		DrainTimeoutInMinutes:     s.integer("drainTimeoutInMinutes", 0),
		NodeSoakDurationInMinutes: s.integer("nodeSoakDurationInMinutes", 0),
		UndrainableNodeBehavior:   s.str("undrainableNodeBehavior", ""),
	}
}

func buildKubernetesUpgrade(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
	o, nodes, err := poolUpgrade(ctx, env, &s, "a Kubernetes upgrade")
	if err != nil {
		return scenario.Scenario{}, err
	}
	_, to := nodeimage.Versions()
	version := s.str("version", to)
	if _, err := nodeimage.ParseVersion(version); err != nil {
		return scenario.Scenario{}, err
	}
	img, err := nodeimage.Image(ctx, nodeimage.Options{Version: version, Out: io.Discard})
	if err != nil {
		return scenario.Scenario{}, fmt.Errorf("the node image of %s: %w", version, err)
	}
	o.Image = img.Image
	return upgrade.KubernetesScenario(version, o, nodes)
}

func buildNodeLoss(ctx context.Context, env Env, s settings) (scenario.Scenario, error) {
	if env.Target == nil {
		return scenario.Scenario{}, fmt.Errorf("a node loss needs a cluster")
	}
	node := s.str("node", "")
	if node == "" {
		n, err := busiestWorker(ctx, env)
		if err != nil {
			return scenario.Scenario{}, err
		}
		node = n
	}
	nodes, err := env.Target.Nodes(ctx)
	if err != nil {
		return scenario.Scenario{}, err
	}
	o := nodeloss.Options{Node: node, Timeout: s.duration("timeout", nodeloss.DefaultTimeout)}
	if v := s.str("notice", "0"); v != "0" && v != "0s" {
		o.Notice = s.duration("notice", 0)
	}
	for _, n := range nodes {
		if n.Name == node {
			if n.ControlPlane {
				return scenario.Scenario{}, fmt.Errorf("node %s is the control plane: a node loss takes a worker", node)
			}
			o.Pool, o.Image = n.Pool, n.Image
		}
	}
	if o.Image == "" {
		return scenario.Scenario{}, fmt.Errorf("no node %s in the cluster (or its image is unknown): set node= to one of the workers", node)
	}
	if env.Deployment != "" {
		if o.Selector, o.Replicas, err = appPods(ctx, env); err != nil {
			return scenario.Scenario{}, err
		}
	}
	if err := s.err(); err != nil {
		return scenario.Scenario{}, err
	}
	return nodeloss.Scenario(o)
}

// appPods is the app's pod selector and its Deployment's replicas.
func appPods(ctx context.Context, env Env) (selector string, replicas int, err error) {
	if env.Target == nil || env.Namespace == "" || env.Deployment == "" {
		return "", 0, fmt.Errorf("this scenario needs the app's Deployment on a cluster")
	}
	d, err := env.Target.Client().AppsV1().Deployments(env.Namespace).Get(ctx, env.Deployment, metav1.GetOptions{})
	if err != nil {
		return "", 0, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", 0, err
	}
	replicas = 1
	if d.Spec.Replicas != nil {
		replicas = int(*d.Spec.Replicas)
	}
	return sel.String(), replicas, nil
}
