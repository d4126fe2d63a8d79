package observe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// How log followers retry. A follower opens its container's log stream and
// reads it to the end; the stream ends when the container exits, but also
// when the API server or the kubelet goes away (a control-plane upgrade),
// so a follower whose container still runs opens the stream again from the
// last line it read. While the pod watch is interrupted the API server is
// away: failed opens are not counted then, and a follower keeps trying until
// it is back. The pod watch's resumption also starts again, from where they
// were, the followers that gave up before it noticed.
const (
	logOpenAttempts = 5                      // failed opens in a row before a follower gives up (and notes it)
	logRetryBase    = 250 * time.Millisecond // the wait after a failed open, doubled at each failure
	logRetryAway    = 2 * time.Second        // the wait after a failed open while the API server is away
	logReopenDelay  = 250 * time.Millisecond // the wait after a stream ended, doubled at each quick end
	logQuickEnd     = 2 * time.Second        // a stream ending sooner than this after it opened ended "quickly"
	logMaxQuickEnds = 5                      // quick ends in a row before a follower stops reopening
	logStopWait     = 2 * time.Second        // how long Stop waits for followers to return
	logReadBuffer   = 16 << 10               // longer lines are skipped: the app's lifecycle lines are short
)

// logFollowers are the goroutines following the logs of running containers,
// one per container ID.
type logFollowers struct {
	mu       sync.Mutex
	closed   bool // Stop began: no new followers
	disabled bool // the identity may not read logs: noted once, not retried
	wg       sync.WaitGroup
	active   map[string]bool // container IDs followed now
	pods     map[types.UID]*podLogs
}

// podLogs is what outlives one follower of a pod's containers.
type podLogs struct {
	seen  map[string]*lineSet  // by container name: the lifecycle lines recorded, across restarts and reopens
	from  map[string]time.Time // by container ID: where a follower started again reads from
	noted map[string]bool      // container IDs whose follow failure is on the timeline
}

func (t *logFollowers) init() {
	t.active = map[string]bool{}
	t.pods = map[types.UID]*podLogs{}
}

// lineSet is a set of log lines.
type lineSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

// add adds a line and reports whether it was new.
func (s *lineSet) add(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.m[line]; dup {
		return false
	}
	if s.m == nil {
		s.m = map[string]struct{}{}
	}
	s.m[line] = struct{}{}
	return true
}

// logSource is one container instance whose log is read, and where its lines
// go on the timeline.
type logSource struct {
	pod, node, container string
	uid                  types.UID
	id                   string    // the container ID
	since                time.Time // lines written before are not recorded
	from                 time.Time // where to read from: since, or where a previous follower was
	seen                 *lineSet
}

// followRunningLocked starts a follower for each running container of the
// pod that has none. Called with pods.mu held.
func (o *Observer) followRunningLocked(pod string, st *podState) {
	if !o.appLogs {
		return
	}
	for _, c := range sortedKeys(st.running) {
		if len(o.logContainers) > 0 && !o.logContainers[c] {
			continue
		}
		rc := st.running[c]
		// Nothing from before the rehearsal: a container found running at
		// the start is read from the timeline's start on.
		since := rc.started
		if start := o.tl.Start(); since.Before(start) {
			since = start
		}
		o.startFollower(logSource{pod: pod, node: st.node, container: c, uid: st.uid, id: rc.id, since: since})
	}
}

// followAllRunning starts the followers missing: those that gave up while
// the API server was unreachable.
func (o *Observer) followAllRunning() {
	o.pods.mu.Lock()
	defer o.pods.mu.Unlock()
	for _, name := range sortedKeys(o.pods.pods) {
		o.followRunningLocked(name, o.pods.pods[name])
	}
}

func (o *Observer) startFollower(src logSource) {
	t := &o.logs
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.disabled || t.active[src.id] {
		return
	}
	pl := t.podLogs(src.uid)
	if pl.seen[src.container] == nil {
		pl.seen[src.container] = &lineSet{}
	}
	src.seen = pl.seen[src.container]
	src.from = later(src.since, pl.from[src.id])
	t.active[src.id] = true
	t.wg.Add(1)
	go o.follow(src)
}

func (t *logFollowers) podLogs(uid types.UID) *podLogs {
	pl := t.pods[uid]
	if pl == nil {
		pl = &podLogs{seen: map[string]*lineSet{}, from: map[string]time.Time{}, noted: map[string]bool{}}
		t.pods[uid] = pl
	}
	return pl
}

// readFrom remembers where the follower of a container instance got to.
func (t *logFollowers) readFrom(src *logSource, from time.Time) {
	t.mu.Lock()
	t.podLogs(src.uid).from[src.id] = from
	t.mu.Unlock()
}

// forget drops what is kept about a pod that is gone.
func (t *logFollowers) forget(uid types.UID) {
	t.mu.Lock()
	delete(t.pods, uid)
	t.mu.Unlock()
}

