package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/progress"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/upgrades"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// Defaults of a Watch.
const (
	DefaultWatchFor      = time.Hour
	MaxWatchFor          = 24 * time.Hour
	DefaultWatchBaseline = 30 * time.Second
	DefaultWatchRecovery = 30 * time.Second
	// watchTick is how often the timeline is searched for upgrades.
	watchTick = 2 * time.Second
	// seenLate is how much earlier than its first node change was seen an
	// upgrade's fault begins: more than a healthy watch's lag.
	seenLate = 2 * time.Second
)

// PhaseWatching is the phase of a watch's live timeline after its warm-up.
const PhaseWatching = "watching"

// WatchChecks judge an upgrade the harness found rather than performed:
// what clients saw, and the upgrade as its nodes show it.
var WatchChecks = []string{verdict.CheckLoad, verdict.CheckBaseline, verdict.CheckObservation,
	verdict.CheckWatchedUpgrade, verdict.CheckErrorRate, verdict.CheckOutage, verdict.CheckReadyEndpoints,
	verdict.CheckReadiness, verdict.CheckGracefulShutdown}

// Watch is a plan that performs nothing: the app under load and observed
// for a while, and each node-pool upgrade that happens meanwhile (started
// by AKS, a maintenance window, another person or process) judged as a
// rehearsal of its own, with the minute before it as its baseline.
type Watch struct {
	// Plan: the cluster, the app and the clients. Scenarios, Journal and
	// Undos are not used; Baseline and Recovery are each upgrade's
	// (DefaultWatchBaseline, DefaultWatchRecovery when zero).
	Plan
	For      time.Duration    // how long to watch (DefaultWatchFor; at most MaxWatchFor)
	Upgrades upgrades.Options // what ends an upgrade
	// StopAfter ends the watch early, once that many upgrades were judged
	// (0: watch for the whole of For).
	StopAfter int
}

// Watched is one upgrade found and judged: its own timeline (the baseline
// before it to the recovery after it), verdict and the clients' figures
// over that time.
type Watched struct {
	Upgrade *upgrades.Upgrade
	Result
}

func (w *Watch) defaults() {
	if w.For == 0 {
		w.For = DefaultWatchFor
	}
	if w.Baseline == 0 {
		w.Baseline = DefaultWatchBaseline
	}
	if w.Recovery == 0 {
		w.Recovery = DefaultWatchRecovery
	}
	if w.Upgrades.Quiet == 0 {
		w.Upgrades.Quiet = upgrades.DefaultQuiet
	}
	if w.Upgrades.Quiet < w.Recovery+w.settle() {
		// The recovery after an upgrade must be recorded, and its requests
		// answered, before the upgrade counts as finished.
		w.Upgrades.Quiet = w.Recovery + w.settle()
	}
	w.Plan.defaults()
	w.MaxDuration = w.For + w.Warmup + time.Minute
}

func (w *Watch) validate() error {
	var errs []error
	if w.Client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if !w.Gateway && w.ServiceURL == "" && w.InCluster == nil {
		errs = append(errs, errors.New("no client: run the gateway client, the service client (a ServiceURL), the in-cluster client, or several"))
	}
	if w.Gateway && w.ServicePort == 0 {
		errs = append(errs, errors.New("the gateway client needs the Service port it routes for"))
	}
	if w.StopAfter < 0 {
		errs = append(errs, fmt.Errorf("stop after %d upgrades: give 0 (watch the whole time) or more", w.StopAfter))
	}
	if w.For < time.Minute || w.For > MaxWatchFor {
		errs = append(errs, fmt.Errorf("watch for %s: give 1m to %s", w.For, MaxWatchFor))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("watch plan: %w", err)
	}
	return nil
}

// WatchUpgrades runs the watch until w.For has passed or ctx ends, calling
// found with each upgrade as soon as it is judged: a finished one when its
// pool has been quiet for w.Upgrades.Quiet, one still under way when the
// watch ends (it cannot be judged). Scale-ups and nodes that only went
// NotReady and came back are not upgrades: they are written as notes.
// The error says why the watch could not run; an interrupted watch
// (ctx ended) still judges what it saw and returns ctx's error.
func WatchUpgrades(ctx context.Context, w Watch, found func(Watched)) error {
	w.defaults()
	if err := w.validate(); err != nil {
		return err
	}
	tl := timeline.New(time.Now())
	if w.Out != io.Discard {
		prog := progress.Start(w.Out, tl, progress.Options{})
		defer prog.Stop()
		w.Out = prog.Writer()
	}
	tl.SetMeta("scenarios", "watched-upgrade")
	tl.SetMeta("namespace", w.App.Namespace)
	tl.SetMeta("service", w.App.Service)
	if w.Target != nil {
		tl.SetMeta("target", w.Target.Name())
	}
	in := &instruments{}
	defer in.stop()
	if err := in.start(ctx, w.Plan, tl); err != nil {
		return err
	}
	if err := phase(ctx, tl, timeline.PhaseWarmup, func() error { return warmUp(ctx, w.Plan, tl, in.router) }); err != nil {
		return err
	}
	j := judging{w: &w, tl: tl, watchedFrom: tl.Now(), judged: map[upgradeKey]bool{}, found: found}
	// The live timeline's phase, for the progress display; each upgrade's
	// own timeline has the phases it is judged by.
	tl.BeginPhase(PhaseWatching)
	defer tl.EndPhase(PhaseWatching)
	fmt.Fprintf(w.Out, "  watching for %s: each node-pool upgrade is judged once its pool has been quiet for %s\n",
		w.For, w.Upgrades.Quiet)
	end := time.NewTimer(w.For)
	defer end.Stop()
	tick := time.NewTicker(watchTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			j.finish(in)
			return ctx.Err()
		case <-end.C:
			j.finish(in)
			return nil
		case <-tick.C:
			j.look(false)
			if w.StopAfter > 0 && j.count >= w.StopAfter {
				j.finish(in)
				return nil
			}
		}
	}
}

