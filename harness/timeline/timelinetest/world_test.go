package timelinetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// wellBehaved is fixtures/appspec's well-behaved preset.
var wellBehaved = App{Shutdown: ShutdownGraceful, DrainDelay: S(2), PreStop: S(5), Readiness: ReadinessHonest, WarmUp: S(2)}

// fleet adds three pods of app, running since before the rehearsal.
func fleet(w *World, app App) []*SimPod {
	return []*SimPod{
		w.Pod("web-1", "node-1", "10.244.1.2", -S(10), app),
		w.Pod("web-2", "node-2", "10.244.2.2", -S(10), app),
		w.Pod("web-3", "node-1", "10.244.1.3", -S(10), app),
	}
}

func gatewayClient(from, to time.Duration) Client {
	return Client{Kind: timeline.ClientGateway, Rate: 100, From: from, To: to}
}

func serviceClient(from, to time.Duration) Client {
	return Client{Kind: timeline.ClientService, Rate: 100, From: from, To: to}
}

func plainGoClient(from, to time.Duration) Client {
	return Client{Kind: timeline.ClientService, Rate: 100, From: from, To: to, PlainGo: true}
}

func failed(s timeline.Snapshot, kind timeline.ClientKind) []timeline.Request {
	var out []timeline.Request
	for _, r := range s.Requests {
		if r.Client == kind && !r.OK() {
			out = append(out, r)
		}
	}
	return out
}

func byKind(rs []timeline.Request) map[timeline.ErrorKind]int {
	m := map[timeline.ErrorKind]int{}
	for _, r := range rs {
		m[r.Err]++
	}
	return m
}

func podEvents(s timeline.Snapshot, pod string, kinds ...timeline.EventKind) []timeline.Event {
	var out []timeline.Event
	for _, e := range s.Events {
		if e.Pod != pod {
			continue
		}
		for _, k := range kinds {
			if e.Kind == k {
				out = append(out, e)
			}
		}
	}
	return out
}

func appLog(s timeline.Snapshot, pod, msg string) (timeline.Event, bool) {
	for _, e := range s.Events {
		if e.Kind == timeline.EvAppLog && e.Pod == pod && e.Name == msg {
			return e, true
		}
	}
	return timeline.Event{}, false
}

func lifecycle(t *testing.T, s timeline.Snapshot, pod string) timeline.PodLifecycle {
	t.Helper()
	for _, l := range timeline.PodLifecycles(s.Events) {
		if l.Pod == pod {
			return l
		}
	}
	t.Fatalf("no lifecycle for pod %s", pod)
	return timeline.PodLifecycle{}
}

