package observe

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// flakyAPI is a fake clientset whose watch streams a test can break and
// whose lists and watches it can make fail, as an API server restarting
// during a control-plane upgrade does.
type flakyAPI struct {
	cs   *fake.Clientset
	down atomic.Bool // every list and watch is refused

	mu          sync.Mutex
	streams     map[string][]*breakable // by resource
	failLists   map[string][]error      // the next lists of a resource fail with these
	failWatches map[string][]error
	lists       map[string]int // lists seen, by resource
}

func newFlakyAPI(objs ...runtime.Object) *flakyAPI {
	f := &flakyAPI{
		cs: fake.NewClientset(objs...), streams: map[string][]*breakable{},
		failLists: map[string][]error{}, failWatches: map[string][]error{}, lists: map[string]int{},
	}
	f.cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		res := a.GetResource().Resource
		if err := f.failure(f.failWatches, res); err != nil {
			return true, nil, err
		}
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := f.cs.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		b := newBreakable(w)
		f.mu.Lock()
		f.streams[res] = append(f.streams[res], b)
		f.mu.Unlock()
		return true, b, nil
	})
	f.cs.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		res := a.GetResource().Resource
		f.mu.Lock()
		f.lists[res]++
		f.mu.Unlock()
		if err := f.failure(f.failLists, res); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
	return f
}

func refused() error {
	return fmt.Errorf("dial tcp 172.18.0.3:6443: connect: %w", syscall.ECONNREFUSED)
}

func (f *flakyAPI) failure(queue map[string][]error, res string) error {
	if f.down.Load() {
		return refused()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := queue[res]; len(q) > 0 {
		queue[res] = q[1:]
		return q[0]
	}
	return nil
}

func (f *flakyAPI) listCount(res string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[res]
}

func (f *flakyAPI) streamCount(res string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams[res])
}

// breakAll breaks every stream opened so far: with an error event when st
// is set, else by closing it.
func (f *flakyAPI) breakAll(res string, st *metav1.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r, bs := range f.streams {
		if res != "*" && r != res {
			continue
		}
		for _, b := range bs {
			b.breakWith(st)
		}
	}
}

// breakable passes a fake watch's events on until it is broken.
type breakable struct {
	in       watch.Interface
	out      chan watch.Event
	brk      chan *metav1.Status
	stop     chan struct{}
	stopOnce sync.Once
	brkOnce  sync.Once
}

func newBreakable(in watch.Interface) *breakable {
	b := &breakable{in: in, out: make(chan watch.Event), brk: make(chan *metav1.Status, 1), stop: make(chan struct{})}
	go b.loop()
	return b
}

func (b *breakable) loop() {
	defer close(b.out)
	defer b.in.Stop()
	for {
		select {
		case ev, ok := <-b.in.ResultChan():
			if !ok {
				return
			}
			select {
			case b.out <- ev:
			case <-b.stop:
				return
			}
		case st := <-b.brk:
			if st != nil {
				select {
				case b.out <- watch.Event{Type: watch.Error, Object: st}:
				case <-b.stop:
				}
			}
			return
		case <-b.stop:
			return
		}
	}
}

func (b *breakable) breakWith(st *metav1.Status)    { b.brkOnce.Do(func() { b.brk <- st }) }
func (b *breakable) ResultChan() <-chan watch.Event { return b.out }
func (b *breakable) Stop()                          { b.stopOnce.Do(func() { close(b.stop) }) }

func isWatchGap(e timeline.Event) bool {
	return e.Kind == timeline.EvWatchInterrupted || e.Kind == timeline.EvWatchResumed
}

