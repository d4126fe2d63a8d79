package observe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/fixtures/app"
	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// appLine is a line written by the rehearsal app's own logger at a given
// time, so that a change in how the app logs shows here.
func appLine(t *testing.T, at time.Time, level slog.Level, msg string, attrs ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	r := slog.NewRecord(at, level, msg, 0)
	r.AddAttrs(attrs...)
	require.NoError(t, app.NewLogger(&buf).Handler().Handle(t.Context(), r))
	return buf.String()
}

func isAppLog(e timeline.Event) bool { return e.Kind == timeline.EvAppLog }

func TestReadAppLog(t *testing.T) {
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tl := timeline.New(start)
	o, err := New(fake.NewClientset(), tl, Target{Namespace: ns})
	require.NoError(t, err)
	src := &logSource{pod: "web-1", node: "n1", container: "app", uid: "uid-web-1", id: "containerd://c1", since: start, seen: &lineSet{}}

	at := func(d time.Duration) time.Time { return start.Add(d) }
	long := appLine(t, at(time.Second), slog.LevelInfo, contract.MsgReady, slog.String("pad", strings.Repeat("x", 2*logReadBuffer)))
	log := strings.Join([]string{
		// Before the rehearsal: not recorded.
		appLine(t, at(-time.Second), slog.LevelInfo, contract.MsgStarted, slog.String("addr", ":8080")),
		appLine(t, at(10*time.Millisecond), slog.LevelInfo, contract.MsgStarted, slog.String("addr", "[::]:8080"),
			slog.Int("pid", 7), slog.Duration("warmup", 2*time.Second), slog.String("pod", "web-1")),
		"I1123 12:00:00.500000       1 main.go:42] a klog line\n",
		"panic: not the app's\n",
		`{"time":"2026-11-23T12:00:00.6Z","level":"INFO","msg":"ready"}` + "\n",
		long, // too long for the buffer: skipped whole, with the lines around it kept
		appLine(t, at(time.Second), slog.LevelInfo, contract.MsgFailureWindowSet, slog.String("from", "x")), // not lifecycle
		// The line of the brief, as the app writes it.
		`time=2026-11-23T12:00:01.123456789Z level=INFO msg="sigterm received" signal=terminated mode=graceful in_flight=2` + "\n",
		appLine(t, at(1500*time.Millisecond), slog.LevelWarn, contract.MsgDrained, slog.Int("in_flight_abandoned", 1),
			slog.Any("err", errors.New(`context deadline exceeded: "slow" client`))),
		// Read again (a reopened stream): recorded once.
		`time=2026-11-23T12:00:01.123456789Z level=INFO msg="sigterm received" signal=terminated mode=graceful in_flight=2` + "\n",
		appLine(t, at(2*time.Second), slog.LevelInfo, contract.MsgExited, slog.Int("code", 0)),
		"fake logs", // the fake clientset's log, without a newline: a cut line, ignored
	}, "")

	last, err := o.readAppLog(strings.NewReader(log), src)
	require.NoError(t, err)
	assert.Equal(t, at(2*time.Second), last, "the last line of the app's format")

	got := filter(tl.Events(), nil)
	require.Len(t, got, 4, dump(got))
	for _, e := range got {
		assert.Equal(t, timeline.EvAppLog, e.Kind)
		assert.Equal(t, "web-1", e.Pod)
		assert.Equal(t, "uid-web-1", e.UID)
		assert.Equal(t, "n1", e.Node)
	}
	assert.Equal(t, timeline.Event{Offset: 10 * time.Millisecond, Kind: timeline.EvAppLog, Pod: "web-1", UID: "uid-web-1", Node: "n1",
		Name: contract.MsgStarted, Detail: "addr=[::]:8080 pid=7 warmup=2s pod=web-1"}, got[0])
	assert.Equal(t, timeline.Event{Offset: 1123456789 * time.Nanosecond, Kind: timeline.EvAppLog, Pod: "web-1", UID: "uid-web-1", Node: "n1",
		Name: contract.MsgSIGTERM, Detail: "signal=terminated mode=graceful in_flight=2"}, got[1], "at the app's time, to the nanosecond")
	assert.Equal(t, contract.MsgDrained, got[2].Name)
	assert.Equal(t, `in_flight_abandoned=1 err="context deadline exceeded: \"slow\" client"`, got[2].Detail, "quoted as slog quotes")
	assert.Equal(t, 1500*time.Millisecond, got[2].Offset)
	assert.Equal(t, timeline.Event{Offset: 2 * time.Second, Kind: timeline.EvAppLog, Pod: "web-1", UID: "uid-web-1", Node: "n1",
		Name: contract.MsgExited, Detail: "code=0"}, got[3])

	// The same stream read again, as after a reconnection: nothing new.
	_, err = o.readAppLog(strings.NewReader(log), src)
	require.NoError(t, err)
	assert.Len(t, tl.Events(), 4)

	// A read error is returned with what was read before it.
	line := appLine(t, at(3*time.Second), slog.LevelInfo, contract.MsgReady)
	last, err = o.readAppLog(io.MultiReader(strings.NewReader(line), iotestErrReader{}), src)
	assert.ErrorContains(t, err, "stream broke")
	assert.Equal(t, at(3*time.Second), last)
	assert.Len(t, tl.Events(), 5)

	// Lines read after Stop are dropped.
	o.Stop()
	_, err = o.readAppLog(strings.NewReader(appLine(t, at(4*time.Second), slog.LevelInfo, contract.MsgReady)), src)
	require.NoError(t, err)
	assert.Len(t, tl.Events(), 5)
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("stream broke") }

