package observe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// The watch-lag probe: a ConfigMap the observer changes and watches. The lag
// from sending a change to its delivery by a watch is what every event on the
// timeline suffers (they are stamped at delivery), measured instead of
// assumed; verdicts use it as their tolerance when correlating requests with
// events.
const (
	probePrefix      = "rehearse-watch-probe-"
	probeKey         = "counter"
	managedByLabel   = "app.kubernetes.io/managed-by"
	managedByValue   = "rehearse"
	probeCallTimeout = 10 * time.Second
	probeDeleteWait  = 5 * time.Second
	probeMaxInFlight = 300 // changes remembered until delivered; older ones are forgotten
	reasonUnmeasured = "WatchLagUnmeasured"
	reasonProbeLeft  = "WatchProbeLeft"
	probeGrant       = "create, patch, delete, list and watch on configmaps"
)

// lagProbe is the probe's state.
type lagProbe struct {
	mu     sync.Mutex
	name   string          // the ConfigMap, once created and until deleted
	delCtx context.Context // for deleting it: the Start context, without its cancellation
	next   int64
	sent   map[int64]time.Time // counter → when its change was sent, until delivered
}

func (p *lagProbe) init() { p.sent = map[int64]time.Time{} }

// startProbe creates the probe's ConfigMap and starts watching and changing
// it. Failing to is noted on the timeline; the rehearsal goes on without.
func (o *Observer) startProbe(ctx context.Context) {
	ns := o.target.Namespace
	cms := o.client.CoreV1().ConfigMaps(ns)
	name := probePrefix + utilrand.String(5)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{managedByLabel: managedByValue}},
		Data:       map[string]string{probeKey: "0"},
	}
	cctx, cancel := context.WithTimeout(o.runCtx, probeCallTimeout)
	_, err := cms.Create(cctx, cm, metav1.CreateOptions{})
	cancel()
	if err != nil {
		if o.runCtx.Err() == nil {
			o.lagUnmeasured(fmt.Sprintf("could not create the probe's ConfigMap %s/%s: %v%s", ns, name, err, grantHint(err, ns)))
		}
		if errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) {
			// It may have been created all the same.
			o.deleteProbeConfigMap(context.WithoutCancel(ctx), name)
		}
		return
	}
	nameSel := fields.OneTermEqualSelector("metadata.name", name).String()
	w, err := o.newWatch(watchSpec{
		what: fmt.Sprintf("watch-lag probe configmap %s/%s", ns, name), hint: probeGrant + " in namespace " + ns,
		// Its interruptions are not the timeline's: no verdict depends on
		// this watch, and the others' are recorded. Changes sent before
		// one would measure the interruption, not the lag.
		quiet: true, onInterrupt: o.probe.forgetSent,
		example: &corev1.ConfigMap{}, tweak: func(lo *metav1.ListOptions) { lo.FieldSelector = nameSel },
		list: lister(cms.List), watch: cms.Watch,
		handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    o.probeSeen,
			UpdateFunc: func(_, obj any) { o.probeSeen(obj) },
		},
	})

	o.lifeMu.Lock()
	if o.stopped || err != nil {
		o.lifeMu.Unlock()
		o.deleteProbeConfigMap(context.WithoutCancel(ctx), name)
		if err != nil {
			o.lagUnmeasured(err.Error())
		}
		return
	}
	o.probe.mu.Lock()
	o.probe.name, o.probe.delCtx = name, context.WithoutCancel(ctx)
	o.probe.mu.Unlock()
	probeCtx, stopWatch := context.WithCancel(o.runCtx)
	o.runLocked(probeCtx, w)
	o.running.Add(1)
	o.lifeMu.Unlock()
	go func() {
		defer o.running.Done()
		defer stopWatch()
		o.probeLoop(probeCtx, w, name)
	}()
}

