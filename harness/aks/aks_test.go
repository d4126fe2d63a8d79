package aks

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6/fake"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

var staging = Cluster{Subscription: "00000000-0000-0000-0000-000000000000", ResourceGroup: "rg-staging", Name: "aks-staging"}

// world is a fake AKS cluster: its state, changed by the fake servers as
// Azure would change it.
type world struct {
	mu       sync.Mutex
	cluster  armcontainerservice.ManagedCluster
	pool     armcontainerservice.AgentPool
	puts     []armcontainerservice.AgentPool
	clusterP []armcontainerservice.ManagedCluster
	// polls is how many polls an operation takes before it ends; the
	// pool reads "Upgrading..." in between.
	polls int
	fail  bool
}

func newWorld() *world {
	return &world{
		cluster: armcontainerservice.ManagedCluster{Properties: &armcontainerservice.ManagedClusterProperties{
			KubernetesVersion: ptr("1.33.5"), ProvisioningState: ptr("Succeeded"),
			AgentPoolProfiles: []*armcontainerservice.ManagedClusterAgentPoolProfile{{Name: ptr("np1"), CurrentOrchestratorVersion: ptr("1.33.5")}},
		}},
		pool: armcontainerservice.AgentPool{Name: ptr("np1"), Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			CurrentOrchestratorVersion: ptr("1.33.5"), NodeImageVersion: ptr("AKSUbuntu-2204gen2containerd-202510.01.0"), ProvisioningState: ptr("Succeeded"),
		}},
		polls: 2,
	}
}

func (w *world) driver(t *testing.T) *Driver {
	t.Helper()
	poolsSrv := fake.AgentPoolsServer{
		Get: func(_ context.Context, _, _, _ string, _ *armcontainerservice.AgentPoolsClientGetOptions) (resp azfake.Responder[armcontainerservice.AgentPoolsClientGetResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			resp.SetResponse(http.StatusOK, armcontainerservice.AgentPoolsClientGetResponse{AgentPool: w.pool}, nil)
			return
		},
		NewListPager: func(_, _ string, _ *armcontainerservice.AgentPoolsClientListOptions) (resp azfake.PagerResponder[armcontainerservice.AgentPoolsClientListResponse]) {
			w.mu.Lock()
			defer w.mu.Unlock()
			p := w.pool
			resp.AddPage(http.StatusOK, armcontainerservice.AgentPoolsClientListResponse{AgentPoolListResult: armcontainerservice.AgentPoolListResult{Value: []*armcontainerservice.AgentPool{&p}}}, nil)
			return
		},
		GetUpgradeProfile: func(_ context.Context, _, _, _ string, _ *armcontainerservice.AgentPoolsClientGetUpgradeProfileOptions) (resp azfake.Responder[armcontainerservice.AgentPoolsClientGetUpgradeProfileResponse], errResp azfake.ErrorResponder) {
			resp.SetResponse(http.StatusOK, armcontainerservice.AgentPoolsClientGetUpgradeProfileResponse{AgentPoolUpgradeProfile: armcontainerservice.AgentPoolUpgradeProfile{
				Properties: &armcontainerservice.AgentPoolUpgradeProfileProperties{LatestNodeImageVersion: ptr("AKSUbuntu-2204gen2containerd-202511.15.0"),
					Upgrades: []*armcontainerservice.AgentPoolUpgradeProfilePropertiesUpgradesItem{{KubernetesVersion: ptr("1.34.1")}}}}}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, _, _, _ string, ap armcontainerservice.AgentPool, _ *armcontainerservice.AgentPoolsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.AgentPoolsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.puts = append(w.puts, ap)
			w.pool.Properties.ProvisioningState = ptr("Upgrading")
			operation(w, &resp, armcontainerservice.AgentPoolsClientCreateOrUpdateResponse{AgentPool: ap}, func() {
				if v := ap.Properties.OrchestratorVersion; v != nil {
					w.pool.Properties.CurrentOrchestratorVersion = v
				}
			})
			return
		},
		BeginUpgradeNodeImageVersion: func(_ context.Context, _, _, _ string, _ *armcontainerservice.AgentPoolsClientBeginUpgradeNodeImageVersionOptions) (resp azfake.PollerResponder[armcontainerservice.AgentPoolsClientUpgradeNodeImageVersionResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.pool.Properties.ProvisioningState = ptr("UpgradingNodeImageVersion")
			operation(w, &resp, armcontainerservice.AgentPoolsClientUpgradeNodeImageVersionResponse{}, func() {
				w.pool.Properties.NodeImageVersion = ptr("AKSUbuntu-2204gen2containerd-202511.15.0")
			})
			return
		},
	}
	clustersSrv := fake.ManagedClustersServer{
		Get: func(_ context.Context, _, _ string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientGetResponse{ManagedCluster: w.cluster}, nil)
			return
		},
		GetUpgradeProfile: func(_ context.Context, _, _ string, _ *armcontainerservice.ManagedClustersClientGetUpgradeProfileOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetUpgradeProfileResponse], errResp azfake.ErrorResponder) {
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientGetUpgradeProfileResponse{ManagedClusterUpgradeProfile: armcontainerservice.ManagedClusterUpgradeProfile{
				Properties: &armcontainerservice.ManagedClusterUpgradeProfileProperties{ControlPlaneProfile: &armcontainerservice.ManagedClusterPoolUpgradeProfile{
					KubernetesVersion: ptr("1.33.5"), Upgrades: []*armcontainerservice.ManagedClusterPoolUpgradeProfileUpgradesItem{{KubernetesVersion: ptr("1.34.1")}}}}}}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, _, _ string, mc armcontainerservice.ManagedCluster, _ *armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.clusterP = append(w.clusterP, mc)
			w.cluster.Properties.ProvisioningState = ptr("Upgrading")
			for i := 1; i < w.polls; i++ {
				resp.AddNonTerminalResponse(http.StatusOK, nil)
			}
			if w.fail {
				resp.SetTerminalError(http.StatusConflict, "UpgradeFailed")
				return
			}
			w.cluster.Properties.KubernetesVersion = mc.Properties.KubernetesVersion
			resp.SetTerminalResponse(http.StatusOK, armcontainerservice.ManagedClustersClientCreateOrUpdateResponse{ManagedCluster: mc}, nil)
			return
		},
	}
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{Transport: fake.NewServerFactoryTransport(&fake.ServerFactory{
		AgentPoolsServer: poolsSrv, ManagedClustersServer: clustersSrv,
	})}}
	d, err := New(staging, &azfake.TokenCredential{}, opts)
	require.NoError(t, err)
	d.PollEvery = time.Millisecond
	return d
}

