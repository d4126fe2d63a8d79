// Package aks drives AKS upgrades through Azure's own SDK
// (armcontainerservice, credentials from azidentity's default chain): what
// upgrades a cluster offers, a node pool's upgrade settings, and the three
// upgrades AKS performs (the control plane alone, a node pool's Kubernetes
// version, a node pool's node image), each polled until AKS says it ended,
// with every change of the operation's state reported as it is seen, so a
// rehearsal can put it on its timeline next to what the clients saw.
package aks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

// Cluster names an AKS cluster.
type Cluster struct {
	Subscription  string
	ResourceGroup string
	Name          string
}

func (c Cluster) String() string {
	return fmt.Sprintf("AKS cluster %s (resource group %s, subscription %s)", c.Name, c.ResourceGroup, c.Subscription)
}

// Validate checks the names are given.
func (c Cluster) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"subscription", c.Subscription}, {"resource group", c.ResourceGroup}, {"cluster name", c.Name}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("no %s", f.name))
		}
	}
	return errors.Join(errs...)
}

// Driver performs AKS upgrades of one cluster.
type Driver struct {
	cluster  Cluster
	clusters *armcontainerservice.ManagedClustersClient
	pools    *armcontainerservice.AgentPoolsClient
	// PollEvery is how often a running operation is looked at (default 10 s).
	PollEvery time.Duration
}

// DefaultCredential is azidentity's default chain: environment variables,
// workload identity, managed identity, the Azure CLI's login.
func DefaultCredential() (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(nil)
}

// New makes a driver (opts nil: Azure's public cloud). Nothing is contacted.
func New(c Cluster, cred azcore.TokenCredential, opts *arm.ClientOptions) (*Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("aks: %w", err)
	}
	f, err := armcontainerservice.NewClientFactory(c.Subscription, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("aks: %w", err)
	}
	return &Driver{cluster: c, clusters: f.NewManagedClustersClient(), pools: f.NewAgentPoolsClient(), PollEvery: 10 * time.Second}, nil
}

// Cluster is the cluster driven.
func (d *Driver) Cluster() Cluster { return d.cluster }

// PoolUpgrades is what one node pool runs and may move to.
type PoolUpgrades struct {
	Name            string
	Version         string   // its Kubernetes version
	To              []string // versions it may be upgraded to
	NodeImage       string   // its node image version
	LatestNodeImage string   // the newest node image AKS offers it
}

// Upgrades is what a cluster runs and may move to.
type Upgrades struct {
	ControlPlane   string
	ControlPlaneTo []string
	Pools          []PoolUpgrades
}

// Upgrades reads the cluster's upgrade profile and each pool's.
func (d *Driver) Upgrades(ctx context.Context) (Upgrades, error) {
	c := d.cluster
	prof, err := d.clusters.GetUpgradeProfile(ctx, c.ResourceGroup, c.Name, nil)
	if err != nil {
		return Upgrades{}, fmt.Errorf("aks: upgrade profile of %s: %w", c, err)
	}
	var u Upgrades
	if p := prof.Properties; p != nil && p.ControlPlaneProfile != nil {
		u.ControlPlane = deref(p.ControlPlaneProfile.KubernetesVersion)
		for _, up := range p.ControlPlaneProfile.Upgrades {
			u.ControlPlaneTo = append(u.ControlPlaneTo, deref(up.KubernetesVersion))
		}
	}
	pager := d.pools.NewListPager(c.ResourceGroup, c.Name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return Upgrades{}, fmt.Errorf("aks: node pools of %s: %w", c, err)
		}
		for _, ap := range page.Value {
			pu := PoolUpgrades{Name: deref(ap.Name)}
			if p := ap.Properties; p != nil {
				pu.Version, pu.NodeImage = deref(p.CurrentOrchestratorVersion), deref(p.NodeImageVersion)
			}
			pp, err := d.pools.GetUpgradeProfile(ctx, c.ResourceGroup, c.Name, pu.Name, nil)
			if err != nil {
				return Upgrades{}, fmt.Errorf("aks: upgrade profile of node pool %s: %w", pu.Name, err)
			}
			if p := pp.Properties; p != nil {
				pu.LatestNodeImage = deref(p.LatestNodeImageVersion)
				for _, up := range p.Upgrades {
					pu.To = append(pu.To, deref(up.KubernetesVersion))
				}
			}
			u.Pools = append(u.Pools, pu)
		}
	}
	return u, nil
}