func TestAttrKeysKeepTheLineOrder(t *testing.T) {
	line := `time=2026-11-23T12:00:01Z level=INFO msg="a b" z=1 "key with space"="v=w" a="" m=x` + "\n"
	l, ok := contract.ParseLogLine(line)
	require.True(t, ok)
	assert.Equal(t, `z=1 "key with space"="v=w" a="" m=x`, attrText(l))

	// A repeated key keeps its first place and its last value.
	line = `time=2026-11-23T12:00:01Z level=INFO msg=x b=1 a=2 b=3` + "\n"
	l, ok = contract.ParseLogLine(line)
	require.True(t, ok)
	assert.Equal(t, "b=3 a=2", attrText(l))
}

// logStream is one log stream the fake opened: what was asked, and a pipe
// the test writes the log into.
type logStream struct {
	pod  string
	opts corev1.PodLogOptions
	w    *io.PipeWriter
}

func (s *logStream) write(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(s.w, line)
	require.NoError(t, err)
}

// fakeLogs stands in for the API server's log streams: each open is handed
// to the test, which writes the log and ends it; a stream also ends when the
// observer's context does.
type fakeLogs struct {
	opened chan *logStream
	fail   func(pod, container string) error // nil, or an error for each open
	mu     sync.Mutex
	opens  map[string]int // by pod/container
}

func newFakeLogs() *fakeLogs {
	return &fakeLogs{opened: make(chan *logStream, 100), opens: map[string]int{}}
}

func (f *fakeLogs) open(ctx context.Context, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	f.opens[pod+"/"+opts.Container]++
	f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(pod, opts.Container); err != nil {
			return nil, err
		}
	}
	r, w := io.Pipe()
	go func() {
		<-ctx.Done()
		w.CloseWithError(ctx.Err())
	}()
	f.opened <- &logStream{pod: pod, opts: *opts, w: w}
	return r, nil
}

func (f *fakeLogs) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[key]
}

func (f *fakeLogs) next(t *testing.T) *logStream {
	t.Helper()
	select {
	case s := <-f.opened:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no log stream opened")
		return nil
	}
}

func (f *fakeLogs) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case s := <-f.opened:
		t.Fatalf("unexpected log stream of %s/%s since %v", s.pod, s.opts.Container, s.opts.SinceTime)
	case <-time.After(within):
	}
}

func running(p *corev1.Pod, c, id string, started time.Time) {
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		if cs.Name == c {
			cs.ContainerID = id
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}
		}
	}
}

