package upgrades

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

const s = time.Second

// events is a node history as the observer records it.
type events []timeline.Event

func info(name, pool, kubelet, img string) string {
	return nodeinfo.Info{Name: name, Pool: pool, Kubelet: kubelet, Image: img, OS: "Ubuntu 22.04.5 LTS"}.String()
}

func (ev *events) initial(name, pool, kubelet, img string) *events {
	*ev = append(*ev, timeline.Event{Kind: timeline.EvNodeReady, Node: name,
		Detail: timeline.InitialState + "Ready since 2026-12-07T06:00:00Z; " + info(name, pool, kubelet, img)})
	return ev
}

func (ev *events) at(sec int, kind timeline.EventKind, name string, detail ...string) *events {
	e := timeline.Event{Offset: time.Duration(sec) * s, Kind: kind, Node: name}
	if len(detail) > 0 {
		e.Detail = detail[0]
	}
	*ev = append(*ev, e)
	return ev
}

// aksSurge is an AKS node-image upgrade of pool np1 (two nodes, maxSurge
// 1): a surge node joins, each old node is cordoned, drained, deleted and
// comes back on the new image, the surge node leaves.
func aksSurge() *events {
	ev := &events{}
	ev.initial("cp", "control-plane", "v1.33.5", "A").
		initial("np1-0", "np1", "v1.33.5", "A").
		initial("np1-1", "np1", "v1.33.5", "A").
		at(30, timeline.EvNodeNotReady, "np1-1", "Ready=Unknown").at(40, timeline.EvNodeReady, "np1-1", "Ready"). // a flap, no upgrade
		at(100, timeline.EvNodeAdded, "np1-2", info("np1-2", "np1", "v1.33.5", "B")).
		at(130, timeline.EvNodeReady, "np1-2", "Ready").
		at(135, timeline.EvNodeCordoned, "np1-0").
		at(180, timeline.EvNodeDeleted, "np1-0").
		at(200, timeline.EvNodeAdded, "np1-0", info("np1-0", "np1", "v1.33.5", "B")).
		at(230, timeline.EvNodeReady, "np1-0", "Ready").
		at(235, timeline.EvNodeCordoned, "np1-1").
		at(280, timeline.EvNodeDeleted, "np1-1").
		at(300, timeline.EvNodeAdded, "np1-1", info("np1-1", "np1", "v1.33.5", "B")).
		at(330, timeline.EvNodeReady, "np1-1", "Ready").
		at(335, timeline.EvNodeCordoned, "np1-2").
		at(370, timeline.EvNodeDeleted, "np1-2")
	return ev
}

func TestAnAKSNodeImageUpgradeIsOneUpgradeOfItsPool(t *testing.T) {
	ups := Find(*aksSurge(), 500*s, Options{})
	require.Len(t, ups, 1)
	u := ups[0]
	assert.Equal(t, "np1", u.Pool)
	assert.Equal(t, 100*s, u.Start)
	assert.Equal(t, 370*s, u.LastChange)
	assert.True(t, u.Finished)
	assert.Empty(t, u.Left)
	assert.Equal(t, "node-image upgrade", u.Kind())
	assert.True(t, u.Disruptive())
	assert.Equal(t, []string{"np1-2", "np1-0", "np1-1"}, u.Added)
	assert.Equal(t, []string{"np1-0", "np1-1", "np1-2"}, u.Cordoned)
	assert.Equal(t, []string{"np1-0", "np1-1", "np1-2"}, u.Removed)
	assert.Len(t, u.Before, 2)
	assert.Len(t, u.After, 2)
	assert.Equal(t, "pool np1: node-image upgrade (3 added, 3 cordoned, 3 removed nodes), 4m30s; image A -> B", u.String())
}

func TestAnUpgradeStillUnderWayIsUnfinished(t *testing.T) {
	ups := Find(*aksSurge(), 400*s, Options{})
	require.Len(t, ups, 1)
	assert.False(t, ups[0].Finished, "quiet for 30 s only")
	assert.Contains(t, ups[0].String(), "not finished")

	// Quiet long enough, but a node is still cordoned: not finished yet.
	ev := aksSurge()
	*ev = (*ev)[:len(*ev)-1] // the surge node cordoned, never deleted
	ups = Find(*ev, 500*s, Options{})
	require.Len(t, ups, 1)
	assert.False(t, ups[0].Finished)
	// ...until it has been stuck that long: judged as it stands.
	ups = Find(*ev, 335*s+DefaultStuck, Options{})
	require.Len(t, ups, 1)
	assert.True(t, ups[0].Finished)
	assert.Equal(t, []string{"np1-2"}, ups[0].Left)
}

func TestPoolsAreUpgradedApartAndAScaleUpIsNoUpgrade(t *testing.T) {
	ev := aksSurge()
	ev.initial("np2-0", "np2", "v1.33.5", "A").
		at(120, timeline.EvNodeAdded, "np2-1", info("np2-1", "np2", "v1.33.5", "A")).
		at(150, timeline.EvNodeReady, "np2-1", "Ready")
	ups := Find(sorted(*ev), 600*s, Options{})
	require.Len(t, ups, 2)
	assert.Equal(t, "np1", ups[0].Pool)
	assert.Equal(t, "np2", ups[1].Pool)
	assert.Equal(t, "scale-up", ups[1].Kind())
	assert.False(t, ups[1].Disruptive())
	assert.True(t, ups[1].Finished)
}

func TestAKubernetesUpgradeInPlace(t *testing.T) {
	ev := &events{}
	ev.initial("kind-control-plane", "control-plane", "v1.33.13", "Debian").
		at(50, timeline.EvNodeVersionChanged, "kind-control-plane", "kubelet v1.33.13 -> v1.34.4")
	ups := Find(*ev, 200*s, Options{})
	require.Len(t, ups, 1)
	assert.Equal(t, "Kubernetes upgrade", ups[0].Kind())
	assert.Equal(t, []string{"kind-control-plane"}, ups[0].Upgraded)
	assert.Contains(t, ups[0].String(), "kubelet v1.33.13 -> v1.34.4")
}

func TestAQuietSpellSplitsTwoUpgrades(t *testing.T) {
	ev := &events{}
	ev.initial("w1", "workers", "v1", "A").
		at(10, timeline.EvNodeCordoned, "w1").at(20, timeline.EvNodeUncordoned, "w1").
		at(200, timeline.EvNodeCordoned, "w1").at(210, timeline.EvNodeUncordoned, "w1")
	ups := Find(*ev, 300*s, Options{Quiet: 30 * s})
	require.Len(t, ups, 2)
	assert.Equal(t, 10*s, ups[0].Start)
	assert.Equal(t, 200*s, ups[1].Start)
	assert.Equal(t, "nodes drained or removed", ups[0].Kind())
}

func sorted(ev []timeline.Event) []timeline.Event {
	s := timeline.Snapshot{Events: ev}
	s.Sort()
	return s.Events
}