// A graceful app with a preStop wait, a drain delay and honest readiness
// survives a rolling restart: no client, not even one routing by itself,
// sees a failure.
func TestWorldWellBehavedRollingRestartLosesNothing(t *testing.T) {
	w := NewWorld()
	old := fleet(w, wellBehaved)
	fresh := w.RollingRestart(S(5), old, App{})
	require.Len(t, fresh, 3)
	s := w.Run(gatewayClient(0, S(30)), serviceClient(0, S(30)), plainGoClient(0, S(30))).Snapshot()

	require.Len(t, s.Requests, 3*3000)
	for _, k := range timeline.ClientKinds() {
		assert.Empty(t, failed(s, k), "%v client", k)
	}
	served := map[string]int{}
	for _, r := range s.Requests {
		if r.Client == timeline.ClientGateway {
			assert.Equal(t, timeline.ViaRoute, r.Via)
			served[r.Pod]++
		} else {
			assert.Equal(t, timeline.ViaNone, r.Via, "the app sets no headers: service answers are not attributed")
		}
	}
	for _, p := range append(old, fresh...) {
		assert.Positive(t, served[p.Name], "the gateway sent requests to %s", p.Name)
	}

	for i, p := range old {
		lc := lifecycle(t, s, p.Name)
		require.True(t, lc.DeletionRequested.Known && lc.EndpointGone.Known && lc.Exited.Known, p.Name)
		assert.Less(t, lc.DeletionRequested.At, lc.EndpointGone.At, p.Name)
		assert.Less(t, lc.EndpointGone.At, lc.Exited.At, p.Name)
		require.NotNil(t, lc.ExitCode)
		assert.Equal(t, 0, *lc.ExitCode, p.Name)
		assert.Equal(t, "Completed", lc.ExitReason)
		// Each old pod is deleted once its replacement is Ready.
		newLC := lifecycle(t, s, fresh[i].Name)
		assert.Equal(t, newLC.Ready.At+w.WatchLag, lc.DeletionRequested.At,
			"%s deleted when the Deployment controller saw %s Ready", p.Name, fresh[i].Name)
		del, _ := p.Deleted()
		sig, ok := appLog(s, p.Name, contract.MsgSIGTERM)
		require.True(t, ok)
		assert.Equal(t, del+S(5), sig.Offset, "SIGTERM after the preStop wait")
		stop, ok := appLog(s, p.Name, contract.MsgStoppedAccepting)
		require.True(t, ok)
		assert.Equal(t, sig.Offset+S(2), stop.Offset, "the listener closes after the drain delay")
		exited, ok := appLog(s, p.Name, contract.MsgExited)
		require.True(t, ok)
		assert.Equal(t, "code=0", exited.Detail)
		// Honest readiness fails within two probe periods of SIGTERM.
		notReady := podEvents(s, p.Name, timeline.EvPodNotReady)
		require.Len(t, notReady, 1)
		assert.Greater(t, notReady[0].Offset, sig.Offset)
		assert.LessOrEqual(t, notReady[0].Offset, sig.Offset+2*w.ProbePeriod+w.WatchLag)
	}
	for _, p := range fresh {
		lc := lifecycle(t, s, p.Name)
		assert.True(t, lc.Ready.Known, p.Name)
		assert.False(t, lc.DeletionRequested.Known, p.Name)
	}
	// Never fewer ready endpoints than replicas: maxUnavailable 0.
	assert.Empty(t, timeline.ReadyEndpoints(s.Events).Below(3, 0, S(30)))
}

// An app that exits at SIGTERM, without a preStop wait, loses the requests
// in flight and refuses what the gateway still sends it until the removal
// of its endpoint reaches the gateway; a plain Go client hides the losses
// by retrying them.
func TestWorldAbruptShutdown(t *testing.T) {
	w := NewWorld()
	old := fleet(w, App{Shutdown: ShutdownAbrupt})
	w.RollingRestart(S(5), old, App{})

	s := w.Run(gatewayClient(0, S(20))).Snapshot()
	fails := failed(s, timeline.ClientGateway)
	kinds := byKind(fails)
	t.Logf("gateway failures: %v", kinds)
	assert.Positive(t, kinds[timeline.ErrEOF]+kinds[timeline.ErrReset], "in-flight losses")
	assert.Positive(t, kinds[timeline.ErrRefused])
	assert.Equal(t, len(fails), kinds[timeline.ErrEOF]+kinds[timeline.ErrReset]+kinds[timeline.ErrRefused])

	deleted := map[string]time.Duration{}
	for _, p := range old {
		deleted[p.Name], _ = p.Deleted()
	}
	removed := map[string]time.Duration{}
	for _, e := range s.Events {
		if e.Kind == timeline.EvRouteRemoved {
			removed[e.Pod] = e.Offset
		}
	}
	perPod := map[string]int{}
	for _, r := range fails {
		require.Equal(t, timeline.ViaRoute, r.Via, "the gateway knows where every request went")
		del, ok := deleted[r.Pod]
		require.True(t, ok, "only old pods fail: %+v", r)
		assert.NotEmpty(t, r.PodIP)
		assert.NotEmpty(t, r.Node)
		switch r.Err {
		case timeline.ErrEOF, timeline.ErrReset:
			// Lost when the process died: sent before, cut at the exit.
			assert.Less(t, r.Offset, del)
			assert.Equal(t, del, r.End())
			assert.Equal(t, r.Err == timeline.ErrEOF, r.Reused, "EOF on a reused connection, reset on a new one")
		case timeline.ErrRefused:
			assert.GreaterOrEqual(t, r.Offset, del)
			assert.Less(t, r.Offset, removed[r.Pod], "refused until the gateway stops routing there")
			perPod[r.Pod]++
		}
	}
	for _, p := range old {
		// About (EndpointLag + GatewayDelay) * rate / routed pods.
		assert.InDelta(t, 33, perPod[p.Name], 8, p.Name)
		lc := lifecycle(t, s, p.Name)
		require.NotNil(t, lc.ExitCode)
		assert.Equal(t, 143, *lc.ExitCode)
		assert.Equal(t, deleted[p.Name]+w.WatchLag, lc.Exited.At, "the process exits at SIGTERM")
	}

	// The service client: losses (reset) and refusals, never attributed.
	s = w.Run(serviceClient(0, S(20))).Snapshot()
	fails = failed(s, timeline.ClientService)
	assert.NotEmpty(t, fails)
	for _, r := range fails {
		assert.False(t, r.Attributed(), "a transport error of the service client names no pod")
		assert.Contains(t, []timeline.ErrorKind{timeline.ErrReset, timeline.ErrRefused}, r.Err)
	}

	// The same world seen by a plain Go client: the in-flight losses are
	// retried on another connection and vanish; what is left are a few new
	// connections kube-proxy still sent to a dead pod.
	s = w.Run(plainGoClient(0, S(20))).Snapshot()
	plain := failed(s, timeline.ClientService)
	t.Logf("plain Go failures: %v", byKind(plain))
	assert.LessOrEqual(t, len(plain), 10)
	for _, r := range plain {
		assert.Equal(t, timeline.ErrRefused, r.Err, "no loss shows: %+v", r)
	}
	retried := 0
	for _, r := range s.Requests {
		// An attempt takes Latency, or answerRTT when refused: a request
		// that took longer was re-sent by net/http after its connection died.
		if r.OK() && r.Latency > w.Latency || !r.OK() && r.Latency > answerRTT {
			retried++
		}
	}
	assert.Positive(t, retried)
}