// Followers start when a container is seen running, from its start (or the
// timeline's), reopen a broken stream from the last line read without
// recording a line twice, follow a restarted container anew, and end with
// the observer.
func TestAppLogFollowers(t *testing.T) {
	logs := newFakeLogs()
	p := pod("web-1", "n1", "10.0.0.1", true)
	running(p, "app", "containerd://c1", time.Now().Add(-time.Hour)) // long before the rehearsal
	r := startOn(t, fake.NewClientset(p), func(o *Observer) { o.openLog = logs.open },
		WithoutNodes(), WithoutEvents(), WithLagProbe(0))

	s1 := logs.next(t)
	assert.Equal(t, "web-1", s1.pod)
	assert.Equal(t, "app", s1.opts.Container)
	assert.True(t, s1.opts.Follow)
	require.NotNil(t, s1.opts.SinceTime)
	assert.Equal(t, r.tl.Start(), s1.opts.SinceTime.Time, "a container running before the rehearsal is read from its start")

	now := time.Now().UTC()
	ready := appLine(t, now, slog.LevelInfo, contract.MsgReady, slog.Duration("after", 2*time.Second))
	s1.write(t, appLine(t, r.tl.Start().Add(-time.Millisecond), slog.LevelInfo, contract.MsgStarted)) // before: dropped
	s1.write(t, ready)
	s1.write(t, "GET / 200\n")
	r.waitKinds(1, isAppLog)
	// The stream breaks (an API server restart): the container still runs,
	// so it is opened again, from a second before the last line read.
	require.NoError(t, s1.w.Close())
	s2 := logs.next(t)
	assert.Equal(t, later(r.tl.Start(), now.Add(-time.Second)), s2.opts.SinceTime.Time)
	s2.write(t, ready) // read again: not recorded twice
	sigterm := now.Add(time.Millisecond)
	s2.write(t, appLine(t, sigterm, slog.LevelInfo, contract.MsgSIGTERM, slog.String("mode", "graceful"), slog.Int("in_flight", 0)))
	got := r.waitKinds(2, isAppLog)

	// The container restarts: a new follower for the new container ID, from
	// its start.
	restarted := time.Now().Add(time.Second).Truncate(time.Second)
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, ContainerID: "containerd://c1"}
	p.Status.ContainerStatuses[0].RestartCount = 1
	running(p, "app", "containerd://c2", restarted)
	r.updatePod(p)
	s3 := logs.next(t)
	assert.Equal(t, restarted, s3.opts.SinceTime.Time)
	// The old instance's stream ends with its exit: no reopening.
	require.NoError(t, s2.w.Close())
	s3.write(t, appLine(t, restarted.Add(time.Millisecond), slog.LevelInfo, contract.MsgStarted, slog.String("addr", ":8080")))
	got = r.waitKinds(3, isAppLog)
	logs.none(t, 3*logReopenDelay)

	assert.Equal(t, []string{contract.MsgReady, contract.MsgSIGTERM, contract.MsgStarted}, []string{got[0].Name, got[1].Name, got[2].Name})
	assert.Equal(t, r.tl.Since(now), got[0].Offset)
	assert.Equal(t, r.tl.Since(sigterm), got[1].Offset)
	assert.Equal(t, "after=2s", got[0].Detail)
	assert.Equal(t, "mode=graceful in_flight=0", got[1].Detail)
	for _, e := range got {
		assert.Equal(t, "uid-web-1", e.UID)
		assert.Equal(t, "n1", e.Node)
	}

	// Stop ends the followers (their streams are still open) and waits for
	// them.
	began := time.Now()
	r.o.Stop()
	assert.Less(t, time.Since(began), logStopWait)
	r.o.logs.mu.Lock()
	assert.Empty(t, r.o.logs.active)
	r.o.logs.mu.Unlock()
	_, err := io.WriteString(s3.w, ready)
	assert.Error(t, err, "the stream was closed")
	assert.Len(t, filter(r.tl.Events(), isAppLog), 3)
}

