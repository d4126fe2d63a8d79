package load

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/kube-rehearse/rehearse/fixtures/app"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func TestValidationNamesTheSettingAndTheFix(t *testing.T) {
	cases := []struct {
		name   string
		target string
		opts   []Option
		want   []string // each must appear in the error
	}{
		{"rate zero", "http://127.0.0.1:1/", []Option{Rate(0)}, []string{"rate 0", "load.Rate(n)", "1 to 5000"}},
		{"rate too high", "http://127.0.0.1:1/", []Option{Rate(5001)}, []string{"rate 5001", "load.Rate(n)"}},
		{"duration short", "http://127.0.0.1:1/", []Option{Duration(500 * time.Millisecond)}, []string{"duration 500ms", "load.Duration(d)", "1s to 2h0m0s"}},
		{"duration long", "http://127.0.0.1:1/", []Option{Duration(3 * time.Hour)}, []string{"duration 3h0m0s", "load.Duration(d)"}},
		{"timeout zero", "http://127.0.0.1:1/", []Option{Timeout(0)}, []string{"timeout 0s", "load.Timeout(d)"}},
		{"empty target", "", nil, []string{"target is empty"}},
		{"not http", "ftp://example.com/", nil, []string{"not an http:// or https:// URL"}},
		{"no host", "http:///path", nil, []string{"has no host"}},
		{"bad url", "http://[::1", nil, []string{"does not parse"}},
		{"bad method", "http://127.0.0.1:1/", []Option{Method("GE T")}, []string{"method \"GE T\"", "load.Method"}},
		{"bad header", "http://127.0.0.1:1/", []Option{Header("Bad Name", "x")}, []string{"header name \"Bad Name\""}},
		{"workers zero", "http://127.0.0.1:1/", []Option{MaxWorkers(0)}, []string{"max workers 0", "load.MaxWorkers(n)"}},
		{"workers huge", "http://127.0.0.1:1/", []Option{MaxWorkers(MaxWorkersLimit + 1)}, []string{"max workers"}},
		{"conns negative", "http://127.0.0.1:1/", []Option{MaxConnections(-1)}, []string{"max connections -1", "load.MaxConnections(n)"}},
		{"empty name", "http://127.0.0.1:1/", []Option{Name("")}, []string{"name is empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.target, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, g)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	// Every problem at once.
	_, err := New("ftp://x/", Rate(0), Duration(0), Timeout(time.Hour))
	require.Error(t, err)
	for _, w := range []string{"target", "rate", "duration", "timeout"} {
		assert.Contains(t, err.Error(), w)
	}

	// The bounds themselves are accepted.
	for _, opts := range [][]Option{
		{Rate(MinRate), Duration(MinDuration)},
		{Rate(MaxRate), Duration(MaxDuration), Timeout(MaxTimeout)},
		{MaxWorkers(1), MaxConnections(1), Method("POST"), Body([]byte("x")), Header("X-A", "b"), KeepAlive(false)},
	} {
		_, err := New("https://example.com:8443/p", opts...)
		assert.NoError(t, err)
	}
}

func TestDefaultWorkersSustainRateThroughTimeouts(t *testing.T) {
	c := defaultConfig("http://x/")
	c.rate, c.timeout = 500, 2*time.Second
	assert.Equal(t, 1000, c.maxWorkers())
	c.rate, c.timeout = 1, 10*time.Millisecond
	assert.Equal(t, 10, c.maxWorkers())
	c.rate, c.timeout = MaxRate, MaxTimeout
	assert.Equal(t, MaxWorkersLimit, c.maxWorkers())
}

// requestsOf returns the timeline's requests and notes.
func requestsOf(tl *timeline.Timeline) ([]timeline.Request, []timeline.Event) {
	s := tl.Snapshot()
	var notes []timeline.Event
	for _, e := range s.Events {
		if e.Kind == timeline.EvNote {
			notes = append(notes, e)
		}
	}
	return s.Requests, notes
}

func TestResultsLandInTheTimelineWithAttribution(t *testing.T) {
	a := startApp(t, nil)
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(100), Duration(time.Second), Name("checkout"))
	require.NoError(t, err)

	began := time.Now()
	sum, err := g.Run(context.Background(), tl)
	took := time.Since(began)
	require.NoError(t, err)

	assert.Equal(t, StoppedDuration, sum.Stopped)
	assert.InDelta(t, 100, sum.Sent, 3, "a second at 100 rps")
	assert.Equal(t, sum.Sent, sum.Succeeded)
	assert.Zero(t, sum.Failed)
	assert.Nil(t, sum.ByKind)
	assert.InDelta(t, 100, sum.Achieved, 5)
	assert.GreaterOrEqual(t, took, time.Second)
	assert.Less(t, took, 1500*time.Millisecond)

	reqs, notes := requestsOf(tl)
	require.Len(t, reqs, sum.Sent, "every result is in the timeline")
	end := tl.Now()
	for i, r := range reqs {
		assert.True(t, r.OK(), "request %d: %+v", i, r)
		assert.Equal(t, 200, r.Code)
		assert.Equal(t, testPod, r.Pod)
		assert.Equal(t, testNode, r.Node)
		assert.Equal(t, testIP, r.PodIP)
		assert.False(t, r.Terminating)
		assert.Positive(t, r.Latency)
		assert.Less(t, r.Latency, time.Second)
		assert.Positive(t, r.Offset)
		assert.Less(t, r.End(), end)
	}
	// Sends are spaced by the rate: 10 ms apart on the timeline's clock.
	gaps := reqs[len(reqs)-1].Offset - reqs[0].Offset
	assert.InDelta(t, float64(len(reqs)-1)*10, float64(gaps.Milliseconds()), 50)

	require.Len(t, notes, 2)
	assert.Contains(t, notes[0].Detail, "load started: checkout: service client, GET "+a.url+" at 100 rps for 1s")
	assert.LessOrEqual(t, notes[0].Offset, reqs[0].Offset)
	assert.Contains(t, notes[1].Detail, "load ended (duration elapsed): sent ")
	assert.GreaterOrEqual(t, notes[1].Offset, reqs[len(reqs)-1].End())
	assert.Equal(t, sum.First, reqs[0].Offset)
	assert.Equal(t, sum.Last, reqs[len(reqs)-1].Offset)
}

func TestFailureWindowIsClassifiedHTTP5xx(t *testing.T) {
	a := startApp(t, nil)
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(200), Duration(time.Second))
	require.NoError(t, err)

	from := time.Now().Add(300 * time.Millisecond)
	until := from.Add(300 * time.Millisecond)
	a.failBetween(t, from, until)
	sum, err := g.Run(context.Background(), tl)
	require.NoError(t, err)

	// About 60 (300 ms at 200 rps); fewer or more when a busy machine stalls
	// the pacer and it catches up later: the check that matters is below.
	assert.Greater(t, sum.Failed, 10)
	assert.Equal(t, map[timeline.ErrorKind]int{timeline.ErrHTTP5xx: sum.Failed}, sum.ByKind)

	// The failures are exactly the requests that arrived in the window. The
	// app decides on arrival, somewhere between the send offset the timeline
	// holds and the answer (usually within a millisecond of the send, but a
	// busy machine can stall a request longer), so a request failed only if
	// [Offset, End] meets the window, and succeeded only if it does not lie
	// wholly inside.
	reqs, _ := requestsOf(tl)
	winFrom, winUntil := tl.Since(from), tl.Since(until)
	const slack = time.Millisecond // the wall clock (the app's) against the monotonic one (ours)
	var inside int
	for _, r := range reqs {
		if r.OK() {
			assert.False(t, r.Offset >= winFrom+slack && r.End() < winUntil-slack, "answered in the window: %+v", r)
			continue
		}
		inside++
		assert.True(t, r.End() >= winFrom-slack && r.Offset < winUntil+slack, "failed outside the window: %+v", r)
		assert.Equal(t, timeline.ErrHTTP5xx, r.Err)
		assert.Equal(t, 500, r.Code)
		assert.Contains(t, r.ErrText, "500")
		assert.Equal(t, testPod, r.Pod, "a 5xx answer is attributed too")
	}
	assert.Equal(t, sum.Failed, inside)
}

