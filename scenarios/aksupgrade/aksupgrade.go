// Package aksupgrade has AKS itself upgrade a cluster while the rehearsal's
// load runs: the control plane alone, a node pool's Kubernetes version, or
// a node pool's node image, through the AKS upgrade driver (package aks).
// Every state AKS reports lands on the timeline; the nodes coming and going
// are seen by the rehearsal's own watches. An upgrade cannot be undone, so
// nothing is journaled: the allow-list is what guards a cluster from it.
package aksupgrade

import (
	"context"
	"fmt"
	"strings"

	"github.com/kube-rehearse/rehearse/harness/aks"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

// Kind is the scenario kind.
const Kind = "aks-upgrade"

// The operations.
const (
	ControlPlane = "control-plane"
	Kubernetes   = "kubernetes" // a node pool's Kubernetes version
	NodeImage    = "node-image"
)

// Operations lists the operations.
func Operations() []string { return []string{ControlPlane, Kubernetes, NodeImage} }

// Driver is what the scenario needs of package aks.
type Driver interface {
	Cluster() aks.Cluster
	SetUpgradeSettings(ctx context.Context, pool string, s upgrade.Settings) error
	UpgradeControlPlane(ctx context.Context, version string, progress func(aks.Progress)) error
	UpgradePool(ctx context.Context, pool, version string, progress func(aks.Progress)) error
	UpgradeNodeImage(ctx context.Context, pool string, progress func(aks.Progress)) error
}

// Options say what AKS does.
type Options struct {
	Operation string
	Version   string // for control-plane and kubernetes
	Pool      string // for kubernetes and node-image
	// Settings, when set, are the pool's upgrade settings, set first.
	Settings *upgrade.Settings
}

// Validate checks the options.
func (o Options) Validate() error {
	switch o.Operation {
	case ControlPlane:
		if o.Version == "" {
			return fmt.Errorf("operation %s needs version=", o.Operation)
		}
	case Kubernetes:
		if o.Version == "" || o.Pool == "" {
			return fmt.Errorf("operation %s needs version= and pool=", o.Operation)
		}
	case NodeImage:
		if o.Pool == "" {
			return fmt.Errorf("operation %s needs pool=", o.Operation)
		}
	default:
		return fmt.Errorf("operation %q: use %s", o.Operation, strings.Join(Operations(), ", "))
	}
	if o.Settings != nil {
		if o.Pool == "" {
			return fmt.Errorf("upgrade settings are a node pool's: give pool=")
		}
		return o.Settings.Validate()
	}
	return nil
}

// Checks judge what clients saw. AKS drains and surges itself, so the
// checks of the harness's own drain and surge steps are not among them.
var Checks = []string{"load", "baseline", "observation", "steps",
	"error-rate", "longest-outage", "ready-endpoints", "readiness", "graceful-shutdown", "cgroup"}

// Scenario is the upgrade as steps.
func Scenario(d Driver, o Options) (scenario.Scenario, error) {
	if err := o.Validate(); err != nil {
		return scenario.Scenario{}, err
	}
	s := scenario.Scenario{Kind: Kind, Checks: Checks,
		Settings: []scenario.Setting{{Name: "cluster", Value: d.Cluster().String()}, {Name: "operation", Value: o.Operation}}}
	if o.Version != "" {
		s.Settings = append(s.Settings, scenario.Setting{Name: "version", Value: o.Version})
	}
	if o.Pool != "" {
		s.Settings = append(s.Settings, scenario.Setting{Name: "pool", Value: o.Pool})
	}
	if o.Settings != nil {
		st := *o.Settings
		s.Settings = append(s.Settings, scenario.Setting{Name: "upgradeSettings", Value: st.String()})
		s.Steps = append(s.Steps, scenario.Do("set node pool "+o.Pool+"'s upgrade settings", func(ctx context.Context, sc *scenario.Context) error {
			return d.SetUpgradeSettings(ctx, o.Pool, st)
		}))
	}
	var what string
	var run func(ctx context.Context, progress func(aks.Progress)) error
	switch o.Operation {
	case ControlPlane:
		what = "AKS upgrades the control plane to " + o.Version
		run = func(ctx context.Context, p func(aks.Progress)) error { return d.UpgradeControlPlane(ctx, o.Version, p) }
	case Kubernetes:
		what = "AKS upgrades node pool " + o.Pool + " to Kubernetes " + o.Version
		run = func(ctx context.Context, p func(aks.Progress)) error { return d.UpgradePool(ctx, o.Pool, o.Version, p) }
	case NodeImage:
		what = "AKS upgrades node pool " + o.Pool + " to its latest node image"
		run = func(ctx context.Context, p func(aks.Progress)) error { return d.UpgradeNodeImage(ctx, o.Pool, p) }
	}
	s.Steps = append(s.Steps, scenario.Do(what, func(ctx context.Context, sc *scenario.Context) error {
		if sc.Timeline != nil {
			sc.Timeline.AddEvent(timeline.Event{Offset: sc.Timeline.Now(), Kind: timeline.EvFaultInjected, Name: sc.Scenario,
				Detail: what + " (not undoable: not journaled)"})
		}
		return run(ctx, func(p aks.Progress) {
			line := fmt.Sprintf("AKS: %s: %s", p.Operation, p.State)
			if p.Done && p.Err != nil {
				line += ": FAILED: " + p.Err.Error()
			} else if p.Done {
				line += ": done"
			}
			if sc.Timeline != nil {
				sc.Timeline.Note(line)
			}
			sc.Statusf("%s", line)
		})
	}))
	return s, nil
}