// An app that stops listening at SIGTERM (no drain delay, no preStop) gets
// its new connections refused for as long as the gateway still routes to
// it, but finishes what is in flight and exits 0.
func TestWorldNoDrain(t *testing.T) {
	w := NewWorld()
	pods := fleet(w, App{Shutdown: ShutdownNoDrain})
	pods[1].Delete(S(5))
	s := w.Run(gatewayClient(0, S(10))).Snapshot()

	fails := failed(s, timeline.ClientGateway)
	require.NotEmpty(t, fails)
	for _, r := range fails {
		assert.Equal(t, timeline.ErrRefused, r.Err, "no in-flight loss: %+v", r)
		assert.Equal(t, "web-2", r.Pod)
		assert.Equal(t, timeline.ViaRoute, r.Via)
	}
	first, last := fails[0].Offset, fails[len(fails)-1].Offset
	assert.GreaterOrEqual(t, first, S(5))
	assert.InDelta(t, (w.EndpointLag + w.GatewayDelay).Seconds(), (last - S(5)).Seconds(), 0.05,
		"refused for about the gateway's delay after SIGTERM")
	assert.InDelta(t, 35, len(fails), 3) // a third of 100 rps for 1.05 s

	lc := lifecycle(t, s, "web-2")
	require.NotNil(t, lc.ExitCode)
	assert.Equal(t, 0, *lc.ExitCode)
	stop, ok := appLog(s, "web-2", contract.MsgStoppedAccepting)
	require.True(t, ok)
	assert.Equal(t, S(5), stop.Offset)
	sig, _ := appLog(s, "web-2", contract.MsgSIGTERM)
	assert.Contains(t, sig.Detail, "mode=graceful")
	drained, ok := appLog(s, "web-2", contract.MsgDrained)
	require.True(t, ok)
	assert.LessOrEqual(t, drained.Offset, S(5)+w.Latency, "in-flight requests finish")
	assert.Equal(t, drained.Offset+w.WatchLag, lc.Exited.At)
}

// An app that ignores SIGTERM is SIGKILLed at the end of its grace period;
// the endpoint removal reaches every client long before, so nobody fails.
func TestWorldIgnoreSIGTERM(t *testing.T) {
	w := NewWorld()
	old := fleet(w, App{Shutdown: ShutdownIgnore, Grace: S(10)})
	w.RollingRestart(S(5), old, App{})
	s := w.Run(gatewayClient(0, S(25)), serviceClient(0, S(25))).Snapshot()

	for _, k := range timeline.ClientKinds() {
		assert.Empty(t, failed(s, k), "%v client", k)
	}
	for _, p := range old {
		del, _ := p.Deleted()
		exits := podEvents(s, p.Name, timeline.EvContainerExited)
		require.Len(t, exits, 1)
		assert.Equal(t, del+S(10)+w.WatchLag, exits[0].Offset, "SIGKILL at the end of the grace period")
		assert.Equal(t, 137, *exits[0].ExitCode)
		assert.Equal(t, "Error", exits[0].Reason)
		_, ok := appLog(s, p.Name, contract.MsgIgnoringSIGTERM)
		assert.True(t, ok)
		_, ok = appLog(s, p.Name, contract.MsgExited)
		assert.False(t, ok, "a SIGKILLed process logs nothing")
	}
}