// operation answers a long-running operation: polls-1 non-terminal
// answers, then its end (the change made, or an error).
func operation[T any](w *world, resp *azfake.PollerResponder[T], final T, change func()) {
	for i := 1; i < w.polls; i++ {
		resp.AddNonTerminalResponse(http.StatusOK, nil)
	}
	if w.fail {
		resp.SetTerminalError(http.StatusConflict, "UpgradeFailed")
		return
	}
	change()
	resp.SetTerminalResponse(http.StatusOK, final, nil)
}

func TestUpgradesListsWhatTheClusterOffers(t *testing.T) {
	u, err := newWorld().driver(t).Upgrades(context.Background())
	require.NoError(t, err)
	assert.Equal(t, Upgrades{ControlPlane: "1.33.5", ControlPlaneTo: []string{"1.34.1"}, Pools: []PoolUpgrades{{
		Name: "np1", Version: "1.33.5", To: []string{"1.34.1"},
		NodeImage: "AKSUbuntu-2204gen2containerd-202510.01.0", LatestNodeImage: "AKSUbuntu-2204gen2containerd-202511.15.0",
	}}}, u)
}

func TestSetUpgradeSettings(t *testing.T) {
	w := newWorld()
	d := w.driver(t)
	require.NoError(t, d.SetUpgradeSettings(context.Background(), "np1", upgrade.Settings{MaxSurge: "33%", DrainTimeoutInMinutes: 5, NodeSoakDurationInMinutes: 2}))
	require.Len(t, w.puts, 1)
	us := w.puts[0].Properties.UpgradeSettings
	assert.Equal(t, "33%", *us.MaxSurge)
	assert.Equal(t, int32(5), *us.DrainTimeoutInMinutes)
	assert.Equal(t, int32(2), *us.NodeSoakDurationInMinutes)

	err := d.SetUpgradeSettings(context.Background(), "np1", upgrade.Settings{MaxSurge: "1", UndrainableNodeBehavior: upgrade.Cordon})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "az aks nodepool update -g rg-staging --cluster-name aks-staging -n np1")
	assert.Contains(t, err.Error(), "--undrainable-node-behavior Cordon")
	assert.Len(t, w.puts, 1, "nothing sent")
	assert.Error(t, d.SetUpgradeSettings(context.Background(), "np1", upgrade.Settings{MaxSurge: "many"}))
}

func TestTheControlPlaneAloneMoves(t *testing.T) {
	w := newWorld()
	var seen []Progress
	require.NoError(t, w.driver(t).UpgradeControlPlane(context.Background(), "1.34.1", func(p Progress) { seen = append(seen, p) }))
	require.Len(t, w.clusterP, 1)
	sent := w.clusterP[0].Properties
	assert.Equal(t, "1.34.1", *sent.KubernetesVersion)
	assert.Equal(t, "1.33.5", *sent.AgentPoolProfiles[0].OrchestratorVersion, "the pool keeps its version")
	require.NotEmpty(t, seen)
	assert.Equal(t, "Upgrading", seen[0].State)
	last := seen[len(seen)-1]
	assert.True(t, last.Done)
	assert.NoError(t, last.Err)
	assert.Equal(t, "control plane to 1.34.1", last.Operation)
}

func TestNodePoolUpgradesReportTheirStates(t *testing.T) {
	w := newWorld()
	w.polls = 3
	d := w.driver(t)
	var states []string
	record := func(p Progress) {
		if !p.Done {
			states = append(states, p.State)
		}
	}
	require.NoError(t, d.UpgradeNodeImage(context.Background(), "np1", record))
	assert.Equal(t, []string{"UpgradingNodeImageVersion"}, states)
	assert.Equal(t, "AKSUbuntu-2204gen2containerd-202511.15.0", *w.pool.Properties.NodeImageVersion)

	require.NoError(t, d.UpgradePool(context.Background(), "np1", "1.34.1", nil))
	assert.Equal(t, "1.34.1", *w.pool.Properties.CurrentOrchestratorVersion)
	assert.Equal(t, "1.34.1", *w.puts[len(w.puts)-1].Properties.OrchestratorVersion)
}

func TestAFailedUpgradeIsAnError(t *testing.T) {
	w := newWorld()
	w.fail = true
	var last Progress
	err := w.driver(t).UpgradeNodeImage(context.Background(), "np1", func(p Progress) { last = p })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "node pool np1 node image")
	assert.True(t, last.Done)
	assert.Error(t, last.Err)
}

func TestBadNamesAreRefused(t *testing.T) {
	_, err := New(Cluster{Name: "x"}, &azfake.TokenCredential{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no subscription")
	assert.Contains(t, err.Error(), "no resource group")
}