// apiVersion is the AKS API version of the SDK in go.mod. Settings it does
// not know cannot be set through it.
const apiVersion = "2025-02-01"

// SetUpgradeSettings sets a node pool's surge upgrade settings, by AKS's
// names. maxUnavailable and undrainableNodeBehavior are newer than this
// SDK's API version: asking for other than their defaults is refused with
// the command that sets them.
func (d *Driver) SetUpgradeSettings(ctx context.Context, pool string, s upgrade.Settings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("aks: %w", err)
	}
	def, full := upgrade.Defaults(), s.WithDefaults()
	if full.MaxUnavailable != def.MaxUnavailable || full.UndrainableNodeBehavior != def.UndrainableNodeBehavior {
		return fmt.Errorf("aks: maxUnavailable and undrainableNodeBehavior are not in AKS API %s, which this build's SDK speaks: "+
			"set them with `az aks nodepool update -g %s --cluster-name %s -n %s --max-unavailable %s --undrainable-node-behavior %s`",
			apiVersion, d.cluster.ResourceGroup, d.cluster.Name, pool, full.MaxUnavailable, full.UndrainableNodeBehavior)
	}
	c := d.cluster
	ap, err := d.pool(ctx, pool)
	if err != nil {
		return err
	}
	ap.Properties.UpgradeSettings = &armcontainerservice.AgentPoolUpgradeSettings{
		MaxSurge:                  &full.MaxSurge,
		DrainTimeoutInMinutes:     ptr(int32(full.DrainTimeoutInMinutes)),
		NodeSoakDurationInMinutes: ptr(int32(full.NodeSoakDurationInMinutes)),
	}
	poller, err := d.pools.BeginCreateOrUpdate(ctx, c.ResourceGroup, c.Name, pool, ap, nil)
	if err != nil {
		return fmt.Errorf("aks: setting node pool %s's upgrade settings: %w", pool, err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: d.pollEvery()}); err != nil {
		return fmt.Errorf("aks: setting node pool %s's upgrade settings: %w", pool, err)
	}
	return nil
}

// Progress is one observation of a running upgrade.
type Progress struct {
	At        time.Time
	Operation string // "control plane to 1.34.4", "node pool np1 node image"
	// State is AKS's provisioning state of what is upgraded
	// ("Upgrading", "UpgradingNodeImageVersion", "Succeeded", "Failed").
	State string
	Done  bool
	Err   error // the operation's error, when Done and it failed
}

// UpgradeControlPlane upgrades the control plane alone to version: the
// cluster's Kubernetes version changes and each pool's stays as it is (as
// `az aks upgrade --control-plane-only` does).
func (d *Driver) UpgradeControlPlane(ctx context.Context, version string, progress func(Progress)) error {
	c := d.cluster
	got, err := d.clusters.Get(ctx, c.ResourceGroup, c.Name, nil)
	if err != nil {
		return fmt.Errorf("aks: %s: %w", c, err)
	}
	mc := got.ManagedCluster
	if mc.Properties == nil {
		return fmt.Errorf("aks: %s has no properties", c)
	}
	mc.Properties.KubernetesVersion = &version
	for _, p := range mc.Properties.AgentPoolProfiles {
		// Each pool keeps its version: only the control plane moves.
		if p.OrchestratorVersion == nil {
			p.OrchestratorVersion = p.CurrentOrchestratorVersion
		}
	}
	op := "control plane to " + version
	poller, err := d.clusters.BeginCreateOrUpdate(ctx, c.ResourceGroup, c.Name, mc, nil)
	if err != nil {
		return fmt.Errorf("aks: %s: %w", op, err)
	}
	return follow(ctx, d.pollEvery(), op, poller, func(ctx context.Context) (string, error) {
		g, err := d.clusters.Get(ctx, c.ResourceGroup, c.Name, nil)
		if err != nil || g.Properties == nil {
			return "", err
		}
		return deref(g.Properties.ProvisioningState), nil
	}, progress)
}