// A plain Go client keeps its pooled connections to a pod that ignores
// SIGTERM until it is killed, long after the Service stopped routing there;
// the requests in flight at SIGKILL are silently retried.
func TestWorldPlainGoKeepsConnectionsToTerminatingPods(t *testing.T) {
	w := NewWorld()
	w.Seed = 3
	pods := fleet(w, App{Shutdown: ShutdownIgnore, Grace: S(10), Headers: true})
	s := w.Run(plainGoClient(0, S(5))).Snapshot()
	var target string
	for _, r := range s.Requests {
		target = r.Pod // the pod of the last pooled connection
	}
	for _, p := range pods {
		if p.Name == target {
			p.Delete(S(2))
		}
	}
	s = w.Run(plainGoClient(0, S(15))).Snapshot()
	assert.Empty(t, failed(s, timeline.ClientService))
	late, retried := 0, 0
	for _, r := range s.Requests {
		require.Equal(t, timeline.ViaHeaders, r.Via)
		if r.Pod == target && r.Offset > S(4) {
			late++
			assert.True(t, r.Terminating, "the app says it was told to terminate")
		}
		if r.Latency > w.Latency {
			retried++
		}
	}
	assert.Positive(t, late, "requests reach %s after kube-proxy stopped routing there", target)
	assert.Positive(t, retried, "the requests in flight at SIGKILL were re-sent")
}

// Readiness that lies: each new pod is Ready at once, routed a second
// later, and answers 503 until its warm-up is over.
func TestWorldLyingReadiness(t *testing.T) {
	w := NewWorld()
	old := fleet(w, App{Shutdown: ShutdownGraceful, DrainDelay: S(2), PreStop: S(5), Readiness: ReadinessLying, WarmUp: S(5)})
	fresh := w.RollingRestart(S(5), old, App{})
	s := w.Run(gatewayClient(0, S(30))).Snapshot()

	for _, p := range fresh {
		var first, last time.Duration = -1, -1
		for _, r := range failed(s, timeline.ClientGateway) {
			if r.Pod != p.Name {
				continue
			}
			require.Equal(t, 503, r.Code)
			require.Equal(t, timeline.ErrHTTP5xx, r.Err)
			if first < 0 {
				first = r.Offset
			}
			last = r.Offset
		}
		require.Positive(t, first, "%s answered 503s", p.Name)
		lc := lifecycle(t, s, p.Name)
		assert.Less(t, lc.Ready.At, first, "PodReady comes before the 503s")
		started, ok := appLog(s, p.Name, contract.MsgStarted)
		require.True(t, ok)
		assert.Less(t, last, started.Offset+S(5), "503 only during the warm-up")
		assert.InDelta(t, (S(5) - w.GatewayDelay - w.EndpointLag).Seconds(), (last - first).Seconds(), 0.1,
			"about WarmUp - GatewayDelay of 503s")
	}
	for _, r := range failed(s, timeline.ClientGateway) {
		assert.Equal(t, 503, r.Code)
	}
}