func TestStoppedServerIsClassifiedRefused(t *testing.T) {
	a := startApp(t, nil)
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(100), Duration(time.Second))
	require.NoError(t, err)

	closed := make(chan time.Duration, 1)
	time.AfterFunc(400*time.Millisecond, func() {
		closed <- tl.Now()
		_ = a.srv.Close()
	})
	sum, err := g.Run(context.Background(), tl)
	require.NoError(t, err)
	closedAt := <-closed

	reqs, _ := requestsOf(tl)
	var before, refusedAfter, after int
	for _, r := range reqs {
		switch {
		case r.Offset < closedAt-20*time.Millisecond:
			before++
			assert.True(t, r.OK(), "before the stop: %+v", r)
		case r.Offset > closedAt+20*time.Millisecond:
			after++
			if assert.Equal(t, timeline.ErrRefused, r.Err, "after the stop: %+v", r) {
				refusedAfter++
				assert.Zero(t, r.Code)
				assert.Empty(t, r.Pod, "no answer, no attribution")
			}
		}
	}
	// About 40 and 60; the exact split depends on when the timer fired.
	assert.Greater(t, before, 25)
	assert.Greater(t, after, 40)
	assert.Equal(t, after, refusedAfter)
	assert.GreaterOrEqual(t, sum.ByKind[timeline.ErrRefused], refusedAfter)
}