// UpgradePool upgrades a node pool's Kubernetes version (a surge upgrade
// with the pool's upgrade settings).
func (d *Driver) UpgradePool(ctx context.Context, pool, version string, progress func(Progress)) error {
	c := d.cluster
	ap, err := d.pool(ctx, pool)
	if err != nil {
		return err
	}
	ap.Properties.OrchestratorVersion = &version
	op := "node pool " + pool + " to " + version
	poller, err := d.pools.BeginCreateOrUpdate(ctx, c.ResourceGroup, c.Name, pool, ap, nil)
	if err != nil {
		return fmt.Errorf("aks: %s: %w", op, err)
	}
	return follow(ctx, d.pollEvery(), op, poller, d.poolState(pool), progress)
}

// UpgradeNodeImage moves a node pool to the newest node image AKS offers it
// (a surge upgrade with the pool's upgrade settings).
func (d *Driver) UpgradeNodeImage(ctx context.Context, pool string, progress func(Progress)) error {
	c := d.cluster
	op := "node pool " + pool + " node image"
	poller, err := d.pools.BeginUpgradeNodeImageVersion(ctx, c.ResourceGroup, c.Name, pool, nil)
	if err != nil {
		return fmt.Errorf("aks: %s: %w", op, err)
	}
	return follow(ctx, d.pollEvery(), op, poller, d.poolState(pool), progress)
}

// pool reads a node pool, to be written back changed.
func (d *Driver) pool(ctx context.Context, pool string) (armcontainerservice.AgentPool, error) {
	got, err := d.pools.Get(ctx, d.cluster.ResourceGroup, d.cluster.Name, pool, nil)
	if err != nil {
		return armcontainerservice.AgentPool{}, fmt.Errorf("aks: node pool %s: %w", pool, err)
	}
	ap := got.AgentPool
	if ap.Properties == nil {
		ap.Properties = &armcontainerservice.ManagedClusterAgentPoolProfileProperties{}
	}
	return ap, nil
}

func (d *Driver) poolState(pool string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		g, err := d.pools.Get(ctx, d.cluster.ResourceGroup, d.cluster.Name, pool, nil)
		if err != nil || g.Properties == nil {
			return "", err
		}
		return deref(g.Properties.ProvisioningState), nil
	}
}

func (d *Driver) pollEvery() time.Duration {
	if d.PollEvery <= 0 {
		return 10 * time.Second
	}
	return d.PollEvery
}

// follow polls a long-running operation until it ends, reporting each
// state change of what it upgrades (read by state) as it is seen, and the
// end.
func follow[T any](ctx context.Context, every time.Duration, op string, p *runtime.Poller[T], state func(context.Context) (string, error), progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	last := ""
	report := func() {
		if s, err := state(ctx); err == nil && s != "" && s != last {
			last = s
			progress(Progress{At: time.Now(), Operation: op, State: s})
		}
	}
	report()
	t := time.NewTicker(every)
	defer t.Stop()
	for !p.Done() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("aks: %s: stopped following (the operation goes on in Azure): %w", op, ctx.Err())
		case <-t.C:
		}
		if _, err := p.Poll(ctx); err != nil {
			progress(Progress{At: time.Now(), Operation: op, State: last, Done: true, Err: err})
			return fmt.Errorf("aks: %s: %w", op, err)
		}
		report()
	}
	if _, err := p.Result(ctx); err != nil {
		progress(Progress{At: time.Now(), Operation: op, State: "Failed", Done: true, Err: err})
		return fmt.Errorf("aks: %s: %w", op, err)
	}
	report()
	progress(Progress{At: time.Now(), Operation: op, State: last, Done: true})
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr[T any](v T) *T { return &v }