// stop lets no new follower start and waits for the running ones (whose
// context is cancelled) at most wait: a stream stuck in a read must not hold
// up the end of a rehearsal. What a late one reads is dropped.
func (t *logFollowers) stop(wait time.Duration) {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// streamLog opens a container's log stream through the API server.
func (o *Observer) streamLog(ctx context.Context, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return o.client.CoreV1().Pods(o.target.Namespace).GetLogs(pod, opts).Stream(ctx)
}

// follow reads one container's log until the container stops running, the
// observer stops, or the stream cannot be opened.
func (o *Observer) follow(src logSource) {
	defer func() {
		o.logs.mu.Lock()
		delete(o.logs.active, src.id)
		o.logs.mu.Unlock()
		o.logs.wg.Done()
	}()
	ctx := o.runCtx
	from := src.from
	failures, quick := 0, 0
	for {
		var wait time.Duration
		opened := time.Now()
		// SinceTime has one-second resolution on the wire: lines up to a
		// second older come again, and the line set drops them.
		rc, err := o.openLog(ctx, src.pod, &corev1.PodLogOptions{Container: src.container, Follow: true, SinceTime: &metav1.Time{Time: from}})
		switch {
		case err == nil:
			failures = 0
			last, _ := o.readAppLog(rc, &src)
			rc.Close()
			if ctx.Err() != nil {
				return
			}
			if !last.IsZero() {
				// A second back, for lines the app stamped out of order.
				from = later(from, last.Add(-time.Second))
				o.logs.readFrom(&src, from)
			}
			if time.Since(opened) < logQuickEnd {
				quick++
			} else {
				quick = 0
			}
			if quick >= logMaxQuickEnds {
				// The container is said to run but its log keeps ending: the
				// watch has not yet told of its exit, or there is nothing
				// to follow. Either way, reopening again is no help.
				return
			}
			wait = logReopenDelay << max(quick-1, 0)
		case ctx.Err() != nil:
			return
		case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			o.logsRefused(err)
			return
		case o.apiAway():
			failures = 0
			wait = logRetryAway
		default:
			failures++
			if failures >= logOpenAttempts {
				if o.containerRunning(src) {
					o.followFailed(src, from, failures, err)
				}
				return
			}
			wait = o.logRetry << (failures - 1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if !o.containerRunning(src) {
			return
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// apiAway reports whether the pod watch is interrupted: the API server is
// then unreachable.
func (o *Observer) apiAway() bool { return o.podWatch != nil && o.podWatch.interruptedNow() }

// containerRunning reports whether the pod watch still sees the container
// instance running.
func (o *Observer) containerRunning(src logSource) bool {
	o.pods.mu.Lock()
	defer o.pods.mu.Unlock()
	st := o.pods.pods[src.pod]
	return st != nil && st.uid == src.uid && st.running[src.container].id == src.id
}

// logsRefused turns log following off for good when the identity may not
// read logs, and says so once.
func (o *Observer) logsRefused(err error) {
	t := &o.logs
	t.mu.Lock()
	first := !t.disabled
	t.disabled = true
	t.mu.Unlock()
	if first {
		ns := o.target.Namespace
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvNote, Reason: "LogFollowFailed",
			Detail: fmt.Sprintf("observer: may not read the logs of pods in namespace %s, so the app's lifecycle lines are not "+
				"recorded: %v; grant get on pods/log in namespace %s, or use observe.WithoutAppLogs", ns, err, ns)})
	}
}

// followFailed notes, once per container instance, that its log could not
// be followed.
func (o *Observer) followFailed(src logSource, from time.Time, attempts int, err error) {
	t := &o.logs
	t.mu.Lock()
	pl := t.podLogs(src.uid)
	first := !pl.noted[src.id]
	pl.noted[src.id] = true
	t.mu.Unlock()
	if first {
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvNote, Reason: "LogFollowFailed",
			Pod: src.pod, UID: string(src.uid), Node: src.node,
			Detail: fmt.Sprintf("observer: could not follow the log of container %s of pod %s (%d attempts), so its lifecycle "+
				"lines from %s on may be missing: %v", src.container, src.pod, attempts, from.UTC().Format(time.RFC3339), err)})
	}
}

// readAppLog reads a container's log until it ends and records the app's
// lifecycle lines in it: those contract.ParseLogLine accepts and whose msg
// contract.IsLifecycle accepts, written at or after src.since, each once
// (src.seen). It returns the time of the last line of the app's format it
// read (zero when none) and the read error (nil at the end of the stream).
//
// Only whole lines count: a stream cut mid-line leaves a truncated line,
// which is read whole when the stream is opened again.
func (o *Observer) readAppLog(r io.Reader, src *logSource) (time.Time, error) {
	br := bufio.NewReaderSize(r, logReadBuffer)
	var last time.Time
	long := false // inside a line longer than the buffer
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = true
			continue
		}
		if !long && len(b) > 0 && b[len(b)-1] == '\n' {
			if t, ok := o.appLogLine(string(b), src); ok && t.After(last) {
				last = t
			}
		}
		long = false
		if err != nil {
			if errors.Is(err, io.EOF) {
				return last, nil
			}
			return last, err
		}
	}
}

// appLogLine records one line if it is a lifecycle line of the app not
// recorded yet. It returns the line's time and whether it was in the app's
// format at all.
func (o *Observer) appLogLine(line string, src *logSource) (time.Time, bool) {
	l, ok := contract.ParseLogLine(line)
	if !ok {
		return time.Time{}, false
	}
	if !contract.IsLifecycle(l.Msg) || l.Time.Before(src.since) || !src.seen.add(strings.TrimRight(line, "\r\n")) {
		return l.Time, true
	}
	o.emit(timeline.Event{
		Offset: o.tl.Since(l.Time), Kind: timeline.EvAppLog,
		Pod: src.pod, UID: string(src.uid), Node: src.node,
		Name: l.Msg, Detail: attrText(l),
	})
	return l.Time, true
}

// attrText writes a line's attributes as "k=v k=v", quoted the way slog
// quotes them, in the line's order: "signal=terminated mode=graceful
// in_flight=2" reads best as the app wrote it.
func attrText(l contract.LogLine) string {
	var b strings.Builder
	for i, k := range l.Keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteIfNeeded(k))
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(l.Attrs[k]))
	}
	return b.String()
}

// quoteIfNeeded quotes what slog's text handler would quote.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '=' || r == '"' || r == unicode.ReplacementChar || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(s)
	}
	return s
}