// A pod of the StatefulSet kind that comes back under its name is followed
// anew, its lines under its own UID.
func TestAppLogsOfAReplacedPod(t *testing.T) {
	logs := newFakeLogs()
	p := pod("web-0", "n1", "10.0.0.1", true)
	running(p, "app", "containerd://a", time.Now().Add(-time.Minute))
	r := startOn(t, fake.NewClientset(p), func(o *Observer) { o.openLog = logs.open },
		WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	s1 := logs.next(t)
	line := appLine(t, time.Now(), slog.LevelInfo, contract.MsgStarted)
	s1.write(t, line)
	r.waitKinds(1, isAppLog)

	nu := pod("web-0", "n2", "10.0.0.2", true)
	nu.UID = "uid-web-0-new"
	running(nu, "app", "containerd://b", time.Now().Add(-time.Minute))
	r.updatePod(nu)
	s2 := logs.next(t)
	require.NoError(t, s1.w.Close())
	s2.write(t, line) // the same text, but another pod's line
	got := r.waitKinds(2, isAppLog)
	assert.Equal(t, []string{"uid-web-0", "uid-web-0-new"}, []string{got[0].UID, got[1].UID})
	assert.Equal(t, []string{"n1", "n2"}, []string{got[0].Node, got[1].Node})
}

// Only the named containers are followed; WithoutAppLogs follows none.
func TestLogContainerOptions(t *testing.T) {
	p := pod("web-1", "n1", "10.0.0.1", true)
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "proxy"})
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "proxy"})
	running(p, "app", "containerd://app", time.Now())
	running(p, "proxy", "containerd://proxy", time.Now())

	all := newFakeLogs()
	startOn(t, fake.NewClientset(p.DeepCopy()), func(o *Observer) { o.openLog = all.open }, WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	a, b := all.next(t), all.next(t)
	assert.ElementsMatch(t, []string{"app", "proxy"}, []string{a.opts.Container, b.opts.Container}, "every regular container by default")

	some := newFakeLogs()
	startOn(t, fake.NewClientset(p.DeepCopy()), func(o *Observer) { o.openLog = some.open },
		WithoutNodes(), WithoutEvents(), WithLagProbe(0), WithLogContainers("app"))
	assert.Equal(t, "app", some.next(t).opts.Container)
	some.none(t, 100*time.Millisecond)

	none := newFakeLogs()
	startOn(t, fake.NewClientset(p.DeepCopy()), func(o *Observer) { o.openLog = none.open },
		WithoutNodes(), WithoutEvents(), WithLagProbe(0), WithoutAppLogs())
	none.none(t, 100*time.Millisecond)
}

