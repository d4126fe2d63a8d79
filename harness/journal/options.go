package journal

import "time"

// Option adjusts Open, Leftovers and Restore. Each option says which of them
// it concerns; the others ignore it.
type Option func(*options)

type options struct {
	now       func() time.Time
	heartbeat time.Duration
	stale     time.Duration
	force     bool
	// owner replaces the calling process as the journal's owner (tests
	// only: it lets a test write a journal "from" a dead process).
	owner *Owner
}

const (
	// DefaultHeartbeat is how often an open journal's heartbeat is
	// refreshed.
	DefaultHeartbeat = 5 * time.Second
	// DefaultStaleAfter is how old a heartbeat may get before its owner is
	// taken for gone; six missed beats, so that a slow API server is not
	// mistaken for a dead harness.
	DefaultStaleAfter = 30 * time.Second
)

func resolve(opts []Option) options {
	o := options{now: time.Now, heartbeat: DefaultHeartbeat, stale: DefaultStaleAfter}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithClock sets the clock for entry times, heartbeats and staleness (all).
// The heartbeat's period is still measured in real time; only the times it
// writes and the ages Leftovers computes come from this clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithHeartbeat sets how often Open's journal refreshes its heartbeat
// (Open; default 5 s). Keep it well under the stale window of whoever may
// run Restore.
func WithHeartbeat(every time.Duration) Option {
	return func(o *options) {
		if every > 0 {
			o.heartbeat = every
		}
	}
}

// WithStaleAfter sets how old a heartbeat may be before its owner is taken
// for gone (Leftovers, Restore; default 30 s).
func WithStaleAfter(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.stale = d
		}
	}
}

// Force makes Leftovers and Restore take every journal, also those whose
// owner is alive: for a harness that hangs, or one whose owner cannot be
// judged. It can undo a change under a running rehearsal's feet.
func Force() Option {
	return func(o *options) { o.force = true }
}

// withOwner writes the journal as if owner had opened it (tests only).
func withOwner(owner Owner) Option {
	return func(o *options) { o.owner = &owner }
}
