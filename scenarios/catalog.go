// Package scenarios is the catalogue of what a rehearsal can do to a
// cluster: each scenario kind with its settings, built from names and
// strings (the command line's --scenario and --set, a config file), and the
// undo kinds their journal entries need.
package scenarios

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/scenarios/cordon"
	"github.com/kube-rehearse/rehearse/scenarios/restart"
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
		Name:    cordon.Kind,
		Summary: "cordon and taint a node for a while (no pod moves), then undo both",
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
}

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
	for key := range set {
		if key == "timeout" || key == "hold" {
			s.duration(key, 0)
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
// may carry, for reverting a run and for `rehearse restore`.
func Undos() *journal.Registry {
	return journal.NewRegistry()
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
