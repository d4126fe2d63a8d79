// Package reporttest makes run records for the tests of the reports: a
// rolling restart of three pods in the simulated world of timelinetest,
// judged by the real verdict code, with fixed metadata so that what is
// rendered from it can be compared with golden files.
package reporttest

import (
	"fmt"
	"time"

	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// Apps are the rehearsal app's variants as the simulated world knows them.
var Apps = map[string]tt.App{
	"well-behaved": {Shutdown: tt.ShutdownGraceful, DrainDelay: 2 * time.Second, WarmUp: 2 * time.Second,
		Readiness: tt.ReadinessHonest, PreStop: 5 * time.Second},
	"no-drain": {Shutdown: tt.ShutdownNoDrain, WarmUp: 2 * time.Second, Readiness: tt.ReadinessHonest},
	"abrupt":   {Shutdown: tt.ShutdownAbrupt, WarmUp: 2 * time.Second, Readiness: tt.ReadinessHonest},
}

// Start is the wall-clock start of every record made here.
var Start = time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)

// Restart is the record of a rolling restart of three pods of the named
// app (Apps) at rate requests per second per client kind, lasting about
// `recovery` after the last old pod exited.
func Restart(app string, rate int, recovery time.Duration) *record.Record {
	a, ok := Apps[app]
	if !ok {
		panic("reporttest: unknown app " + app)
	}
	w := tt.NewWorld()
	var old []*tt.SimPod
	for i, node := range []string{"kind-worker", "kind-worker2", "kind-worker"} {
		old = append(old, w.Pod(fmt.Sprintf("web-%d", i+1), node, fmt.Sprintf("10.244.%d.%d", i%2+1, i+10), -tt.S(30), a))
	}
	w.RollingRestart(tt.S(8), old, tt.App{})
	var lastExit time.Duration
	for _, p := range old {
		d, _ := p.Deleted()
		lastExit = max(lastExit, d+a.PreStop+a.DrainDelay+time.Second)
	}
	faultEnd := lastExit + tt.S(1)
	end := faultEnd + recovery
	w.Phase(timeline.PhaseWarmup, 0, tt.S(3)).Phase(timeline.PhaseBaseline, tt.S(3), tt.S(8)).
		Phase(timeline.PhaseFault, tt.S(8), faultEnd).Phase(timeline.PhaseRecovery, faultEnd, end)
	tl := w.Run(tt.Client{Kind: timeline.ClientGateway, Rate: rate, To: end}, tt.Client{Kind: timeline.ClientService, Rate: rate, To: end})
	for _, c := range timeline.ClientKinds() {
		tl.SetMeta(verdict.RateMetaKey(c), fmt.Sprint(rate))
	}
	tl.SetMeta("source", "reporttest (simulated world)")
	tl.AddEvent(timeline.Event{Offset: tt.S(8), Kind: timeline.EvActionStart, Name: "restart deployment web"})
	tl.AddEvent(timeline.Event{Offset: faultEnd - tt.S(1), Kind: timeline.EvActionEnd, Name: "restart deployment web"})

	th := verdict.DefaultThresholds()
	nodes := []record.Node{
		{Name: "kind-control-plane", Pool: "control-plane", ControlPlane: true, Version: "v1.33.13", Image: "rehearse/node:v1.33.13"},
		{Name: "kind-worker", Pool: "workers", Version: "v1.33.13", Image: "rehearse/node:v1.33.13"},
		{Name: "kind-worker2", Pool: "workers", Version: "v1.33.13", Image: "rehearse/node:v1.33.13"},
	}
	r := &record.Record{
		Tool:    record.Tool{Name: "rehearse", Version: "test", Go: "go"},
		Run:     "20261130-020000-" + app,
		Name:    "rolling-restart/" + app,
		Started: Start, Ended: Start.Add(end),
		Target: record.Target{Name: "kind rehearse-test", NodesBefore: nodes, NodesAfter: nodes},
		App: record.App{Namespace: "rehearsal", Deployment: "web", Service: "web",
			Description: "rehearsal app, preset " + app},
		Plan: record.Plan{Rate: rate, Clients: []string{"gateway", "service"}, GatewayDelay: time.Second,
			Warmup: time.Minute, Baseline: 5 * time.Second, Recovery: recovery},
		Scenarios:  []record.Scenario{{Kind: "rolling-restart", Steps: []string{"restart deployment web"}}},
		Thresholds: th,
		Checks:     verdict.DefaultChecks,
		Timeline:   tl,
	}
	snap := tl.Snapshot()
	for _, c := range timeline.ClientKinds() {
		if sum := summary(&snap, c, rate); sum.Sent > 0 {
			r.Loads = append(r.Loads, record.Load{Client: c.String(), Summary: sum})
		}
	}
	r.Verdict = verdict.Judge(tl, th, r.Checks...)
	return r
}

// summary is what the load generator would have reported.
func summary(s *timeline.Snapshot, c timeline.ClientKind, rate int) load.Summary {
	sum := load.Summarize(s.Requests, c, rate)
	sum.Name, sum.Target, sum.Stopped = c.String(), "simulated", load.StoppedByStop
	return sum
}