// waitFor waits up to d for n events matching keep.
func (r *rig) waitFor(d time.Duration, n int, keep func(timeline.Event) bool) []timeline.Event {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := filter(r.tl.Events(), keep)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waited %s for %d events, have %d:\n%s", d, n, len(got), dump(r.tl.Events()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The API server goes away for a while (a control-plane upgrade): every
// watch breaks and its retries fail, then it comes back. Each watch records
// one interruption and one resumption, whatever the retries meanwhile, and
// sees changes again afterwards.
func TestAPIServerDownGivesOnePairPerWatch(t *testing.T) {
	t.Parallel()
	f := newFlakyAPI(pod("web-1", "n1", "10.0.0.1", true), slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}), node("n1", true, false))
	r := startOn(t, f.cs, nil, WithLagProbe(50*time.Millisecond))
	r.waitFor(5*time.Second, 1, func(e timeline.Event) bool { return e.Kind == timeline.EvWatchLag })

	f.down.Store(true)
	downAt := r.tl.Now()
	f.breakAll("*", nil)
	interrupted := func(e timeline.Event) bool { return e.Kind == timeline.EvWatchInterrupted }
	r.waitFor(10*time.Second, 4, interrupted)
	time.Sleep(time.Second) // still down: more retries fail
	f.down.Store(false)
	upAt := r.tl.Now()

	resumed := func(e timeline.Event) bool { return e.Kind == timeline.EvWatchResumed }
	r.waitFor(20*time.Second, 4, resumed)
	p := pod("web-1", "n1", "10.0.0.1", false)
	r.updatePod(p)
	r.waitFor(5*time.Second, 1, func(e timeline.Event) bool { return e.Kind == timeline.EvPodNotReady })
	lastResume := filter(r.tl.Events(), resumed)[3].Offset
	r.waitFor(5*time.Second, 1, func(e timeline.Event) bool { return e.Kind == timeline.EvWatchLag && e.Offset > lastResume })
	time.Sleep(200 * time.Millisecond)

	events := r.tl.Events()
	gaps := filter(events, isWatchGap)
	byWatch := map[string][]timeline.Event{}
	for _, e := range gaps {
		byWatch[e.Name] = append(byWatch[e.Name], e)
	}
	assert.ElementsMatch(t, []string{
		"pods with app=web in namespace shop", "endpointslices of service shop/web", "nodes (cluster-wide)", "events in namespace shop",
	}, sortedKeys(byWatch), "one pair per watch, none for the lag probe's:\n%s", dump(gaps))
	for name, es := range byWatch {
		require.Equal(t, []timeline.EventKind{timeline.EvWatchInterrupted, timeline.EvWatchResumed}, kinds(es), "%s:\n%s", name, dump(gaps))
		assert.Contains(t, es[0].Detail, "connection refused", name)
		assert.GreaterOrEqual(t, es[0].Offset, downAt, name)
		assert.Less(t, es[0].Offset, upAt, name)
		assert.GreaterOrEqual(t, es[1].Offset, upAt, name)
		assert.Contains(t, []string{"relisted", "watch re-established"}, es[1].Detail, name)
	}
	// No lag measured the outage: changes in flight when it began are
	// forgotten, and none is sent while the probe's watch is down.
	for _, e := range filter(events, func(e timeline.Event) bool { return e.Kind == timeline.EvWatchLag }) {
		assert.Less(t, e.Value, 500*time.Millisecond, e.Detail)
	}
}