type upgradeKey struct {
	pool  string
	start time.Duration
}

// judging finds the upgrades on the live timeline and judges each once.
type judging struct {
	w           *Watch
	tl          *timeline.Timeline
	watchedFrom time.Duration // the end of the warm-up: no baseline before it
	judged      map[upgradeKey]bool
	found       func(Watched)
	count       int // upgrades judged
}

// look judges the upgrades that finished (all of them, finished or not,
// when final) and lets the timeline forget the requests no upgrade can
// need any more.
func (j *judging) look(final bool) {
	now := j.tl.Now()
	keep := now - j.w.Baseline - time.Minute
	for _, u := range upgrades.Find(j.tl.Events(), now, j.w.Upgrades) {
		k := upgradeKey{u.Pool, u.Start}
		if j.judged[k] {
			continue
		}
		if !u.Finished && !final {
			keep = min(keep, u.Start-j.w.Baseline-time.Minute)
			continue
		}
		j.judged[k] = true
		if !u.Disruptive() {
			j.tl.Note(fmt.Sprintf("not an upgrade, not judged: %s", u))
			fmt.Fprintf(j.w.Out, "  seen: %s (not an upgrade: not judged)\n", u)
			continue
		}
		fmt.Fprintf(j.w.Out, "  upgrade seen: %s\n", u)
		j.count++
		j.found(j.judge(u, now, final))
	}
	if !final && keep > 0 {
		j.tl.ForgetRequestsBefore(keep)
	}
}

// finish stops the clients and judges what is left.
func (j *judging) finish(in *instruments) {
	in.stop()
	j.look(true)
}

// judge cuts the upgrade's part of the timeline, marks its phases on it
// (baseline: the minute before its first node change; fault: to its last;
// recovery: after it) and judges it.
func (j *judging) judge(u *upgrades.Upgrade, now time.Duration, final bool) Watched {
	snap := j.tl.Snapshot()
	// The first node change is seen up to the watch's lag late, and what
	// it caused may show in the clients before: the fault begins a little
	// earlier, so that none of it counts as the baseline's.
	start := u.Start - seenLate
	baseFrom := start - j.w.Baseline
	end := u.LastChange
	recEnd := min(end+j.w.Recovery, now)
	if !u.Finished {
		end, recEnd = now, now
	}
	win := timeline.Window(&snap, max(baseFrom, 0), recEnd)
	at := func(d time.Duration) time.Duration { return d - max(baseFrom, 0) }
	w := Watched{Upgrade: u}
	w.Timeline = win
	win.AddEvent(timeline.Event{Offset: at(u.Start), Kind: timeline.EvNote, Name: verdict.NoteWatchedUpgrade, Detail: u.String()})
	if baseFrom < j.watchedFrom {
		// Watching began during the upgrade, or too close before it: there
		// is no normal to compare with.
		win.AddEvent(timeline.Event{Offset: at(u.Start), Kind: timeline.EvNote, Name: verdict.NoteNoBaseline,
			Detail: fmt.Sprintf("the upgrade began %s after watching did (the warm-up included): its baseline, the %s before it, was not seen",
				(u.Start - j.watchedFrom).Round(time.Second), j.w.Baseline+seenLate)})
	} else {
		win.BeginPhaseAt(timeline.PhaseBaseline, at(baseFrom))
		win.EndPhaseAt(timeline.PhaseBaseline, at(start))
		win.BeginPhaseAt(timeline.PhaseFault, at(start))
		win.EndPhaseAt(timeline.PhaseFault, at(end))
		if recEnd > end {
			win.BeginPhaseAt(timeline.PhaseRecovery, at(end))
			win.EndPhaseAt(timeline.PhaseRecovery, at(recEnd))
		}
	}
	if !u.Finished {
		win.AddEvent(timeline.Event{Offset: at(end), Kind: timeline.EvNote, Name: verdict.NoteUpgradeUnfinished,
			Detail: fmt.Sprintf("its pool's last node change was %s before the end (an upgrade ends after %s without one, every node Ready and none cordoned)",
				(now - u.LastChange).Round(time.Second), j.w.Upgrades.Quiet)})
	} else if len(u.Left) > 0 {
		win.AddEvent(timeline.Event{Offset: at(end), Kind: timeline.EvNote, Name: verdict.NoteUpgradeLeftNodes,
			Detail: fmt.Sprint(u.Left)})
	}
	ws := win.Snapshot()
	w.Loads = map[timeline.ClientKind]load.Summary{}
	for _, c := range timeline.ClientKinds() {
		if sum := load.Summarize(ws.Requests, c, j.w.Rate); sum.Sent > 0 {
			sum.Name, sum.Stopped = c.String(), load.StoppedDuration
			w.Loads[c] = sum
		}
	}
	w.Checks = WatchChecks
	if len(j.w.Checks) > 0 {
		w.Checks = j.w.Checks
	}
	w.Report = verdict.Judge(win, *j.w.Thresholds, w.Checks...)
	return w
}