func TestContextCancelAbortsPromptly(t *testing.T) {
	// Slow answers, so about 30 requests are in flight at any moment.
	a := startApp(t, func(c *app.Config) { c.Latency = 300 * time.Millisecond })
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(100), Duration(time.Minute))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, g.Start(ctx, tl))
	time.Sleep(700 * time.Millisecond)
	cancelAt := tl.Now()
	cancel()
	sum, err := g.Wait()
	returned := tl.Now() - cancelAt

	assert.ErrorIs(t, err, context.Canceled)
	assert.Less(t, returned, 250*time.Millisecond, "an abort must not wait for answers")
	assert.Equal(t, StoppedContext, sum.Stopped)
	// About 30 in flight and 40 answered; the split moves when a busy machine
	// stalls the pacer or the server.
	assert.Greater(t, sum.Abandoned, 10, "the requests in flight at the abort")
	assert.Greater(t, sum.Sent, 10, "answered before the abort")
	assert.InDelta(t, 70, sum.Sent+sum.Abandoned, 20)
	assert.Zero(t, sum.Failed, "the abort's own casualties are not recorded as failures")

	reqs, notes := requestsOf(tl)
	assert.Len(t, reqs, sum.Sent)
	for _, r := range reqs {
		assert.True(t, r.OK())
		assert.Less(t, r.End(), cancelAt+time.Millisecond)
	}
	require.Len(t, notes, 2)
	assert.Contains(t, notes[1].Detail, "load ended (context ended)")

	// Nothing more is sent.
	n, _ := tl.Len()
	time.Sleep(100 * time.Millisecond)
	m, _ := tl.Len()
	assert.Equal(t, n, m)
}

func TestCancelledBeforeStartSendsNothing(t *testing.T) {
	a := startApp(t, nil)
	g, err := New(a.url, Rate(100), Duration(time.Second))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tl := timeline.New(time.Now())
	sum, err := g.Run(ctx, tl)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, sum.Sent)
	n, _ := tl.Len()
	assert.Zero(t, n)
}