// The events Run produces for one deleted pod, in order, at the offsets
// the model gives.
func TestWorldEventsOfOneDeletedPod(t *testing.T) {
	w := NewWorld()
	p := w.Pod("web-1", "node-1", "10.244.1.2", 0, wellBehaved)
	p.Delete(S(10))
	s := w.Run(Client{Kind: timeline.ClientGateway, Rate: 10, To: S(20)}).Snapshot()

	type row struct {
		at   time.Duration
		kind timeline.EventKind
		name string
	}
	want := []row{
		{ms(30), timeline.EvPodScheduled, ""},
		{ms(580), timeline.EvEndpointNotReady, ""}, // first listed: IP at 0.5 s
		{ms(1000), timeline.EvAppLog, contract.MsgStarted},
		{ms(3000), timeline.EvAppLog, contract.MsgReady},
		{ms(3030), timeline.EvPodReady, ""}, // the probe at start+2s passes
		{ms(3080), timeline.EvEndpointReady, ""},
		{ms(4050), timeline.EvRouteAdded, ""},
		{ms(10030), timeline.EvPodDeletionRequested, ""},
		{ms(10080), timeline.EvEndpointNotReady, ""}, // terminating
		{ms(11050), timeline.EvRouteRemoved, ""},
		{ms(15000), timeline.EvAppLog, contract.MsgSIGTERM}, // after the 5 s preStop
		{ms(16030), timeline.EvPodNotReady, ""},             // probes at 15 s and 16 s fail
		{ms(17000), timeline.EvAppLog, contract.MsgStoppedAccepting},
		{ms(17000), timeline.EvAppLog, contract.MsgDrained},
		{ms(17000), timeline.EvAppLog, contract.MsgExited},
		{ms(17030), timeline.EvContainerExited, ""},
		{ms(17030), timeline.EvNote, ""},
		{ms(17080), timeline.EvEndpointRemoved, ""},
	}
	var got []row
	for _, e := range s.Events {
		require.Equal(t, "web-1", e.Pod)
		require.Equal(t, "uid-web-1", e.UID)
		require.Equal(t, "node-1", e.Node)
		if e.Kind.IsEndpoint() || e.Kind == timeline.EvRouteAdded || e.Kind == timeline.EvRouteRemoved {
			assert.Equal(t, "10.244.1.2", e.IP)
		}
		got = append(got, row{e.Offset, e.Kind, e.Name})
	}
	assert.Equal(t, want, got)

	exit := podEvents(s, "web-1", timeline.EvContainerExited)[0]
	assert.Equal(t, 0, *exit.ExitCode)
	assert.Equal(t, "Completed", exit.Reason)
	// After the deletion reached the gateway, it has nothing to route to.
	for _, r := range s.Requests {
		if r.Offset >= ms(11050) || r.Offset < ms(4050) {
			assert.Equal(t, NoEndpointStatus, r.ErrText, "at %v", r.Offset)
			assert.Equal(t, timeline.ViaNone, r.Via)
		} else {
			assert.True(t, r.OK(), "at %v", r.Offset)
		}
	}
}

// The same World gives the same timeline, byte for byte; another seed
// changes kube-proxy's choices.
func TestWorldIsDeterministic(t *testing.T) {
	build := func(seed int64) *World {
		w := NewWorld()
		w.Seed = seed
		old := fleet(w, App{Shutdown: ShutdownAbrupt, Headers: true, FailEvery: 7})
		w.RollingRestart(S(5), old, App{Shutdown: ShutdownGraceful, DrainDelay: S(1), WarmUp: S(1), Headers: true})
		w.Phase(timeline.PhaseBaseline, 0, S(5)).Phase(timeline.PhaseFault, S(5), S(20))
		return w
	}
	clients := []Client{gatewayClient(0, S(20)), serviceClient(0, S(20)), plainGoClient(S(1), S(20))}
	encode := func(tl *timeline.Timeline) []byte {
		var b bytes.Buffer
		require.NoError(t, tl.Encode(&b))
		return b.Bytes()
	}
	w := build(42)
	a := encode(w.Run(clients...))
	assert.Equal(t, a, encode(w.Run(clients...)), "Run again on the same World")
	assert.Equal(t, a, encode(build(42).Run(clients...)), "a World built the same way")
	assert.NotEqual(t, a, encode(build(43).Run(clients...)), "another seed")

	// What was encoded reads back.
	back, err := timeline.Decode(bytes.NewReader(a))
	require.NoError(t, err)
	s := back.Snapshot()
	assert.Len(t, s.Requests, 3*2000-100)
	phases := s.Phases()
	require.Len(t, phases, 2)
	assert.Equal(t, timeline.Span{Name: timeline.PhaseFault, Start: S(5), End: S(20)}, phases[1])
}

