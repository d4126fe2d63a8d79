package rehearsal

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/upgrades"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

var S = tt.S

// drainedWorld is a node upgrade nobody announced, as the watch records
// it: node-3 joins (surge) at 40 s, node-1 is cordoned at 45 s and its two
// pods evicted at 46 s (replacements start on node-2 and node-3 at once),
// node-1 is deleted at 80 s. Both clients run from 0 to 200 s; the app
// does not set attribution headers.
func drainedWorld(app tt.App) *timeline.Timeline {
	w := tt.NewWorld()
	a := w.Pod("web-1", "node-1", "10.244.1.2", -S(10), app)
	b := w.Pod("web-2", "node-1", "10.244.1.3", -S(10), app)
	w.Pod("web-3", "node-2", "10.244.2.2", -S(10), app)
	a.Delete(S(46))
	b.Delete(S(46))
	w.Pod("web-4", "node-2", "10.244.2.3", S(46), app)
	w.Pod("web-5", "node-3", "10.244.3.2", S(46), app)
	tl := w.Run(tt.Client{Kind: timeline.ClientGateway, Rate: 100, To: S(200)}, tt.Client{Kind: timeline.ClientService, Rate: 100, To: S(200)})
	info := func(name string) string {
		return nodeinfo.Info{Name: name, Pool: "np1", Kubelet: "v1.33.5", Image: "AKSUbuntu-202511"}.String()
	}
	for _, n := range []string{"node-1", "node-2"} {
		tl.AddEvent(timeline.Event{Kind: timeline.EvNodeReady, Node: n, Detail: timeline.InitialState + "Ready; " + info(n)})
	}
	tl.AddEvent(timeline.Event{Offset: S(40), Kind: timeline.EvNodeAdded, Node: "node-3",
		Detail: nodeinfo.Info{Name: "node-3", Pool: "np1", Kubelet: "v1.33.5", Image: "AKSUbuntu-202512"}.String()})
	tl.AddEvent(timeline.Event{Offset: S(44), Kind: timeline.EvNodeReady, Node: "node-3", Detail: "Ready"})
	tl.AddEvent(timeline.Event{Offset: S(45), Kind: timeline.EvNodeCordoned, Node: "node-1"})
	tl.AddEvent(timeline.Event{Offset: S(80), Kind: timeline.EvNodeDeleted, Node: "node-1"})
	tl.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), "100")
	tl.SetMeta(verdict.RateMetaKey(timeline.ClientService), "100")
	return tl
}

func watchOn(tl *timeline.Timeline, watchedFrom time.Duration) (*judging, *[]Watched) {
	w := &Watch{Plan: Plan{Rate: 100, Out: io.Discard}, For: time.Hour}
	w.defaults()
	var got []Watched
	return &judging{w: w, tl: tl, watchedFrom: watchedFrom, judged: map[upgradeKey]bool{},
		found: func(x Watched) { got = append(got, x) }}, &got
}

func TestAWatchedDrainOfAWellBehavedAppPasses(t *testing.T) {
	app := tt.App{Shutdown: tt.ShutdownGraceful, DrainDelay: S(2), PreStop: S(5), WarmUp: S(2)}
	j, got := watchOn(drainedWorld(app), S(5))
	j.look(false)
	require.Len(t, *got, 1)
	w := (*got)[0]
	assert.Equal(t, "np1", w.Upgrade.Pool)
	assert.Equal(t, "node-image upgrade", w.Upgrade.Kind())
	assert.Equal(t, verdict.Pass, w.Report.Outcome, "%s\n%s", w.Report, w.Report.Explain())
	c, ok := w.Report.Check(verdict.CheckWatchedUpgrade)
	require.True(t, ok)
	assert.Contains(t, c.Summary, "pool np1: node-image upgrade")
	s := w.Timeline.Snapshot()
	ph := s.Phases()
	require.Len(t, ph, 3)
	assert.Equal(t, []string{"baseline", "fault", "recovery"}, []string{ph[0].Name, ph[1].Name, ph[2].Name})
	assert.Equal(t, time.Duration(0), ph[0].Start, "the window opens with the baseline, 30 s before the fault")
	assert.Equal(t, S(30), ph[1].Start, "the fault begins 2 s before the first node change seen, at 40 s")
	assert.Equal(t, S(72), ph[2].Start, "the last node change, 80 s, is the recovery's start")
	assert.Equal(t, S(102), ph[2].End)
	assert.Positive(t, w.Loads[timeline.ClientService].Sent)

	j.look(false)
	assert.Len(t, *got, 1, "an upgrade is judged once")
}

func TestAWatchedDrainOfAnAbruptAppFails(t *testing.T) {
	j, got := watchOn(drainedWorld(tt.App{Shutdown: tt.ShutdownAbrupt}), S(5))
	j.look(false)
	require.Len(t, *got, 1)
	w := (*got)[0]
	assert.Equal(t, verdict.Fail, w.Report.Outcome, "%s", w.Report)
	cls := map[verdict.Class]bool{}
	for _, c := range w.Report.Failed() {
		if c.Diagnosis != nil {
			cls[c.Diagnosis.Class] = true
		}
	}
	assert.True(t, cls[verdict.ClassNoGracefulShutdown], "an app that exits at SIGTERM: %v", cls)
}

func TestAWatchedUpgradeCannotBeJudgedWithoutItsBaselineOrItsEnd(t *testing.T) {
	app := tt.App{Shutdown: tt.ShutdownGraceful, DrainDelay: S(2), PreStop: S(5), WarmUp: S(2)}
	// Watching began 20 s before the upgrade: no 30 s baseline.
	j, got := watchOn(drainedWorld(app), S(20))
	j.look(false)
	require.Len(t, *got, 1)
	assert.Equal(t, verdict.CannotJudge, (*got)[0].Report.Outcome)
	assert.Contains(t, (*got)[0].Report.Reason, "its baseline")

	// The watch ended 20 s after the last node change.
	j, _ = watchOn(drainedWorld(app), S(5))
	ups := upgrades.Find(j.tl.Events(), S(100), j.w.Upgrades)
	require.Len(t, ups, 1)
	require.False(t, ups[0].Finished)
	w := j.judge(ups[0], S(100), true)
	assert.Equal(t, verdict.CannotJudge, w.Report.Outcome, "%s", w.Report)
	assert.Contains(t, w.Report.Reason, "had not finished")
}