// probeLoop waits for the probe's watch to sync, then changes the ConfigMap
// every lagEvery until ctx ends.
func (o *Observer) probeLoop(ctx context.Context, w *watched, name string) {
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, o.syncTimeout, true, func(context.Context) (bool, error) {
		if fatal := w.fatalErr(); fatal != nil {
			return false, fatal
		}
		return w.reg.HasSynced(), nil
	})
	if err != nil {
		if ctx.Err() == nil || w.fatalErr() != nil {
			why := err.Error()
			if last := w.lastError(); last != nil && w.fatalErr() == nil {
				why += " (last error: " + last.Error() + ")"
			}
			o.lagUnmeasured("the probe's watch did not sync: " + why)
		}
		return
	}
	cms := o.client.CoreV1().ConfigMaps(o.target.Namespace)
	tick := time.NewTicker(o.lagEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if w.interruptedNow() {
			continue // the change would measure the interruption
		}
		n, sent := o.probe.send()
		patch := fmt.Sprintf(`{"data":{%q:%q}}`, probeKey, strconv.FormatInt(n, 10))
		cctx, cancel := context.WithTimeout(ctx, probeCallTimeout)
		// A merge patch of the one key: no read-modify-write, no conflict.
		_, err := cms.Patch(cctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		cancel()
		if err != nil {
			o.probe.unsend(n, sent)
		}
	}
}

// send numbers a new change and remembers when it was sent: before the call,
// since the watch may deliver it before the call returns.
func (p *lagProbe) send() (int64, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	n, at := p.next, time.Now()
	p.sent[n] = at
	delete(p.sent, n-probeMaxInFlight)
	return n, at
}

// unsend forgets a change that failed.
func (p *lagProbe) unsend(n int64, at time.Time) {
	p.mu.Lock()
	if p.sent[n] == at {
		delete(p.sent, n)
	}
	p.mu.Unlock()
}

// forgetSent forgets every change in flight (the probe's watch was
// interrupted).
func (p *lagProbe) forgetSent() {
	p.mu.Lock()
	clear(p.sent)
	p.mu.Unlock()
}

// probeSeen records the lag of a delivered change. The initial state, a
// relist's re-delivery and changes already measured or forgotten are not
// changes in flight, and record nothing.
func (o *Observer) probeSeen(obj any) {
	now := time.Now()
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	n, err := strconv.ParseInt(cm.Data[probeKey], 10, 64)
	p := &o.probe
	p.mu.Lock()
	sent, inFlight := p.sent[n]
	if err != nil || cm.Name != p.name || !inFlight {
		p.mu.Unlock()
		return
	}
	for k := range p.sent {
		if k <= n { // older changes were overtaken: never delivered on their own
			delete(p.sent, k)
		}
	}
	p.mu.Unlock()
	o.emit(timeline.Event{Offset: o.tl.Since(now), Kind: timeline.EvWatchLag, Value: now.Sub(sent), Detail: fmt.Sprintf("probe %d", n)})
}

// deleteProbe deletes the probe's ConfigMap, if there is one. Called by Stop
// once the probe's loop has returned.
func (o *Observer) deleteProbe() {
	p := &o.probe
	p.mu.Lock()
	name, ctx := p.name, p.delCtx
	p.name = ""
	p.mu.Unlock()
	if name != "" {
		o.deleteProbeConfigMap(ctx, name)
	}
}

// deleteProbeConfigMap deletes the ConfigMap within a short bound, with a
// context that outlives the rehearsal's cancellation (Ctrl-C must not leave
// it behind), and notes on the timeline if it could not.
func (o *Observer) deleteProbeConfigMap(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, probeDeleteWait)
	defer cancel()
	ns := o.target.Namespace
	err := o.client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvNote, Reason: reasonProbeLeft,
			Detail: fmt.Sprintf("observer: could not delete the watch-lag probe's ConfigMap: %v; delete it with "+
				"kubectl -n %s delete configmap %s", err, ns, name)})
	}
}

// lagUnmeasured notes that the probe does not run.
func (o *Observer) lagUnmeasured(why string) {
	o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvNote, Reason: reasonUnmeasured,
		Detail: "observer: the watch lag is not measured (verdicts assume one instead): " + why})
}

func grantHint(err error, ns string) string {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Sprintf("; grant %s in namespace %s, or use observe.WithLagProbe(0)", probeGrant, ns)
	}
	return ""
}