func TestStopIsIdempotentAndLetsInFlightFinish(t *testing.T) {
	a := startApp(t, func(c *app.Config) { c.Latency = 100 * time.Millisecond })
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(100), Duration(time.Minute))
	require.NoError(t, err)

	require.NoError(t, g.Start(context.Background(), tl))
	assert.Error(t, g.Start(context.Background(), tl), "a Generator runs once")
	time.Sleep(500 * time.Millisecond)
	stopAt := tl.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(g.Stop)
	}
	wg.Wait()
	g.Stop()
	sum, err := g.Wait()
	require.NoError(t, err)
	took := tl.Now() - stopAt
	g.Stop()
	<-g.Done()

	assert.Equal(t, StoppedByStop, sum.Stopped)
	assert.Less(t, took, 400*time.Millisecond)
	assert.InDelta(t, 50, sum.Sent, 10, "the in-flight requests are recorded")
	assert.Equal(t, sum.Sent, sum.Succeeded)
	assert.Zero(t, sum.Abandoned)
	// At most a tick already due goes out while the stop reaches the pacer.
	for _, r := range tl.Requests() {
		assert.Less(t, r.Offset, stopAt+50*time.Millisecond, "nothing sent after Stop")
	}

	// Stopped before it started: sends nothing.
	g2, err := New(a.url, Rate(100), Duration(time.Second))
	require.NoError(t, err)
	g2.Stop()
	sum2, err := g2.Run(context.Background(), timeline.New(time.Now()))
	require.NoError(t, err)
	assert.Zero(t, sum2.Sent)
	assert.Equal(t, StoppedByStop, sum2.Stopped)

	_, err = (&Generator{}).Wait()
	assert.Error(t, err)
	_, err = g2.Run(context.Background(), nil)
	assert.Error(t, err)
}

// TestTransparentRetryHidesLostRequests demonstrates the finding in the
// package documentation: a server that drops every 10th request it receives
// loses about 10% of them; a plain Go client with keep-alive re-sends each
// dropped GET on a fresh connection and sees nearly none of the losses. The
// harness's clients see every one, pooled connections or not.
func TestTransparentRetryHidesLostRequests(t *testing.T) {
	run := func(opts ...Option) (sum Summary, reqs []timeline.Request, received, dropped int) {
		d, u := startDropper(t, 10)
		g, err := New(u, append([]Option{Rate(100), Duration(time.Second)}, opts...)...)
		require.NoError(t, err)
		tl := timeline.New(time.Now())
		sum, err = g.Run(context.Background(), tl)
		require.NoError(t, err)
		received, dropped = d.stats()
		return sum, tl.Requests(), received, dropped
	}

	fresh, _, recvFresh, droppedFresh := run()
	t.Logf("new connection per request: server dropped %d of %d; client saw %s", droppedFresh, recvFresh, fresh)
	assert.Equal(t, fresh.Sent, recvFresh, "nothing is re-sent")
	assert.Equal(t, droppedFresh, fresh.Failed, "every lost request is seen")
	assert.Equal(t, fresh.Failed, fresh.ByKind[timeline.ErrEOF])

	pooled, reqs, recvPooled, droppedPooled := run(KeepAlive(true))
	t.Logf("pooled, no retry:           server dropped %d of %d; client saw %s", droppedPooled, recvPooled, pooled)
	assert.Equal(t, pooled.Sent, recvPooled, "nothing is re-sent")
	assert.Equal(t, droppedPooled, pooled.Failed, "every lost request is seen")
	reused := 0
	for _, r := range reqs {
		if r.Reused {
			reused++
		}
	}
	assert.Greater(t, reused, pooled.Sent/2, "most requests went out on pooled connections")

	plain, _, recvPlain, droppedPlain := run(KeepAlive(true), TransparentRetry(true))
	t.Logf("plain Go client:            server dropped %d of %d; client saw %s", droppedPlain, recvPlain, plain)
	assert.GreaterOrEqual(t, droppedPlain, 9)
	assert.Greater(t, recvPlain, plain.Sent, "the transport re-sent dropped requests")
	assert.LessOrEqual(t, plain.Failed, droppedPlain/3, "most losses are hidden by the transport's retry")
}

