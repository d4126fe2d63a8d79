// Package progress tells a person watching a long rehearsal what it is
// doing: the phase and how long it has lasted, each client's rate and
// failures so far, and what the harness is busy with (the node being
// drained, added, reimaged, a change being undone).
//
// On a terminal it is one status line, redrawn in place twice a second,
// with the rehearsal's own status lines printed above it. Anywhere else (a
// CI log, `go test -v`, `go test -json`) it writes a plain line now and
// then instead, so logs stay readable and never fill with redraws.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Options change how progress is shown.
type Options struct {
	// Terminal forces the live line on (true) or off (false); nil: on when
	// the writer is a terminal.
	Terminal *bool
	// Every is how often a plain line is written when not on a terminal
	// (default 15 s).
	Every time.Duration
}

// Progress is a running status display. Its Writer is where the
// rehearsal's status lines go while it runs.
type Progress struct {
	out   io.Writer
	tl    *timeline.Timeline
	tty   bool
	width int
	every time.Duration

	mu      sync.Mutex
	shown   bool // the live line is on the screen
	state   state
	stop    chan struct{}
	stopped chan struct{}
}

// state is what the status line is made of, followed from the timeline's
// events.
type state struct {
	read       int // events read so far
	phase      string
	phaseStart time.Duration
	actions    map[string]time.Duration // running actions and since when
	order      []string                 // their start order
	doing      string                   // within the action: the node being drained, added, the change undone
	doingSince time.Duration
	last       map[timeline.ClientKind]timeline.Tally
	lastAt     time.Duration
	rates      map[timeline.ClientKind]float64
}

// Start shows the progress of the rehearsal recorded in tl on out until
// Stop. Writing to out directly while it runs would garble the live line:
// write to Writer instead.
func Start(out io.Writer, tl *timeline.Timeline, opt Options) *Progress {
	p := &Progress{out: out, tl: tl, every: opt.Every, stop: make(chan struct{}), stopped: make(chan struct{}),
		state: state{actions: map[string]time.Duration{}, last: map[timeline.ClientKind]timeline.Tally{}, rates: map[timeline.ClientKind]float64{}}}
	if p.every <= 0 {
		p.every = 15 * time.Second
	}
	if opt.Terminal != nil {
		p.tty = *opt.Terminal
		p.width = 120
	} else if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		p.width, _, _ = term.GetSize(int(f.Fd()))
	}
	if p.width <= 20 {
		p.width = 120
	}
	go p.run()
	return p
}

// Stop removes the live line (a plain line is not repeated) and ends.
func (p *Progress) Stop() {
	if p == nil {
		return
	}
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *Progress) run() {
	defer close(p.stopped)
	tick := 500 * time.Millisecond
	if !p.tty {
		tick = p.every
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			line := p.updateLocked()
			if p.tty {
				p.drawLocked(line)
			} else if line != "" {
				fmt.Fprintln(p.out, "  progress: "+line)
			}
			p.mu.Unlock()
		}
	}
}

// Writer is where status lines go while the progress is shown: each write
// clears the live line first and draws it again after.
func (p *Progress) Writer() io.Writer { return writer{p} }

type writer struct{ p *Progress }

func (w writer) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	n, err := p.out.Write(b)
	if p.tty && p.state.phase != "" {
		p.drawLocked(p.lineLocked())
	}
	return n, err
}

func (p *Progress) clearLocked() {
	if p.shown {
		fmt.Fprint(p.out, "\r\x1b[K")
		p.shown = false
	}
}

func (p *Progress) drawLocked(line string) {
	if line == "" {
		return
	}
	if r := []rune(line); len(r) > p.width-1 {
		line = string(r[:p.width-2]) + "…"
	}
	fmt.Fprint(p.out, "\r\x1b[K"+line)
	p.shown = true
}

// updateLocked reads the events since the last tick and the clients'
// tallies, and returns the line.
func (p *Progress) updateLocked() string {
	st := &p.state
	evs, n := p.tl.EventsSince(st.read)
	st.read = n
	for _, e := range evs {
		switch e.Kind {
		case timeline.EvPhaseStart:
			st.phase, st.phaseStart = e.Name, e.Offset
			clear(st.actions)
			st.order, st.doing = st.order[:0], ""
		case timeline.EvActionStart:
			if _, ok := st.actions[e.Name]; !ok {
				st.order = append(st.order, e.Name)
			}
			st.actions[e.Name] = e.Offset
		case timeline.EvDrainStarted:
			st.doing, st.doingSince = "draining "+e.Node, e.Offset
		case timeline.EvNodeRequested:
			st.doing, st.doingSince = "adding "+e.Node, e.Offset
		case timeline.EvNodeReady:
			if st.doing == "adding "+e.Node {
				st.doing = ""
			}
		case timeline.EvDrainFinished:
			if st.doing == "draining "+e.Node {
				st.doing = ""
			}
		case timeline.EvFaultReverted:
			st.doing, st.doingSince = "undone: "+e.Name, e.Offset
		case timeline.EvActionEnd:
			st.doing = ""
			delete(st.actions, e.Name)
			for i, a := range st.order {
				if a == e.Name {
					st.order = append(st.order[:i], st.order[i+1:]...)
					break
				}
			}
		}
	}
	now := p.tl.Now()
	if d := now - st.lastAt; d >= 400*time.Millisecond {
		for _, c := range timeline.ClientKinds() {
			t := p.tl.Tally(c)
			st.rates[c] = float64(t.Sent-st.last[c].Sent) / d.Seconds()
			st.last[c] = t
		}
		st.lastAt = now
	}
	return p.lineLocked()
}

// lineLocked is "fault 1m05s | gateway 200/s, 3 failed | service 199/s, 0
// failed | drain node w2 (12s)".
func (p *Progress) lineLocked() string {
	st := &p.state
	if st.phase == "" {
		return ""
	}
	now := p.tl.Now()
	parts := []string{fmt.Sprintf("%s %s", st.phase, short(now-st.phaseStart))}
	for _, c := range timeline.ClientKinds() {
		t := st.last[c]
		if t.Sent == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f/s, %d failed of %d", c, st.rates[c], t.Failed, t.Sent))
	}
	if n := len(st.order); n > 0 {
		a := st.order[n-1] // the innermost: the step's current action
		parts = append(parts, fmt.Sprintf("%s (%s)", a, short(now-st.actions[a])))
	}
	if st.doing != "" {
		parts = append(parts, fmt.Sprintf("%s (%s)", st.doing, short(now-st.doingSince)))
	}
	return strings.Join(parts, " | ")
}

func short(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