// A stream that cannot be opened is retried a few times, then noted once per
// container instance, however often the follower is started again.
func TestLogFollowFailures(t *testing.T) {
	t.Parallel()
	logs := newFakeLogs()
	logs.fail = func(string, string) error {
		return errors.New("dial tcp 172.18.0.2:10250: connect: connection refused")
	}
	p := pod("web-1", "n1", "10.0.0.1", true)
	running(p, "app", "containerd://c1", time.Now())
	r := startOn(t, fake.NewClientset(p), func(o *Observer) { o.openLog, o.logRetry = logs.open, 5*time.Millisecond },
		WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	failed := func(e timeline.Event) bool { return e.Kind == timeline.EvNote && e.Reason == "LogFollowFailed" }
	got := r.waitKinds(1, failed)
	assert.Equal(t, logOpenAttempts, logs.count("web-1/app"))
	assert.Equal(t, "web-1", got[0].Pod)
	assert.Equal(t, "uid-web-1", got[0].UID)
	assert.Contains(t, got[0].Detail, "container app of pod web-1")
	assert.Contains(t, got[0].Detail, "connection refused")

	// Any change of the pod starts a follower again, which fails again:
	// not noted twice.
	idle := func() bool {
		r.o.logs.mu.Lock()
		defer r.o.logs.mu.Unlock()
		return len(r.o.logs.active) == 0
	}
	require.Eventually(t, idle, 5*time.Second, 5*time.Millisecond)
	p.Labels["touched"] = "yes"
	r.updatePod(p)
	require.Eventually(t, func() bool { return logs.count("web-1/app") == 2*logOpenAttempts }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, idle, 5*time.Second, 5*time.Millisecond)
	assert.Len(t, filter(r.tl.Events(), failed), 1)
}

// An identity that may not read logs is told once, and no follower tries
// again.
func TestLogFollowForbidden(t *testing.T) {
	logs := newFakeLogs()
	logs.fail = func(string, string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods/log"}, "web-1", errors.New("RBAC: no"))
	}
	p := pod("web-1", "n1", "10.0.0.1", true)
	running(p, "app", "containerd://c1", time.Now())
	r := startOn(t, fake.NewClientset(p), func(o *Observer) { o.openLog = logs.open },
		WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	got := r.waitKinds(1, func(e timeline.Event) bool { return e.Reason == "LogFollowFailed" })
	assert.Contains(t, got[0].Detail, "grant get on pods/log in namespace shop")
	assert.Contains(t, got[0].Detail, "WithoutAppLogs")

	q := pod("web-2", "n1", "10.0.0.2", true)
	running(q, "app", "containerd://c2", time.Now())
	_, err := r.cs.CoreV1().Pods(ns).Create(bg, q, metav1.CreateOptions{})
	require.NoError(t, err)
	r.waitKinds(2, func(e timeline.Event) bool { return e.Pod == "web-2" })
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 1, logs.count("web-1/app"))
	assert.Equal(t, 0, logs.count("web-2/app"))
	assert.Len(t, filter(r.tl.Events(), func(e timeline.Event) bool { return e.Reason == "LogFollowFailed" }), 1)
}

// With the fake clientset's own log streams ("fake logs", not the app's):
// followed, nothing recorded.
func TestFakeClientsetLogsRecordNothing(t *testing.T) {
	p := pod("web-1", "n1", "10.0.0.1", true)
	running(p, "app", "containerd://c1", time.Now())
	cs := fake.NewClientset(p)
	r := startOn(t, cs, nil, WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	var opts *corev1.PodLogOptions
	require.Eventually(t, func() bool {
		for _, a := range cs.Actions() {
			if g, ok := a.(k8stesting.GenericAction); ok && a.GetSubresource() == "log" {
				opts, _ = g.GetValue().(*corev1.PodLogOptions)
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the log was opened")
	require.NotNil(t, opts)
	assert.Equal(t, "app", opts.Container)
	assert.True(t, opts.Follow)
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, filter(r.tl.Events(), isAppLog))
}

// The API server goes away (a control-plane upgrade): the log stream breaks
// and cannot be opened again until it is back, which is not a follow
// failure; the follower then reads on from where it was.
func TestLogFollowerOutlivesAnAPIServerRestart(t *testing.T) {
	t.Parallel()
	f := newFlakyAPI()
	logs := newFakeLogs()
	logs.fail = func(string, string) error {
		if f.down.Load() {
			return refused()
		}
		return nil
	}
	p := pod("web-1", "n1", "10.0.0.1", true)
	running(p, "app", "containerd://c1", time.Now().Add(-time.Minute))
	_, err := f.cs.CoreV1().Pods(ns).Create(bg, p, metav1.CreateOptions{})
	require.NoError(t, err)
	r := startOn(t, f.cs, func(o *Observer) { o.openLog = logs.open }, WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	s1 := logs.next(t)
	readyAt := time.Now().Add(2 * time.Second).UTC()
	ready := appLine(t, readyAt, slog.LevelInfo, contract.MsgReady)
	s1.write(t, ready)
	r.waitKinds(1, isAppLog)

	f.down.Store(true)
	f.breakAll("*", nil)
	require.NoError(t, s1.w.Close())
	r.waitFor(10*time.Second, 1, func(e timeline.Event) bool { return e.Kind == timeline.EvWatchInterrupted })
	time.Sleep(logOpenAttempts * logRetryBase) // more failed opens than a follower otherwise tries
	f.down.Store(false)

	s2 := logs.next(t)
	assert.Equal(t, readyAt.Add(-time.Second), s2.opts.SinceTime.Time, "from the last line read")
	s2.write(t, ready)
	s2.write(t, appLine(t, readyAt.Add(time.Millisecond), slog.LevelInfo, contract.MsgSIGTERM, slog.String("mode", "graceful")))
	got := r.waitKinds(2, isAppLog)
	assert.Equal(t, []string{contract.MsgReady, contract.MsgSIGTERM}, []string{got[0].Name, got[1].Name})
	r.waitFor(15*time.Second, 1, func(e timeline.Event) bool { return e.Kind == timeline.EvWatchResumed })
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, filter(r.tl.Events(), func(e timeline.Event) bool { return e.Reason == "LogFollowFailed" }), dump(r.tl.Events()))
	assert.Len(t, filter(r.tl.Events(), isAppLog), 2)
}
