package verdict

import (
	"fmt"
	"strings"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// stepsCheck judges whether the scenario itself ran to the end: a step that
// failed (a drain blocked by a PodDisruptionBudget, a node that did not
// join) fails the rehearsal with the step and its error, while every other
// check still judges what was observed until then.
func (a *analysis) stepsCheck(w *window) Check {
	var done, failed int
	var first *timeline.Event
	for i := range a.s.Events {
		e := &a.s.Events[i]
		if e.Kind != timeline.EvActionEnd || e.Offset < w.fault.Start || e.Offset > w.fault.End+a.tol {
			continue
		}
		done++
		if e.Detail != "" {
			failed++
			if first == nil {
				first = e
			}
		}
	}
	c := Check{Measured: []Figure{count("steps_run", done), count("steps_failed", failed)}}
	if first == nil {
		c.Status = Pass
		c.Summary = fmt.Sprintf("%s ran to the end", plural(done, "step", "steps"))
		if w.fault.Open {
			c.Status = CannotJudge
			c.Summary = "the scenario was interrupted before its steps finished"
			c.Diagnosis = &Diagnosis{Title: "scenario interrupted: cannot judge", Fix: "run the rehearsal to the end; " +
				"`rehearse restore` undoes whatever an interrupted run left"}
		}
		return c
	}
	if strings.Contains(first.Detail, "context canceled") || strings.Contains(first.Detail, "interrupted") {
		c.Status = CannotJudge
		c.Summary = fmt.Sprintf("the scenario was interrupted during step %q", first.Name)
		c.Diagnosis = &Diagnosis{Title: "scenario interrupted: cannot judge", Fix: "run the rehearsal to the end; " +
			"`rehearse restore` undoes whatever an interrupted run left"}
		return c
	}
	c.Status = Fail
	c.Summary = fmt.Sprintf("step %q failed: %s", first.Name, first.Detail)
	d := &Diagnosis{Title: "the scenario could not be carried out", Fix: stepFix(first.Detail),
		Evidence: []Evidence{{At: first.Offset, Until: first.Offset, Count: 1,
			Text: fmt.Sprintf("step %q failed at %s: %s", first.Name, fmtAt(first.Offset), first.Detail)}}}
	c.Diagnosis = d
	return c
}

func stepFix(detail string) string {
	if strings.Contains(detail, "disruption budget") || strings.Contains(detail, "PodDisruptionBudget") {
		return "a PodDisruptionBudget refused the evictions: the drain check says why (a budget that allows no " +
			"disruption, or replacements that never became Ready, which the budget was right to wait for)"
	}
	return "see the step's error; the checks below judge what clients saw until it failed"
}
