package timeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestClassifyError(t *testing.T) {
	cases := []struct {
		code int
		text string
		want timeline.ErrorKind
	}{
		{200, "", timeline.ErrNone},
		{204, "", timeline.ErrNone},
		{301, "", timeline.ErrNone},
		{503, "503 Service Unavailable", timeline.ErrHTTP5xx},
		{500, "", timeline.ErrHTTP5xx},
		{429, "429 Too Many Requests", timeline.ErrHTTP4xx},
		{404, "", timeline.ErrHTTP4xx},
		{0, `Get "http://10.96.0.10/": dial tcp 10.96.0.10:80: connect: connection refused`, timeline.ErrRefused},
		{0, "dial tcp 10.244.1.4:8080: connect: no route to host", timeline.ErrRefused},
		{0, "read tcp 10.0.0.1:5555->10.0.0.2:80: read: connection reset by peer", timeline.ErrReset},
		{0, "write tcp 10.0.0.1:5555->10.0.0.2:80: write: broken pipe", timeline.ErrReset},
		{0, "EOF", timeline.ErrEOF},
		{0, `Get "http://web/": EOF`, timeline.ErrEOF},
		{0, "unexpected EOF", timeline.ErrEOF},
		{0, "http: server closed idle connection", timeline.ErrClosedIdle},
		{0, "dial tcp 10.244.1.4:8080: socket: too many open files", timeline.ErrClient},
		{0, "dial tcp 10.244.1.4:8080: connect: cannot assign requested address", timeline.ErrClient},
		{0, `Get "http://web/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, timeline.ErrTimeout},
		{0, "read tcp 10.0.0.1:5555->10.0.0.2:80: i/o timeout", timeline.ErrTimeout},
		{0, "context deadline exceeded", timeline.ErrTimeout},
		{0, "net/http: TLS handshake timeout", timeline.ErrTimeout},
		{0, "dial tcp: lookup web.default.svc.cluster.local on 10.96.0.10:53: no such host", timeline.ErrDNS},
		{0, "dial tcp: lookup web on 10.96.0.10:53: i/o timeout", timeline.ErrDNS},
		{0, "dial tcp: lookup web: Temporary failure in name resolution", timeline.ErrDNS},
		{0, "dial tcp: lookup web on 127.0.0.53:53: server misbehaving", timeline.ErrDNS},
		{0, "something odd", timeline.ErrOther},
		{0, "", timeline.ErrOther},
		{200, "unexpected EOF", timeline.ErrEOF}, // body cut short after a 200 header
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d %s", c.code, c.text), func(t *testing.T) {
			assert.Equal(t, c.want, timeline.ClassifyError(c.code, c.text))
		})
	}
}

func TestKindNamesRoundTrip(t *testing.T) {
	for _, k := range timeline.ErrorKinds() {
		got, err := timeline.ParseErrorKind(k.String())
		require.NoError(t, err)
		assert.Equal(t, k, got)
	}
	for k := timeline.EvPodScheduled; k <= timeline.EvNote; k++ {
		got, err := timeline.ParseEventKind(k.String())
		require.NoError(t, err)
		assert.Equal(t, k, got)
		assert.NotContains(t, k.String(), "EventKind(")
	}
	assert.Equal(t, "PodDeletionRequested", timeline.EvPodDeletionRequested.String())
	assert.Equal(t, "EndpointNotReady", timeline.EvEndpointNotReady.String())
	_, err := timeline.ParseEventKind("PodExploded")
	assert.Error(t, err)
}

func TestSnapshotSortsOutOfOrderInput(t *testing.T) {
	tl := timeline.New(time.Now())
	tl.AddRequest(timeline.Request{Offset: ms(30), Code: 200})
	tl.AddRequest(timeline.Request{Offset: ms(10), Code: 200})
	tl.AddRequest(timeline.Request{Offset: ms(20), Code: 503, Err: timeline.ErrHTTP5xx})
	tl.AddEvent(timeline.Event{Offset: ms(25), Kind: timeline.EvPodReady, Pod: "b"})
	tl.AddEvent(timeline.Event{Offset: ms(5), Kind: timeline.EvPodScheduled, Pod: "a"})
	tl.AddEvent(timeline.Event{Offset: ms(25), Kind: timeline.EvPodNotReady, Pod: "b"}) // tie: keeps arrival order

	s := tl.Snapshot()
	var got []time.Duration
	for _, r := range s.Requests {
		got = append(got, r.Offset)
	}
	assert.Equal(t, []time.Duration{ms(10), ms(20), ms(30)}, got)
	require.Len(t, s.Events, 3)
	assert.Equal(t, timeline.EvPodScheduled, s.Events[0].Kind)
	assert.Equal(t, timeline.EvPodReady, s.Events[1].Kind)
	assert.Equal(t, timeline.EvPodNotReady, s.Events[2].Kind)
	assert.Equal(t, s.Events, tl.Events())

	// The snapshot is a copy: later appends do not change it.
	tl.AddRequest(timeline.Request{Offset: ms(1)})
	assert.Len(t, s.Requests, 3)
	n, e := tl.Len()
	assert.Equal(t, 4, n)
	assert.Equal(t, 3, e)
}

func TestConcurrentAppends(t *testing.T) {
	tl := timeline.New(time.Now())
	var wg sync.WaitGroup
	const per = 5000
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if g%2 == 0 {
					tl.AddRequest(timeline.Request{Offset: time.Duration(i*4+g) * time.Microsecond, Code: 200, Pod: fmt.Sprintf("web-%d", i%3)})
				} else {
					tl.AddEvent(timeline.Event{Offset: time.Duration(i*4+g) * time.Microsecond, Kind: timeline.EvNote})
				}
				if i%1000 == 0 {
					_ = tl.Snapshot()
				}
			}
		}()
	}
	wg.Wait()
	s := tl.Snapshot()
	assert.Len(t, s.Requests, 2*per)
	assert.Len(t, s.Events, 2*per)
	for i := 1; i < len(s.Requests); i++ {
		require.LessOrEqual(t, s.Requests[i-1].Offset, s.Requests[i].Offset)
	}
	for i := 1; i < len(s.Events); i++ {
		require.LessOrEqual(t, s.Events[i-1].Offset, s.Events[i].Offset)
	}
}

func TestManyRequestsSpanChunks(t *testing.T) {
	tl := timeline.New(time.Now())
	const n = 10000 // more than two chunks
	for i := range n {
		tl.AddRequest(timeline.Request{Offset: time.Duration(i) * time.Millisecond, Code: 200})
	}
	s := tl.Snapshot()
	require.Len(t, s.Requests, n)
	for i, r := range s.Requests {
		require.Equal(t, time.Duration(i)*time.Millisecond, r.Offset)
	}
	in := s.RequestsIn(ms(100), ms(200))
	require.Len(t, in, 100)
	assert.Equal(t, ms(100), in[0].Offset)
	assert.Equal(t, ms(199), in[99].Offset)
	assert.Empty(t, s.RequestsIn(ms(20000), ms(30000)))
}

func TestPhasesAndActions(t *testing.T) {
	tl := timeline.New(time.Now())
	tl.BeginPhaseAt(timeline.PhaseBaseline, 0)
	tl.EndPhaseAt(timeline.PhaseBaseline, ms(1000))
	tl.BeginPhaseAt(timeline.PhaseFault, ms(1000))
	tl.EndPhaseAt("never-started", ms(1100)) // ignored
	tl.EndPhaseAt(timeline.PhaseFault, ms(3000))
	tl.BeginPhaseAt(timeline.PhaseRecovery, ms(3000)) // left open
	tl.AddRequest(timeline.Request{Offset: ms(3500), Latency: ms(100), Code: 200})
	tl.AddEvent(timeline.Event{Offset: ms(200), Kind: timeline.EvActionStart, Name: "drain kind-worker"})
	tl.AddEvent(timeline.Event{Offset: ms(900), Kind: timeline.EvActionEnd, Name: "drain kind-worker"})

	s := tl.Snapshot()
	assert.Equal(t, ms(3600), s.End())
	assert.Equal(t, []timeline.Span{
		{Name: "baseline", Start: 0, End: ms(1000)},
		{Name: "fault", Start: ms(1000), End: ms(3000)},
		{Name: "recovery", Start: ms(3000), End: ms(3600), Open: true},
	}, s.Phases())
	assert.Equal(t, []timeline.Span{{Name: "drain kind-worker", Start: ms(200), End: ms(900)}}, s.Actions())
	assert.True(t, s.Phases()[0].Contains(0))
	assert.False(t, s.Phases()[0].Contains(ms(1000)))
}

func TestLivePhaseMarkingUsesOneClock(t *testing.T) {
	start := time.Now()
	tl := timeline.New(start)
	b := tl.BeginPhase("baseline")
	time.Sleep(2 * time.Millisecond)
	e := tl.EndPhase("baseline")
	assert.GreaterOrEqual(t, e-b, 2*time.Millisecond)
	assert.Equal(t, 5*time.Second, tl.Since(start.Add(5*time.Second)))
	a := tl.BeginAction("drain")
	z := tl.EndAction("drain", fmt.Errorf("boom"))
	assert.LessOrEqual(t, a, z)
	ev := tl.Events()
	assert.Equal(t, "boom", ev[len(ev)-1].Detail)
	tl.Note("hello")
	assert.Equal(t, timeline.EvNote, tl.Events()[4].Kind)
}

func sampleTimeline() *timeline.Timeline {
	start := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	tl := timeline.New(start)
	tl.SetMeta("scenario", "drain")
	tl.SetMeta("k8s", "v1.31.0")
	code := 137
	tl.BeginPhaseAt("baseline", 0)
	tl.AddEvent(timeline.Event{Offset: ms(5), Kind: timeline.EvPodScheduled, Pod: "web-1", Node: "kind-worker"})
	tl.AddEvent(timeline.Event{Offset: ms(7), Kind: timeline.EvEndpointReady, Pod: "web-1", IP: "10.244.1.3", UID: "u-1"})
	tl.AddEvent(timeline.Event{Offset: ms(8), Kind: timeline.EvRouteAdded, Pod: "web-1", IP: "10.244.1.3", UID: "u-1",
		Client: timeline.ClientGateway, Value: ms(3)})
	tl.AddRequest(timeline.Request{Offset: ms(10), Latency: ms(2), Code: 200, Pod: "web-1", Node: "kind-worker", PodIP: "10.244.1.3"})
	tl.AddRequest(timeline.Request{Offset: ms(9), Latency: 1500 * time.Microsecond, Err: timeline.ErrRefused,
		ErrText: "dial tcp 10.96.0.10:80: connect: connection refused"})
	tl.AddRequest(timeline.Request{Offset: ms(11), Latency: ms(3), Code: 503, Err: timeline.ErrHTTP5xx,
		ErrText: "503 Service Unavailable", Pod: "web-2", Terminating: true, Client: timeline.ClientGateway,
		Reused: true, Via: timeline.ViaRoute, PodIP: "10.244.2.9", Downstream: "dns"})
	tl.AddRequest(timeline.Request{Offset: ms(12), Latency: ms(3), Err: timeline.ErrOther,
		ErrText: "weird \"quoted\" \\ <text> & \n newline é \xff"})
	tl.AddEvent(timeline.Event{Offset: ms(20), Kind: timeline.EvContainerExited, Pod: "web-2", ExitCode: &code, Reason: "Error",
		Detail: "killed"})
	tl.AddEvent(timeline.Event{Offset: ms(21), Kind: timeline.EvActionEnd, Name: "drain", Detail: "eviction refused"})
	tl.EndPhaseAt("baseline", ms(30))
	return tl
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tl := sampleTimeline()
	var buf bytes.Buffer
	require.NoError(t, tl.Encode(&buf))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1+4+7)
	assert.Contains(t, lines[0], `"type":"timeline"`)
	assert.Contains(t, lines[0], `"version":2`)
	assert.Contains(t, lines[0], `"start":"2025-06-01T12:00:00.123456789Z"`)
	assert.Equal(t, `{"type":"event","at_ns":0,"kind":"PhaseStart","name":"baseline"}`, lines[1])
	assert.Contains(t, buf.String(), `{"type":"request","at_ns":10000000,"latency_ns":2000000,"code":200,"pod":"web-1","node":"kind-worker","ip":"10.244.1.3"}`)
	assert.Contains(t, buf.String(), `{"type":"request","at_ns":11000000,"latency_ns":3000000,"client":"gateway","reused":true,"code":503,"err":"http5xx","error":"503 Service Unavailable","pod":"web-2","ip":"10.244.2.9","via":"route","terminating":true,"downstream":"dns"}`)
	assert.Contains(t, buf.String(), `{"type":"event","at_ns":8000000,"kind":"RouteAdded","pod":"web-1","ip":"10.244.1.3","uid":"u-1","client":"gateway","value_ns":3000000}`)

	got, err := timeline.Decode(&buf)
	require.NoError(t, err)
	want := tl.Snapshot()
	have := got.Snapshot()
	assert.True(t, want.Start.Equal(have.Start))
	assert.Equal(t, want.Meta, have.Meta)
	// invalid UTF-8 is replaced on encoding; everything else is exact
	want.Requests[3].ErrText = strings.ToValidUTF8(want.Requests[3].ErrText, "\uFFFD")
	assert.Equal(t, want.Requests, have.Requests)
	assert.Equal(t, want.Events, have.Events)

	// A decoded timeline re-encodes to the same bytes.
	var a, b bytes.Buffer
	require.NoError(t, got.Encode(&a))
	again, err := timeline.Decode(bytes.NewReader(a.Bytes()))
	require.NoError(t, err)
	require.NoError(t, again.Encode(&b))
	assert.Equal(t, a.String(), b.String())
}

func TestTimelineInsideAJSONDocument(t *testing.T) {
	type doc struct {
		Name     string             `json:"name"`
		Timeline *timeline.Timeline `json:"timeline"`
		After    int                `json:"after"`
	}
	tl := sampleTimeline()
	b, err := json.Marshal(doc{Name: "run", Timeline: tl, After: 7})
	require.NoError(t, err)
	assert.True(t, json.Valid(b))
	assert.Contains(t, string(b), `"timeline":[{"type":"timeline","version":2,`)

	var got doc
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, "run", got.Name)
	assert.Equal(t, 7, got.After)
	var jsonl, fromFile, again bytes.Buffer
	require.NoError(t, tl.Encode(&jsonl))
	read, err := timeline.Decode(&jsonl) // invalid UTF-8 is replaced either way
	require.NoError(t, err)
	require.NoError(t, read.Encode(&fromFile))
	require.NoError(t, got.Timeline.Encode(&again))
	assert.Equal(t, fromFile.String(), again.String(), "the same records as timeline.jsonl")
	assert.Equal(t, tl.Tally(timeline.ClientGateway), got.Timeline.Tally(timeline.ClientGateway))

	assert.Error(t, json.Unmarshal([]byte(`{"timeline":{"type":"timeline"}}`), &got), "an object is not a timeline")
	assert.Error(t, json.Unmarshal([]byte(`{"timeline":[]}`), &got), "no header")
}

func TestTally(t *testing.T) {
	tl := timeline.New(time.Now())
	tl.AddRequest(timeline.Request{Client: timeline.ClientGateway, Code: 200})
	tl.AddRequest(timeline.Request{Client: timeline.ClientGateway, Err: timeline.ErrReset})
	tl.AddRequest(timeline.Request{Client: timeline.ClientService, Code: 200})
	assert.Equal(t, timeline.Tally{Sent: 2, Failed: 1}, tl.Tally(timeline.ClientGateway))
	assert.Equal(t, timeline.Tally{Sent: 1}, tl.Tally(timeline.ClientService))
}

func TestDecodeVersion1(t *testing.T) {
	in := `{"type":"timeline","version":1,"start":"2025-01-01T00:00:00Z","requests":2,"events":0}
{"type":"request","at_ns":1,"latency_ns":2,"code":200,"pod":"web-1"}
{"type":"request","at_ns":3,"latency_ns":2,"err":"refused","error":"connection refused"}
`
	tl, err := timeline.Decode(strings.NewReader(in))
	require.NoError(t, err)
	rs := tl.Requests()
	require.Len(t, rs, 2)
	assert.Equal(t, timeline.ViaHeaders, rs[0].Via, "version 1 knew pods only from headers")
	assert.Equal(t, timeline.ClientUnknown, rs[0].Client)
	assert.Equal(t, timeline.ViaNone, rs[1].Via)
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"empty":          "",
		"not a timeline": `{"type":"request","at_ns":1}`,
		"future version": `{"type":"timeline","version":99,"start":"2025-01-01T00:00:00Z"}`,
		"unknown record": `{"type":"timeline","version":1,"start":"2025-01-01T00:00:00Z"}` + "\n" + `{"type":"mystery"}`,
		"bad event kind": `{"type":"timeline","version":1,"start":"2025-01-01T00:00:00Z"}` + "\n" + `{"type":"event","kind":"PodExploded"}`,
		"no event kind":  `{"type":"timeline","version":1,"start":"2025-01-01T00:00:00Z"}` + "\n" + `{"type":"event","at_ns":3}`,
		"bad err kind":   `{"type":"timeline","version":1,"start":"2025-01-01T00:00:00Z"}` + "\n" + `{"type":"request","err":"meltdown"}`,
		"broken json":    `{"type":"timeline","version":1,"start":"2025-01-01T00:00:00Z"}` + "\n" + `{"type":"request",`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := timeline.Decode(strings.NewReader(in))
			assert.Error(t, err)
		})
	}
}

func TestEncodeRejectsEventWithoutKind(t *testing.T) {
	tl := timeline.New(time.Now())
	tl.AddEvent(timeline.Event{Offset: 1})
	assert.Error(t, tl.Encode(&bytes.Buffer{}))
}

func ev(at time.Duration, k timeline.EventKind, pod, ip string) timeline.Event {
	return timeline.Event{Offset: at, Kind: k, Pod: pod, IP: ip}
}

func TestReadyEndpoints(t *testing.T) {
	events := []timeline.Event{
		ev(0, timeline.EvEndpointAdded, "a", "10.0.0.1"),
		ev(0, timeline.EvEndpointAdded, "b", "10.0.0.2"),
		ev(ms(100), timeline.EvEndpointReady, "a", "10.0.0.1"), // already ready: no step
		ev(ms(200), timeline.EvEndpointNotReady, "a", "10.0.0.1"),
		ev(ms(300), timeline.EvEndpointRemoved, "a", "10.0.0.1"), // not ready already: no step
		ev(ms(400), timeline.EvEndpointRemoved, "b", "10.0.0.2"),
		// first seen not ready, written as Added then NotReady at one instant
		ev(ms(500), timeline.EvEndpointAdded, "c", "10.0.0.3"),
		ev(ms(500), timeline.EvEndpointNotReady, "c", "10.0.0.3"),
		ev(ms(600), timeline.EvEndpointReady, "c", "10.0.0.3"),
		ev(ms(700), timeline.EvPodReady, "c", ""),                 // not an endpoint event
		ev(ms(800), timeline.EvEndpointReady, "d", ""),            // keyed by pod
		ev(ms(900), timeline.EvEndpointRemoved, "", "10.9.9.9"),   // unknown: no step
		ev(ms(950), timeline.EvEndpointReady, "", ""),             // no subject: ignored
		ev(ms(999), timeline.EvEndpointNotReady, "d", ""),         // pod-keyed
		ev(ms(999), timeline.EvEndpointReady, "e", "10.0.0.5"),    // same instant: net zero
		ev(ms(1000), timeline.EvEndpointRemoved, "e", "10.0.0.5"), // -> 1
	}
	s := timeline.ReadyEndpoints(events)
	assert.Equal(t, timeline.ReadySeries{
		{At: 0, Ready: 2},
		{At: ms(200), Ready: 1},
		{At: ms(400), Ready: 0},
		{At: ms(600), Ready: 1},
		{At: ms(800), Ready: 2},
		{At: ms(1000), Ready: 1},
	}, s)
	assert.Equal(t, 0, s.At(-ms(1)))
	assert.Equal(t, 2, s.At(0))
	assert.Equal(t, 1, s.At(ms(399)))
	assert.Equal(t, 0, s.At(ms(400)))
	assert.Equal(t, 0, s.At(ms(599)))
	assert.Equal(t, 1, s.At(ms(5000)))

	gaps := s.Below(1, 0, ms(2000))
	assert.Equal(t, []timeline.Gap{{Interval: timeline.Interval{From: ms(400), To: ms(600)}, Lowest: 0}}, gaps)
	gaps = s.Below(2, ms(100), ms(2000))
	assert.Equal(t, []timeline.Gap{
		{Interval: timeline.Interval{From: ms(200), To: ms(800)}, Lowest: 0},
		{Interval: timeline.Interval{From: ms(1000), To: ms(2000)}, Lowest: 1},
	}, gaps)
	// a window that starts inside a gap
	gaps = s.Below(1, ms(450), ms(550))
	assert.Equal(t, []timeline.Gap{{Interval: timeline.Interval{From: ms(450), To: ms(550)}, Lowest: 0}}, gaps)
}

func TestPodLifecycles(t *testing.T) {
	code := 0
	events := []timeline.Event{
		{Offset: 0, Kind: timeline.EvPodScheduled, Pod: "old", Node: "n1"},
		{Offset: ms(10), Kind: timeline.EvPodReady, Pod: "old", IP: "10.0.0.1"},
		{Offset: ms(11), Kind: timeline.EvEndpointReady, IP: "10.0.0.1"},                // IP only: resolved to "old"
		{Offset: ms(50), Kind: timeline.EvContainerExited, Pod: "old", Reason: "Error"}, // a crash, restarted
		{Offset: ms(60), Kind: timeline.EvPodReady, Pod: "old"},
		{Offset: ms(100), Kind: timeline.EvPodDeletionRequested, Pod: "old"},
		{Offset: ms(110), Kind: timeline.EvEndpointNotReady, IP: "10.0.0.1"},
		{Offset: ms(150), Kind: timeline.EvContainerExited, Pod: "old", ExitCode: &code, Reason: "Completed"},
		{Offset: ms(160), Kind: timeline.EvEndpointRemoved, IP: "10.0.0.1"},
		// The IP is reused by a new pod.
		{Offset: ms(200), Kind: timeline.EvPodScheduled, Pod: "new", Node: "n2"},
		{Offset: ms(210), Kind: timeline.EvEndpointNotReady, Pod: "new", IP: "10.0.0.1"},
		{Offset: ms(300), Kind: timeline.EvEndpointReady, IP: "10.0.0.1"},
		// A pod that never becomes ready.
		{Offset: ms(250), Kind: timeline.EvPodScheduled, Pod: "stuck", Node: "n2"},
	}
	// give it out of order, as a watch might
	tl := timeline.New(time.Now())
	for i := len(events) - 1; i >= 0; i-- {
		tl.AddEvent(events[i])
	}
	lcs := timeline.PodLifecycles(tl.Snapshot().Events)
	require.Len(t, lcs, 3)
	old, nw, stuck := lcs[0], lcs[1], lcs[2]
	assert.Equal(t, "old", old.Pod)
	assert.Equal(t, "n1", old.Node)
	assert.Equal(t, timeline.Mark{At: 0, Known: true}, old.Scheduled)
	assert.Equal(t, timeline.Mark{At: ms(10), Known: true}, old.Ready)
	assert.Equal(t, timeline.Mark{At: ms(11), Known: true}, old.EndpointReady)
	assert.Equal(t, timeline.Mark{At: ms(10), Known: true}, old.FirstReady())
	assert.Equal(t, timeline.Mark{At: ms(100), Known: true}, old.DeletionRequested)
	assert.Equal(t, timeline.Mark{At: ms(110), Known: true}, old.EndpointGone)
	assert.Equal(t, timeline.Mark{At: ms(150), Known: true}, old.Exited, "the exit after deletion, not the crash")
	require.NotNil(t, old.ExitCode)
	assert.Equal(t, 0, *old.ExitCode)
	assert.Equal(t, 2, old.Exits)
	assert.Equal(t, []timeline.Interval{{From: ms(10), To: ms(50)}, {From: ms(60), To: ms(150)}}, old.ReadyIntervals)
	assert.Equal(t, []timeline.Interval{{From: ms(11), To: ms(110)}}, old.EndpointReadyIntervals)
	assert.True(t, old.ReadyAt(ms(20)))
	assert.False(t, old.ReadyAt(ms(55)))
	assert.True(t, old.EndpointReadyAt(ms(109)))
	assert.False(t, old.EndpointReadyAt(ms(110)))

	assert.Equal(t, "new", nw.Pod)
	assert.Equal(t, "n2", nw.Node)
	assert.False(t, nw.Ready.Known)
	assert.Equal(t, timeline.Mark{At: ms(300), Known: true}, nw.EndpointReady, "reused IP resolved to the new pod")
	assert.Equal(t, timeline.Mark{At: ms(300), Known: true}, nw.FirstReady())
	assert.False(t, nw.EndpointGone.Known)
	assert.Equal(t, []timeline.Interval{{From: ms(300), To: timeline.Forever}}, nw.EndpointReadyIntervals)
	assert.Equal(t, timeline.Forever, nw.EndpointReadyIntervals[0].Duration())

	assert.Equal(t, "stuck", stuck.Pod)
	assert.False(t, stuck.FirstReady().Known)
	assert.Empty(t, stuck.ReadyIntervals)
}

func TestIPIndex(t *testing.T) {
	idx := timeline.NewIPIndex([]timeline.Event{
		ev(ms(10), timeline.EvEndpointReady, "a", "10.0.0.1"),
		ev(ms(20), timeline.EvEndpointReady, "a", "10.0.0.1"),
		ev(ms(30), timeline.EvEndpointReady, "b", "10.0.0.1"),
	})
	assert.Equal(t, "a", idx.Pod("10.0.0.1", 0))
	assert.Equal(t, "a", idx.Pod("10.0.0.1", ms(29)))
	assert.Equal(t, "b", idx.Pod("10.0.0.1", ms(30)))
	assert.Equal(t, "", idx.Pod("10.0.0.2", ms(30)))
}

func TestAddRequestAllocations(t *testing.T) {
	tl := timeline.New(time.Now())
	r := timeline.Request{Latency: ms(2), Code: 200, Pod: "web-7d9f-abcde", Node: "kind-worker2", PodIP: "10.244.2.7"}
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		r.Offset = time.Duration(i) * time.Millisecond
		i++
		tl.AddRequest(r)
	})
	assert.LessOrEqual(t, allocs, 0.01, "one allocation per chunk of requests, not per request")
}

func BenchmarkAddRequest(b *testing.B) {
	tl := timeline.New(time.Now())
	pods := []string{"web-7d9f-abcde", "web-7d9f-fghij", "web-7d9f-klmno"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tl.AddRequest(timeline.Request{
			Offset: time.Duration(i) * time.Millisecond, Latency: ms(2), Code: 200,
			Pod: pods[i%3], Node: "kind-worker2", PodIP: "10.244.2.7",
		})
		i++
	}
}

func BenchmarkAddRequestParallel(b *testing.B) {
	tl := timeline.New(time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tl.AddRequest(timeline.Request{Offset: time.Duration(i), Code: 200, Pod: "web-1", Node: "kind-worker"})
			i++
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	tl := timeline.New(time.Now())
	for i := range 100000 {
		r := timeline.Request{Offset: time.Duration(i) * time.Millisecond, Latency: ms(2), Code: 200,
			Pod: "web-7d9f-abcde", Node: "kind-worker2", PodIP: "10.244.2.7"}
		if i%100 == 0 {
			r = timeline.Request{Offset: r.Offset, Latency: ms(1), Err: timeline.ErrReset,
				ErrText: "read tcp 10.0.0.1:5555->10.0.0.2:80: read: connection reset by peer"}
		}
		tl.AddRequest(r)
		if i%50 == 0 {
			tl.AddEvent(timeline.Event{Offset: r.Offset, Kind: timeline.EvEndpointReady, Pod: "web-1", IP: "10.244.2.7"})
		}
	}
	s := tl.Snapshot()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := s.Encode(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(s.Requests)+len(s.Events)), "ns/record")
	b.SetBytes(int64(buf.Len()))
}

func BenchmarkDecode(b *testing.B) {
	tl := timeline.New(time.Now())
	for i := range 20000 {
		tl.AddRequest(timeline.Request{Offset: time.Duration(i) * time.Millisecond, Latency: ms(2), Code: 200,
			Pod: "web-7d9f-abcde", Node: "kind-worker2", PodIP: "10.244.2.7"})
	}
	var buf bytes.Buffer
	require.NoError(b, tl.Encode(&buf))
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := timeline.Decode(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20000, "ns/record")
}