// Pods running before the rehearsal are in the observer's and the
// gateway's initial state at offset 0, as the real ones record it.
func TestWorldInitialState(t *testing.T) {
	w := NewWorld()
	fleet(w, wellBehaved)
	s := w.Run(gatewayClient(0, S(2))).Snapshot()
	assert.Equal(t, 3, timeline.ReadyEndpoints(s.Events).At(0))
	routes := 0
	for _, e := range s.Events {
		assert.Zero(t, e.Offset, "nothing changes: %+v", e)
		if e.Kind == timeline.EvRouteAdded {
			routes++
			continue
		}
		assert.True(t, strings.HasPrefix(e.Detail, "initial state; "), "%+v", e)
		assert.NotEqual(t, timeline.EvAppLog, e.Kind, "log lines from before the start are not read")
	}
	assert.Equal(t, 3, routes)
	for _, p := range []string{"web-1", "web-2", "web-3"} {
		lc := lifecycle(t, s, p)
		assert.True(t, lc.ReadyAt(0) && lc.EndpointReadyAt(0), p)
	}
	assert.Empty(t, failed(s, timeline.ClientGateway))
}

// With nothing to route to, the gateway client answers 503 itself and the
// service client's connections are refused.
func TestWorldNoEndpoints(t *testing.T) {
	assert.Equal(t, load.NoEndpointStatus, NoEndpointStatus, "the copy of the load's text is current")
	w := NewWorld()
	w.Pod("web-1", "node-1", "10.244.1.2", 0, App{WarmUp: S(100)}) // never Ready in time
	s := w.Run(gatewayClient(0, S(1)), serviceClient(0, S(1))).Snapshot()
	require.Len(t, s.Requests, 200)
	for _, r := range s.Requests {
		assert.False(t, r.Attributed())
		if r.Client == timeline.ClientGateway {
			assert.Equal(t, 503, r.Code)
			assert.Equal(t, NoEndpointStatus, r.ErrText)
			assert.Equal(t, timeline.ErrHTTP5xx, r.Err)
		} else {
			assert.Equal(t, timeline.ErrRefused, r.Err)
			assert.Contains(t, r.ErrText, "connect: connection refused")
		}
	}
}

// Headers attribute the service client's answers (not its transport
// errors), and say when the pod was told to terminate.
func TestWorldAttributionByHeaders(t *testing.T) {
	w := NewWorld()
	pods := fleet(w, App{Shutdown: ShutdownGraceful, DrainDelay: S(2), Headers: true})
	pods[0].Delete(S(3))
	s := w.Run(serviceClient(0, S(6))).Snapshot()
	terminating := 0
	for _, r := range s.Requests {
		require.True(t, r.OK(), "%+v", r)
		require.Equal(t, timeline.ViaHeaders, r.Via)
		require.NotEmpty(t, r.Pod)
		require.NotEmpty(t, r.PodIP)
		require.NotEmpty(t, r.Node)
		if r.Terminating {
			terminating++
			assert.Equal(t, "web-1", r.Pod)
			assert.GreaterOrEqual(t, r.End(), S(3))
			assert.Less(t, r.Offset, S(3)+w.EndpointLag+w.ProxyLag, "kube-proxy stops sending there")
		}
	}
	assert.Positive(t, terminating, "served during the drain delay, saying so")

	// Without headers, and with a pod that exits at SIGTERM, nothing names
	// a pod for this client.
	w = NewWorld()
	pods = fleet(w, App{Shutdown: ShutdownAbrupt})
	pods[0].Delete(S(3))
	s = w.Run(serviceClient(0, S(6))).Snapshot()
	assert.NotEmpty(t, failed(s, timeline.ClientService))
	for _, r := range s.Requests {
		assert.False(t, r.Attributed(), "%+v", r)
	}
}

// FailEvery makes every Nth request a pod would serve a quick 500.
func TestWorldFailEvery(t *testing.T) {
	w := NewWorld()
	fleet(w, App{FailEvery: 10, Headers: true})
	s := w.Run(gatewayClient(0, S(3))).Snapshot()
	fails := failed(s, timeline.ClientGateway)
	assert.Len(t, fails, 30)
	for _, r := range fails {
		assert.Equal(t, 500, r.Code)
		assert.Equal(t, "500 Internal Server Error", r.ErrText)
		assert.Equal(t, timeline.ViaRoute, r.Via)
		assert.Less(t, r.Latency, w.Latency, "answered before the work")
	}
}