func TestRequestSettingsReachTheServer(t *testing.T) {
	type seen struct {
		method, host, hdr, body, conn string
	}
	got := make(chan seen, 100)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- seen{r.Method, r.Host, r.Header.Get("X-Test"), string(b), r.Header.Get("Connection")}:
		default:
		}
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(http.StatusFound)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	g, err := New("http://"+ln.Addr().String()+"/x", Rate(20), Duration(time.Second), Method("PUT"),
		Header("X-Test", "yes"), Header("Host", "app.example"), Body([]byte("payload")), KeepAlive(false))
	require.NoError(t, err)
	sum, err := g.Run(context.Background(), timeline.New(time.Now()))
	require.NoError(t, err)
	assert.Equal(t, sum.Sent, sum.Succeeded, "a redirect is the target's answer, not followed: %s", sum)
	s := <-got
	assert.Equal(t, seen{"PUT", "app.example", "yes", "payload", "close"}, s)
}

func TestAttribute(t *testing.T) {
	cases := []struct {
		h    http.Header
		want timeline.Request
	}{
		{nil, timeline.Request{}},
		{http.Header{}, timeline.Request{}},
		{http.Header{"X-Pod-Name": {"p"}, "X-Node-Name": {"n"}, "X-Pod-Ip": {"1.2.3.4"}, "X-Terminating": {"true"}},
			timeline.Request{Pod: "p", Node: "n", PodIP: "1.2.3.4", Terminating: true, Via: timeline.ViaHeaders}},
		{http.Header{"X-Pod-Name": {"p", "q"}, "X-Terminating": {"TRUE"}}, timeline.Request{Pod: "p", Terminating: true, Via: timeline.ViaHeaders}},
		{http.Header{"X-Terminating": {"1"}}, timeline.Request{Terminating: true}},
		{http.Header{"X-Terminating": {"Yes"}}, timeline.Request{Terminating: true}},
		{http.Header{"X-Terminating": {"false"}}, timeline.Request{}},
		{http.Header{"X-Terminating": {"no"}}, timeline.Request{}},
		{http.Header{"X-Pod-Ip": {"fd00::1"}}, timeline.Request{PodIP: "fd00::1", Via: timeline.ViaHeaders}},
		{http.Header{"X-Downstream-Error": {"dns"}}, timeline.Request{Downstream: "dns"}},
	}
	for _, c := range cases {
		var got timeline.Request
		attribute(&got, c.h)
		assert.Equal(t, c.want, got, "%v", c.h)
	}
}

func TestRecordingAllocatesNothing(t *testing.T) {
	tl := timeline.New(time.Now())
	rec := recorder{tl: tl}
	res := &vegeta.Result{
		Code: 200, Timestamp: time.Now(), Latency: time.Millisecond,
		Headers: http.Header{"X-Pod-Name": {testPod}, "X-Node-Name": {testNode}, "X-Pod-Ip": {testIP}, "X-Terminating": {"false"}},
	}
	fail := &vegeta.Result{Code: 503, Error: "503 Service Unavailable", Timestamp: time.Now(), Headers: res.Headers}
	allocs := testing.AllocsPerRun(2000, func() {
		rec.record(res)
		rec.record(fail)
	})
	assert.Zero(t, allocs, "per-result allocations")
	s := rec.summary(Summary{})
	assert.Equal(t, 4002, s.Sent)
	assert.Equal(t, 2001, s.Failed)
	assert.Equal(t, map[timeline.ErrorKind]int{timeline.ErrHTTP5xx: 2001}, s.ByKind)
}
