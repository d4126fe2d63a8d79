// Package scenario is the engine of what rehearsals do to a cluster. A
// scenario is data: a kind, its settings, and an ordered list of named
// steps (as kind creates a cluster with an ordered list of actions), so a
// report can print it and a config file can set it.
//
// Each step gets a Context: the Kubernetes client, the target's node
// operations, the timeline, the run's journal and a status writer. A step
// that changes the cluster does it through Context.Change, which writes the
// change and how to undo it into the in-cluster journal first, then applies
// it and records FaultInjected on the timeline. Revert reads the journal,
// not process memory: what a killed process left behind is undone by the
// next run or by `rehearse restore` the same way.
package scenario

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Step is one named unit of a scenario.
type Step interface {
	// Name says what the step does, for status lines, the timeline and
	// reports ("cordon node rehearse-worker2").
	Name() string
	Execute(ctx context.Context, sc *Context) error
}

type stepFunc struct {
	name string
	fn   func(context.Context, *Context) error
}

func (s stepFunc) Name() string                                   { return s.name }
func (s stepFunc) Execute(ctx context.Context, sc *Context) error { return s.fn(ctx, sc) }

// Do makes a step of a function.
func Do(name string, fn func(ctx context.Context, sc *Context) error) Step {
	return stepFunc{name: name, fn: fn}
}

// Setting is one configurable value of a scenario, as a config file or a
// flag sets it and a report prints it.
type Setting struct {
	Name  string
	Value string
}

// Scenario is what a rehearsal does to a cluster.
type Scenario struct {
	// Kind names what the scenario is ("rolling-restart", "node-cordon").
	Kind string
	// Name names this instance in phases and check names when a plan has
	// several; Kind when empty.
	Name     string
	Settings []Setting
	Steps    []Step
	// Checks are the verdict checks that judge this scenario
	// (verdict.DefaultChecks when empty).
	Checks []string
}

// ID is the scenario's name, or its kind.
func (s Scenario) ID() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Kind
}

// String prints the scenario, its settings and its steps.
func (s Scenario) String() string {
	var b strings.Builder
	b.WriteString(s.ID())
	if len(s.Settings) > 0 {
		var kv []string
		for _, st := range s.Settings {
			kv = append(kv, st.Name+"="+st.Value)
		}
		b.WriteString(" (" + strings.Join(kv, ", ") + ")")
	}
	b.WriteString(":")
	for i, st := range s.Steps {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, st.Name())
	}
	return b.String()
}

// Context is what a step works with.
type Context struct {
	Client   kubernetes.Interface
	REST     *rest.Config
	Target   target.Target
	Timeline *timeline.Timeline
	Journal  *journal.Journal
	// Out receives status lines (io.Discard when nil).
	Out io.Writer
	// Namespace is the application's namespace; Scenario the running
	// scenario's ID; Step the running step's name (set by Run).
	Namespace string
	Scenario  string
	Step      string
}

// Statusf prints a status line.
func (c *Context) Statusf(format string, a ...any) {
	if c.Out == nil {
		return
	}
	fmt.Fprintf(c.Out, "    "+format+"\n", a...)
}

// Change makes one change to the cluster, journaled: the change (what, in
// words, exactly) and its undo are written to the journal before apply
// runs; FaultInjected is recorded after it succeeded. If apply fails, the
// entry stays: the change may have been half made, and undos are
// idempotent.
func (c *Context) Change(ctx context.Context, what string, undo journal.Undo, apply func(context.Context) error) error {
	if c.Journal == nil {
		return fmt.Errorf("%s: no journal: changes are only made once they are journaled", what)
	}
	if _, err := c.Journal.Record(ctx, c.Step, what, undo); err != nil {
		return fmt.Errorf("journaling %q before making it: %w", what, err)
	}
	if err := apply(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if c.Timeline != nil {
		c.Timeline.AddEvent(timeline.Event{Offset: c.Timeline.Now(), Kind: timeline.EvFaultInjected, Name: c.Scenario,
			Detail: what, Node: undo.Params["node"]})
	}
	c.Statusf("%s", what)
	return nil
}

// StepResult is how one step went.
type StepResult struct {
	Name string
	Took time.Duration
	Err  error
}

// Outcome is how a scenario's steps went.
type Outcome struct {
	Scenario string
	Steps    []StepResult
	// FailedStep names the step that failed ("" when all ran); Err is its
	// error. Later steps did not run.
	FailedStep string
	Err        error
}

// Run executes the steps in order, each between an ActionStart and an
// ActionEnd event (the end carries the error), stopping at the first
// failure or when ctx ends.
func Run(ctx context.Context, sc *Context, s Scenario) Outcome {
	out := Outcome{Scenario: s.ID()}
	sc.Scenario = s.ID()
	for i, st := range s.Steps {
		if err := ctx.Err(); err != nil {
			out.FailedStep, out.Err = st.Name(), fmt.Errorf("interrupted before it started: %w", err)
			break
		}
		sc.Step = st.Name()
		if sc.Out != nil {
			fmt.Fprintf(sc.Out, "  step %d/%d: %s\n", i+1, len(s.Steps), st.Name())
		}
		began := time.Now()
		if sc.Timeline != nil {
			sc.Timeline.BeginAction(st.Name())
		}
		err := st.Execute(ctx, sc)
		if sc.Timeline != nil {
			sc.Timeline.EndAction(st.Name(), err)
		}
		out.Steps = append(out.Steps, StepResult{Name: st.Name(), Took: time.Since(began), Err: err})
		if err != nil {
			out.FailedStep, out.Err = st.Name(), err
			sc.Statusf("failed: %v", err)
			break
		}
	}
	sc.Step = ""
	return out
}

// Revert undoes every change journaled by this run, newest first, reading
// the journal, and records FaultReverted for each (with the error when an
// undo failed; the entry then stays for `rehearse restore`).
func Revert(ctx context.Context, sc *Context, reg *journal.Registry) error {
	if sc.Journal == nil {
		return nil
	}
	return sc.Journal.Revert(ctx, reg, func(e journal.Entry, err error) {
		if sc.Timeline != nil {
			ev := timeline.Event{Offset: sc.Timeline.Now(), Kind: timeline.EvFaultReverted, Name: sc.Scenario,
				Detail: "undo: " + e.Change, Node: e.Undo.Params["node"]}
			if err != nil {
				ev.Detail += ": FAILED: " + err.Error()
			}
			sc.Timeline.AddEvent(ev)
		}
		if err != nil {
			sc.Statusf("undo %q failed: %v (kept in the journal: run `rehearse restore`)", e.Change, err)
		} else {
			sc.Statusf("undone: %s", e.Change)
		}
	})
}