// A graceful app whose drain delay outlasts the grace period is SIGKILLed
// before it closes its listener; a preStop longer than the grace period
// gets the kubelet's 2 s for the stop.
func TestWorldGracePeriod(t *testing.T) {
	w := NewWorld()
	a := w.Pod("slow-drain", "node-1", "10.244.1.2", 0, App{DrainDelay: S(20), Grace: S(10)})
	b := w.Pod("long-prestop", "node-1", "10.244.1.3", 0, App{PreStop: S(40), Grace: S(10)})
	a.Delete(S(5))
	b.Delete(S(5))
	s := w.Run().Snapshot()

	exit := podEvents(s, "slow-drain", timeline.EvContainerExited)
	require.Len(t, exit, 1)
	assert.Equal(t, S(15)+w.WatchLag, exit[0].Offset)
	assert.Equal(t, 137, *exit[0].ExitCode)
	_, ok := appLog(s, "slow-drain", contract.MsgStoppedAccepting)
	assert.False(t, ok, "killed while still draining")

	sig, ok := appLog(s, "long-prestop", contract.MsgSIGTERM)
	require.True(t, ok)
	assert.Equal(t, S(15), sig.Offset, "the preStop hook is cut at the end of the grace period")
	exit = podEvents(s, "long-prestop", timeline.EvContainerExited)
	require.Len(t, exit, 1)
	assert.Equal(t, S(15)+w.WatchLag, exit[0].Offset, "it drains at once (no drain delay) and exits")
	assert.Equal(t, 0, *exit[0].ExitCode)
}

// RollingRestart names new pods from the old ones' prefix, gives them new
// addresses, and waits for each new pod to be Ready.
func TestWorldRollingRestart(t *testing.T) {
	w := NewWorld()
	old := fleet(w, wellBehaved)
	first := w.RollingRestart(S(1), old, App{})
	second := w.RollingRestart(S(20), first, App{})
	var names, ips []string
	for _, p := range append(first, second...) {
		names = append(names, p.Name)
		ips = append(ips, p.IP)
	}
	assert.Equal(t, []string{"web-r1-1", "web-r1-2", "web-r1-3", "web-r2-1", "web-r2-2", "web-r2-3"}, names)
	assert.Equal(t, []string{"10.244.1.10", "10.244.2.10", "10.244.1.11", "10.244.1.12", "10.244.2.11", "10.244.1.13"}, ips)
	assert.Equal(t, first[2].Node, old[2].Node)

	w = NewWorld()
	old = fleet(w, wellBehaved)
	slow := w.RollingRestart(S(1), old, App{WarmUp: S(100)})
	require.Len(t, slow, 3)
	del, ok := old[0].Deleted()
	require.True(t, ok)
	// Created at 1 s, started at 2 s, Ready at 102 s, seen WatchLag later.
	assert.Equal(t, S(102)+w.WatchLag, del, "the rollout waits for its first new pod")
	assert.Equal(t, del, slow[1].Created())
}

// Misuse is reported at once.
func TestWorldRejectsMisuse(t *testing.T) {
	w := NewWorld()
	assert.Panics(t, func() { w.Pod("x", "n", "10.0.0.1", 0, App{Shutdown: "polite"}) })
	assert.Panics(t, func() { w.Run(Client{Kind: timeline.ClientGateway, Rate: 10, To: S(1), PlainGo: true}) })
	assert.Panics(t, func() { w.Run(Client{Kind: timeline.ClientService, To: S(1)}) })
	assert.Panics(t, func() { w.Run(Client{Kind: timeline.ClientService, Rate: 1, From: S(2), To: S(1)}) })
}

func ExampleWorld() {
	w := NewWorld()
	old := []*SimPod{
		w.Pod("web-1", "node-1", "10.244.1.2", -S(10), App{Shutdown: ShutdownAbrupt}),
		w.Pod("web-2", "node-2", "10.244.2.2", -S(10), App{Shutdown: ShutdownAbrupt}),
	}
	w.RollingRestart(S(5), old, App{})
	w.Phase(timeline.PhaseBaseline, 0, S(5)).Phase(timeline.PhaseFault, S(5), S(15))
	s := w.Run(Client{Kind: timeline.ClientGateway, Rate: 100, To: S(15)}).Snapshot()
	fmt.Println(byKind(failed(s, timeline.ClientGateway)))
	// Output: map[refused:103 reset:1]
}