// An error inside a watch's stream ends it; the reflector relists after a
// back-off, and the first relist fails too: one interruption, resumed by
// the relist.
func TestWatchErrorEventThenFailedRelist(t *testing.T) {
	t.Parallel()
	f := newFlakyAPI(pod("web-1", "n1", "10.0.0.1", true))
	r := startOn(t, f.cs, nil, WithoutNodes(), WithoutEvents(), WithoutAppLogs(), WithLagProbe(0))
	lists := f.listCount("pods")
	f.mu.Lock()
	f.failLists["pods"] = []error{apierrors.NewServiceUnavailable("the server is currently unable to handle the request")}
	f.mu.Unlock()
	f.breakAll("pods", &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError,
		Reason: metav1.StatusReasonInternalError, Message: "etcdserver: leader changed"})

	got := r.waitFor(15*time.Second, 2, isWatchGap)
	require.Equal(t, []timeline.EventKind{timeline.EvWatchInterrupted, timeline.EvWatchResumed}, kinds(got), dump(got))
	assert.Equal(t, "pods with app=web in namespace shop", got[0].Name)
	assert.Equal(t, got[0].Name, got[1].Name)
	assert.Contains(t, got[0].Detail, "etcdserver: leader changed")
	assert.Equal(t, "relisted", got[1].Detail)
	assert.Equal(t, lists+2, f.listCount("pods"), "a failed relist, then one that worked")
	time.Sleep(200 * time.Millisecond)
	assert.Len(t, filter(r.tl.Events(), isWatchGap), 2)
}

// A refused watch is retried by the reflector without relisting (nor telling
// its error handler): still one interruption, and the watch, once
// re-established, delivers changes.
func TestRefusedWatchReestablished(t *testing.T) {
	t.Parallel()
	f := newFlakyAPI(pod("web-1", "n1", "10.0.0.1", true))
	r := startOn(t, f.cs, nil, WithoutNodes(), WithoutEvents(), WithoutAppLogs(), WithLagProbe(0))
	// A change through the current stream first, so that its end is not a
	// "very short watch", which the reflector answers with a relist.
	p := pod("web-1", "n1", "10.0.0.1", false)
	r.updatePod(p)
	r.waitKinds(1, func(e timeline.Event) bool { return e.Kind == timeline.EvPodNotReady })
	lists := f.listCount("pods")
	f.mu.Lock()
	f.failWatches["pods"] = []error{refused(), refused()}
	f.mu.Unlock()
	f.breakAll("pods", nil)

	got := r.waitFor(15*time.Second, 2, isWatchGap)
	require.Equal(t, []timeline.EventKind{timeline.EvWatchInterrupted, timeline.EvWatchResumed}, kinds(got), dump(got))
	assert.Contains(t, got[0].Detail, "connection refused")
	assert.Equal(t, "watch re-established", got[1].Detail)
	assert.Equal(t, lists, f.listCount("pods"), "no relist")

	setReady(p, true)
	r.updatePod(p)
	r.waitKinds(1, func(e timeline.Event) bool { return e.Kind == timeline.EvPodReady && e.Offset > got[1].Offset })
	assert.Len(t, filter(r.tl.Events(), isWatchGap), 2)
}

// The ends the reflector expects are not interruptions: a stream closed by
// the server, an expired resource version (410) that makes it relist.
func TestNormalWatchEndsAreNotInterruptions(t *testing.T) {
	t.Parallel()
	f := newFlakyAPI(pod("web-1", "n1", "10.0.0.1", true), slice("web-a", ep{"10.0.0.1", "web-1", "n1", true, false}))
	r := startOn(t, f.cs, nil, WithoutNodes(), WithoutEvents(), WithoutAppLogs(), WithLagProbe(0))
	lists, streams := f.listCount("pods"), f.streamCount("endpointslices")
	f.breakAll("pods", &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusGone,
		Reason: metav1.StatusReasonExpired, Message: "too old resource version: 1 (42)"})
	f.breakAll("endpointslices", nil)
	require.Eventually(t, func() bool { return f.listCount("pods") > lists }, 10*time.Second, 10*time.Millisecond, "relisted")
	require.Eventually(t, func() bool { return f.streamCount("endpointslices") > streams }, 10*time.Second, 10*time.Millisecond, "watching again")

	r.applySlice(slice("web-a", ep{"10.0.0.1", "web-1", "n1", false, false}), false)
	r.waitKinds(1, func(e timeline.Event) bool { return e.Kind == timeline.EvEndpointNotReady })
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, filter(r.tl.Events(), isWatchGap), dump(r.tl.Events()))
}
