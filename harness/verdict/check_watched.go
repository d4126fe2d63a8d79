package verdict

import (
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// The notes `rehearse watch` writes on the timeline of an upgrade it found
// (package upgrades): what the upgrade was (Detail), that watching ended
// before it did, the nodes it left cordoned or NotReady, and that its
// baseline was not seen (watching began during it, or just before).
const (
	NoteNoBaseline        = "no-baseline"
	NoteWatchedUpgrade    = "watched-upgrade"
	NoteUpgradeUnfinished = "upgrade-unfinished"
	NoteUpgradeLeftNodes  = "upgrade-left-nodes"
)

// watchedUpgradeCheck judges the upgrade itself, as far as its nodes show:
// the checks of what clients saw judge the rest.
func (a *analysis) watchedUpgradeCheck(w *window) Check {
	notes := map[string]*timeline.Event{}
	for i := range a.s.Events {
		if e := &a.s.Events[i]; e.Kind == timeline.EvNote {
			notes[e.Name] = e
		}
	}
	seen := notes[NoteWatchedUpgrade]
	if seen == nil {
		return cannotJudge(CheckWatchedUpgrade, "no watched upgrade on this timeline",
			"this check judges the upgrades `rehearse watch` finds; a rehearsal that performs its own upgrade has the upgrade check")
	}
	c := Check{Status: Pass, Summary: seen.Detail, Measured: []Figure{seconds("upgrade_duration_seconds", w.fault.Duration())}}
	if u := notes[NoteUpgradeUnfinished]; u != nil {
		c.Status, c.Summary = CannotJudge, "the upgrade had not finished when watching ended: "+u.Detail
		c.Diagnosis = &Diagnosis{Title: "upgrade not seen to its end: cannot judge",
			Fix: "watch for longer (rehearse watch --for) so that the pool's upgrade and the recovery after it are seen"}
		return c
	}
	if l := notes[NoteUpgradeLeftNodes]; l != nil {
		c.Status, c.Summary = Fail, "the upgrade left nodes cordoned or NotReady: "+l.Detail
		c.Diagnosis = &Diagnosis{Title: "the upgrade did not finish cleanly",
			Evidence: []Evidence{{At: l.Offset, Until: l.Offset, Count: 1, Text: l.Detail}},
			Fix: "a node AKS could not drain in time stays cordoned (undrainableNodeBehavior Cordon) or is made schedulable again " +
				"with the upgrade failed: look for a PodDisruptionBudget that allows no disruption and pods whose " +
				"terminationGracePeriodSeconds outlast the drain timeout (`rehearse preflight` finds both), fix them, and upgrade again"}
	}
	return c
}
