package aksupgrade

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/aks"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
)

// driver records calls and reports two states, as AKS would.
type driver struct {
	calls []string
	fail  error
}

func (d *driver) Cluster() aks.Cluster {
	return aks.Cluster{Subscription: "s", ResourceGroup: "rg", Name: "c"}
}
func (d *driver) SetUpgradeSettings(_ context.Context, pool string, s upgrade.Settings) error {
	d.calls = append(d.calls, "settings "+pool+" "+s.MaxSurge)
	return nil
}
func (d *driver) op(name string, p func(aks.Progress)) error {
	d.calls = append(d.calls, name)
	p(aks.Progress{Operation: name, State: "Upgrading"})
	p(aks.Progress{Operation: name, State: "Succeeded", Done: true, Err: d.fail})
	return d.fail
}
func (d *driver) UpgradeControlPlane(_ context.Context, v string, p func(aks.Progress)) error {
	return d.op("control plane "+v, p)
}
func (d *driver) UpgradePool(_ context.Context, pool, v string, p func(aks.Progress)) error {
	return d.op("pool "+pool+" "+v, p)
}
func (d *driver) UpgradeNodeImage(_ context.Context, pool string, p func(aks.Progress)) error {
	return d.op("node image "+pool, p)
}

func TestTheUpgradeAndEveryStateLandOnTheTimeline(t *testing.T) {
	d := &driver{}
	s, err := Scenario(d, Options{Operation: NodeImage, Pool: "np1", Settings: &upgrade.Settings{MaxSurge: "33%"}})
	require.NoError(t, err)
	tl := timeline.New(time.Now())
	out := scenario.Run(context.Background(), &scenario.Context{Timeline: tl}, s)
	require.NoError(t, out.Err)
	assert.Equal(t, []string{"settings np1 33%", "node image np1"}, d.calls)
	var notes []string
	injected := 0
	for _, e := range tl.Events() {
		switch e.Kind {
		case timeline.EvNote:
			notes = append(notes, e.Detail)
		case timeline.EvFaultInjected:
			injected++
		}
	}
	assert.Equal(t, 1, injected)
	assert.Equal(t, []string{"AKS: node image np1: Upgrading", "AKS: node image np1: Succeeded: done"}, notes)
}

func TestAFailedUpgradeFailsItsStep(t *testing.T) {
	d := &driver{fail: errors.New("UpgradeFailed")}
	s, err := Scenario(d, Options{Operation: ControlPlane, Version: "1.34.1"})
	require.NoError(t, err)
	out := scenario.Run(context.Background(), &scenario.Context{Timeline: timeline.New(time.Now())}, s)
	assert.Equal(t, "AKS upgrades the control plane to 1.34.1", out.FailedStep)
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{Operation: "reboot"}, {Operation: ControlPlane}, {Operation: Kubernetes, Version: "1.34.1"},
		{Operation: NodeImage}, {Operation: ControlPlane, Version: "1.34.1", Settings: &upgrade.Settings{MaxSurge: "1"}}} {
		assert.Error(t, o.Validate(), "%+v", o)
	}
	assert.NoError(t, Options{Operation: Kubernetes, Version: "1.34.1", Pool: "np1"}.Validate())
}
