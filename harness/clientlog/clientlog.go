// Package clientlog keeps client-go's own log lines (klog: "Failed to
// watch ...", "Waited for 1.2s due to client-side throttling ...") out of
// the rehearsal's output while a rehearsal runs, and keeps them for its
// results instead.
//
// During a control-plane upgrade the API server goes away and comes back
// with its authorizer still warming up: client-go's watches then log
// errors every second. Those are facts the observer already records on the
// timeline (watch gaps); printed on stderr they bury the rehearsal's own
// progress lines.
//
// klog is process-wide, so captures nest: the first Start routes klog here,
// every capture running sees every line, the last Stop restores what klog
// did before.
package clientlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/klog/v2"
)

// Limit is the most a capture keeps; later lines are counted, not kept.
const Limit = 1 << 20

var (
	mu       sync.Mutex
	active   = map[*Capture]struct{}{}
	restorer klog.State
)

// Capture holds the lines logged while it ran.
type Capture struct {
	buf     bytes.Buffer
	dropped int
	stopped bool
}

// Start routes klog's output to a new capture until its Stop.
func Start() *Capture {
	mu.Lock()
	defer mu.Unlock()
	c := &Capture{}
	if len(active) == 0 {
		restorer = klog.CaptureState()
		// Info: what klog prints at its default verbosity (0). Code that
		// logs through klog's contextual logger (client-go's reflectors)
		// asks the handler itself whether V(n) lines are wanted.
		klog.SetSlogLogger(slog.New(slog.NewTextHandler(fanOut{}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	}
	active[c] = struct{}{}
	return c
}

// Stop ends the capture and returns what it kept; the lines beyond Limit
// are counted in a last line. A second Stop returns the same.
func (c *Capture) Stop() []byte {
	mu.Lock()
	defer mu.Unlock()
	if !c.stopped {
		c.stopped = true
		delete(active, c)
		if len(active) == 0 {
			restorer.Restore()
		}
		if c.dropped > 0 {
			fmt.Fprintf(&c.buf, "... %d more lines not kept (limit %d bytes)\n", c.dropped, Limit)
		}
	}
	return c.buf.Bytes()
}

// fanOut writes each line to every running capture.
type fanOut struct{}

func (fanOut) Write(p []byte) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for c := range active {
		if c.buf.Len()+len(p) > Limit {
			c.dropped++
			continue
		}
		c.buf.Write(p)
	}
	return len(p), nil
}
