package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Resumed details: how a watch came back.
const (
	resumedRelisted = "relisted"
	resumedWatching = "watch re-established"
)

// watched is one informer the observer runs, with what Start's error report
// and the timeline say about it and the state of its interruptions.
type watched struct {
	what  string // "pods with app=web in namespace shop"
	hint  string // what to grant when it is forbidden
	quiet bool   // its interruptions are not put on the timeline (the lag probe's watch)
	inf   cache.SharedIndexInformer
	reg   cache.ResourceEventHandlerRegistration

	// Called (outside any lock) after an interruption began or ended.
	onInterrupt, onResume func()

	mu          sync.Mutex
	lastErr     error
	fatal       error
	interrupted bool
}

func (w *watched) fatalErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fatal
}

func (w *watched) interruptedNow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.interrupted
}

func (w *watched) lastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

type (
	listFunc  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error)
)

// lister adapts a typed client's List. It returns an untyped nil on error,
// not a typed nil pointer in an interface.
func lister[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error)) listFunc {
	return func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
		l, err := list(ctx, lo)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

// watchSpec describes a watch: what it is, how to list and watch it with the
// typed client, and its handlers.
type watchSpec struct {
	what, hint  string
	quiet       bool
	example     runtime.Object            // an empty object of the watched type
	tweak       func(*metav1.ListOptions) // server-side selectors; nil for none
	list        listFunc
	watch       watchFunc
	handler     cache.ResourceEventHandler
	onInterrupt func()
	onResume    func()
}

// newWatch builds an informer over a cache.ListWatch of the typed client
// whose List and Watch report each failure and success: the reflector
// retries on its own and only tells its error handler about some failures
// (a refused watch, the usual sign of an API server down, is retried
// without telling anyone), so the calls themselves are where an
// interruption and its end can be seen.
func (o *Observer) newWatch(s watchSpec) (*watched, error) {
	w := &watched{what: s.what, hint: s.hint, quiet: s.quiet, onInterrupt: s.onInterrupt, onResume: s.onResume}
	tweak := s.tweak
	if tweak == nil {
		tweak = func(*metav1.ListOptions) {}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			tweak(&lo)
			obj, err := s.list(ctx, lo)
			if err != nil {
				o.watchFailed(w, err, false)
				return nil, err
			}
			o.watchSucceeded(w, resumedRelisted)
			return obj, nil
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			// A watch that sends the initial state first is the reflector's
			// way of listing (the WatchListClient feature).
			watchList := lo.SendInitialEvents != nil && *lo.SendInitialEvents
			tweak(&lo)
			wi, err := s.watch(ctx, lo)
			if err != nil {
				o.watchFailed(w, err, watchList)
				return nil, err
			}
			how := resumedWatching
			if watchList {
				how = resumedRelisted
			}
			o.watchSucceeded(w, how)
			return o.observeStream(w, wi, watchList), nil
		},
	}
	// Keeps the reflector's choice between listing and watch-list: the
	// fake clientset, for one, says it cannot do watch-list.
	w.inf = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, o.client), s.example, 0, cache.Indexers{})
	if err := w.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		o.watchFailed(w, err, false)
	}); err != nil {
		return nil, fmt.Errorf("observe: %s: %w", s.what, err)
	}
	reg, err := w.inf.AddEventHandler(s.handler)
	if err != nil {
		return nil, fmt.Errorf("observe: %s: %w", s.what, err)
	}
	w.reg = reg
	return w, nil
}

// interrupting reports whether a failed list or watch interrupts the watch:
// not the ends the reflector expects and handles at once (a closed stream,
// an expired resource version, its own cancellation). A failed watch-list
// request (one sending the initial state) counts only when the reflector
// retries it (refused, 429): on any other error the reflector falls back to
// a plain list, which then counts on its own, and an API server without
// watch-list must not look like an interruption.
func interrupting(err error, watchList bool) bool {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, context.Canceled),
		apierrors.IsResourceExpired(err), apierrors.IsGone(err),
		apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge):
		return false
	case watchList:
		return utilnet.IsConnectionRefused(err) || apierrors.IsTooManyRequests(err)
	}
	return true
}

// watchFailed is told of every failed list or watch, and of the errors the
// reflector reports. Before the watch synced, a refusal (forbidden,
// unauthorized) ends Start; after it, the first failure begins an
// interruption, recorded once whatever the retries that follow.
func (o *Observer) watchFailed(w *watched, err error, watchList bool) {
	if !interrupting(err, watchList) || o.isStopped() {
		return
	}
	w.mu.Lock()
	w.lastErr = err
	synced := w.reg != nil && w.reg.HasSynced()
	if !synced {
		if (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)) && w.fatal == nil {
			w.fatal = fmt.Errorf("observe: may not watch %s: %w; grant %s", w.what, err, w.hint)
		}
		w.mu.Unlock()
		return
	}
	begins := !w.interrupted
	w.interrupted = true
	w.mu.Unlock()
	if !begins {
		return
	}
	if !w.quiet {
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvWatchInterrupted, Name: w.what, Detail: err.Error()})
	}
	if w.onInterrupt != nil {
		w.onInterrupt()
	}
}

// watchSucceeded is told of every successful list or watch call; one after
// an interruption ends it.
func (o *Observer) watchSucceeded(w *watched, how string) {
	w.mu.Lock()
	ends := w.interrupted
	w.interrupted = false
	w.mu.Unlock()
	if !ends || o.isStopped() {
		return
	}
	if !w.quiet {
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvWatchResumed, Name: w.what, Detail: how})
	}
	if w.onResume != nil {
		w.onResume()
	}
}

// observeStream passes a watch's events on, reporting the error events in
// it: the reflector ends such a watch and relists after a back-off without
// telling its error handler, and changes made meanwhile reach the observer
// only with the relist. (watch.Filter would do, but its goroutine blocks
// forever when the reflector stops reading before the stream ends.)
func (o *Observer) observeStream(w *watched, in watch.Interface, watchList bool) watch.Interface {
	s := &observedStream{in: in, out: make(chan watch.Event), done: make(chan struct{})}
	go func() {
		defer close(s.out)
		for ev := range in.ResultChan() {
			if ev.Type == watch.Error {
				o.watchFailed(w, apierrors.FromObject(ev.Object), watchList)
			}
			select {
			case s.out <- ev:
			case <-s.done:
				return
			}
		}
	}()
	return s
}

type observedStream struct {
	in   watch.Interface
	out  chan watch.Event
	done chan struct{}
	once sync.Once
}

func (s *observedStream) ResultChan() <-chan watch.Event { return s.out }

func (s *observedStream) Stop() {
	s.once.Do(func() { close(s.done) })
	s.in.Stop()
}
