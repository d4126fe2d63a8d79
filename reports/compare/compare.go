// Package compare sets run records side by side: a nightly run against the
// last good one (Compare), and a run against the history of the same
// rehearsal (Judge, over Trend). A regression is a check that passed and
// no longer does, or a figure that got worse by more than its rule allows.
//
// Figures are matched by check and figure name (verdict figure names are
// stable across runs for exactly this). Only figures with a rule are
// judged: the rule says which way is worse and by how much a change is
// noise; the others (the load generator's own figures, echoed limits,
// request counts that follow the rate) are shown, never flagged.
package compare

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// Rule says when a figure got worse: higher is worse, by more than Abs
// (in the figure's unit) and more than Rel times the baseline value.
type Rule struct {
	Figure string  // a figure name; a trailing * matches a prefix
	Abs    float64 // allowed increase, in the figure's unit
	Rel    float64 // allowed increase relative to the baseline (0.25: 25 %)
}

// DefaultRules are what a platform team calls a regression. The
// allowances keep the noise of a small CI machine out: a rehearsal's
// timings vary by some hundreds of milliseconds from run to run, an
// upgrade's minutes by tens of seconds; counts of things that must not
// happen at all (SIGKILLs, refused evictions, failed steps) allow none.
var DefaultRules = []Rule{
	{Figure: "error_rate*", Abs: 0.0005, Rel: 0.5}, // 0.05 percentage points
	{Figure: "longest_outage", Abs: 0.2, Rel: 0.5},
	{Figure: "outages", Abs: 0},
	{Figure: "time_zero_ready", Abs: 0.2, Rel: 0.5},
	{Figure: "time_below_required", Abs: 0.2, Rel: 0.5},
	{Figure: "longest_gap", Abs: 0.2, Rel: 0.5},
	{Figure: "gaps", Abs: 0},
	{Figure: "max_ready_to_first_success", Abs: 1, Rel: 0.5},
	{Figure: "median_ready_to_first_success", Abs: 1, Rel: 0.5},
	{Figure: "max_deletion_to_exit", Abs: 2, Rel: 0.5},
	{Figure: "max_routing_lag", Abs: 0.5, Rel: 0.5},
	{Figure: "pods_sigkilled", Abs: 0},
	{Figure: "pods_unreached", Abs: 0},
	{Figure: "evictions_refused_by_budget", Abs: 0},
	{Figure: "drains_failed", Abs: 0},
	{Figure: "steps_failed", Abs: 0},
	{Figure: "longest_drain", Abs: 10, Rel: 0.25},
	{Figure: "longest_node_join", Abs: 10, Rel: 0.25},
	{Figure: "batch_mean", Abs: 10, Rel: 0.25},
	{Figure: "longest_batch", Abs: 10, Rel: 0.25},
	{Figure: "upgrade_total", Abs: 15, Rel: 0.25},
	{Figure: "api_unavailable_longest", Abs: 2, Rel: 0.5},
}

// Rules are the rules in use; Find picks the one for a figure.
type Rules []Rule

// Find returns the rule of a figure: an exact name first, else the longest
// matching prefix.
func (rs Rules) Find(figure string) (Rule, bool) {
	best, bestLen := Rule{}, -1
	for _, r := range rs {
		if r.Figure == figure {
			return r, true
		}
		if p, ok := strings.CutSuffix(r.Figure, "*"); ok && strings.HasPrefix(figure, p) && len(p) > bestLen {
			best, bestLen = r, len(p)
		}
	}
	return best, bestLen >= 0
}

// Set reads a tolerance from the command line: FIGURE=ABS (in the
// figure's unit: 0.001, 2s) or FIGURE=REL% (of the baseline). It replaces
// that part of the figure's rule, or adds a rule.
func (rs *Rules) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	if !ok || name == "" || v == "" {
		return fmt.Errorf("tolerance %q: write FIGURE=VALUE (e.g. error_rate=0.001, upgrade_total=30s or longest_drain=50%%)", s)
	}
	r, i := Rule{Figure: name}, -1
	for j := range *rs {
		if (*rs)[j].Figure == name {
			r, i = (*rs)[j], j
		}
	}
	switch {
	case strings.HasSuffix(v, "%"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || f < 0 {
			return fmt.Errorf("tolerance %s: %q is not a percentage", name, v)
		}
		r.Rel = f / 100
	case strings.ContainsAny(v, "hms"):
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("tolerance %s: %q is not a duration (e.g. 500ms, 30s)", name, v)
		}
		r.Abs = d.Seconds()
	default:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("tolerance %s: %q is not a number of 0 or more", name, v)
		}
		r.Abs = f
	}
	if i >= 0 {
		(*rs)[i] = r
	} else {
		*rs = append(*rs, r)
	}
	return nil
}

// Worse reports whether current is worse than base beyond the rule's
// allowance, and says by how much.
func (r Rule) Worse(base, current float64) (bool, string) {
	allowed := math.Max(r.Abs, r.Rel*math.Abs(base))
	if current-base > allowed+1e-12 {
		return true, fmt.Sprintf("up %s, more than the %s allowed", trim(current-base), trim(allowed))
	}
	return false, ""
}

// Delta is one figure in both runs.
type Delta struct {
	Scenario string // "" for checks judged once per rehearsal
	Check    string
	Figure   string
	Unit     verdict.Unit
	Base     float64
	Current  float64
	InBase   bool
	InCur    bool
	Judged   bool // a rule applies
	Worse    bool // a regression
	Why      string
}

// StatusChange is a check whose status changed.
type StatusChange struct {
	Check         string
	Base, Current verdict.Status
	Worse         bool // passed before and no longer does
}

// Result is a comparison.
type Result struct {
	BaseRun, CurrentRun   string
	BaseName, CurrentName string
	BaseOutcome           verdict.Status
	CurrentOutcome        verdict.Status
	Statuses              []StatusChange
	Deltas                []Delta
}

// Regressions lists what got worse, one line each.
func (r Result) Regressions() []string {
	var out []string
	for _, s := range r.Statuses {
		if s.Worse {
			out = append(out, fmt.Sprintf("%s: %s before, %s now", s.Check, s.Base, s.Current))
		}
	}
	for _, d := range r.Deltas {
		if d.Worse {
			out = append(out, fmt.Sprintf("%s %s: %s -> %s (%s)", d.Check, d.Figure, format(d.Base, d.Unit), format(d.Current, d.Unit), d.Why))
		}
	}
	return out
}

// Regressed reports whether anything got worse.
func (r Result) Regressed() bool { return len(r.Regressions()) > 0 }

// Compare compares current with base under the rules.
func Compare(base, current *record.Record, rules Rules) Result {
	res := Result{BaseRun: base.Run, CurrentRun: current.Run, BaseName: base.Name, CurrentName: current.Name,
		BaseOutcome: base.Verdict.Outcome, CurrentOutcome: current.Verdict.Outcome}
	baseChecks := map[string]verdict.Check{}
	for _, c := range base.Verdict.Checks {
		baseChecks[c.Name] = c
	}
	seen := map[string]bool{}
	for _, c := range current.Verdict.Checks {
		seen[c.Name] = true
		b, ok := baseChecks[c.Name]
		if ok && b.Status != c.Status {
			res.Statuses = append(res.Statuses, StatusChange{Check: c.Name, Base: b.Status, Current: c.Status,
				Worse: b.Status == verdict.Pass})
		}
		res.Deltas = append(res.Deltas, deltas(current, c.Name, b.Measured, c.Measured, ok, rules)...)
	}
	for _, c := range base.Verdict.Checks {
		if !seen[c.Name] {
			res.Deltas = append(res.Deltas, deltas(base, c.Name, c.Measured, nil, true, rules)...)
		}
	}
	return res
}

func deltas(r *record.Record, check string, base, cur []verdict.Figure, inBase bool, rules Rules) []Delta {
	sc := scenarioOf(r, check)
	byName := map[string]verdict.Figure{}
	for _, f := range base {
		byName[f.Name] = f
	}
	var out []Delta
	done := map[string]bool{}
	for _, f := range cur {
		d := Delta{Scenario: sc, Check: check, Figure: f.Name, Unit: f.Unit, Current: f.Value, InCur: true}
		if b, ok := byName[f.Name]; ok && inBase {
			d.Base, d.InBase = b.Value, true
		}
		if rule, ok := rules.Find(f.Name); ok {
			d.Judged = true
			if d.InBase {
				d.Worse, d.Why = rule.Worse(d.Base, d.Current)
			}
		}
		done[f.Name] = true
		out = append(out, d)
	}
	for _, f := range base {
		if !done[f.Name] {
			out = append(out, Delta{Scenario: sc, Check: check, Figure: f.Name, Unit: f.Unit, Base: f.Value, InBase: true})
		}
	}
	return out
}

// scenarioOf is the scenario a check belongs to: its prefix when the run
// had several, "" for checks judged once, else the run's one scenario.
func scenarioOf(r *record.Record, check string) string {
	if len(r.Scenarios) > 1 {
		if sc, _, ok := strings.Cut(check, "/"); ok {
			return sc
		}
	}
	if verdict.JudgedOnce(check) {
		return ""
	}
	if len(r.Scenarios) == 1 {
		return r.Scenarios[0].ID()
	}
	return ""
}

// String prints the comparison: status changes, then per scenario the
// judged figures that changed (and every regression), then the verdict.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "baseline %s (%s): %s\ncurrent  %s (%s): %s\n", r.BaseRun, r.BaseName, r.BaseOutcome, r.CurrentRun, r.CurrentName, r.CurrentOutcome)
	if r.BaseName != r.CurrentName {
		fmt.Fprintf(&b, "note: the runs rehearsed different things (%q, %q): compare like with like\n", r.BaseName, r.CurrentName)
	}
	for _, s := range r.Statuses {
		mark := " "
		if s.Worse {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s %s: %s -> %s\n", mark, s.Check, s.Base, s.Current)
	}
	groups := map[string][]Delta{}
	var order []string
	for _, d := range r.Deltas {
		if !d.Judged || (d.InBase && d.InCur && d.Base == d.Current && !d.Worse) {
			continue
		}
		if _, ok := groups[d.Scenario]; !ok {
			order = append(order, d.Scenario)
		}
		groups[d.Scenario] = append(groups[d.Scenario], d)
	}
	sort.Strings(order)
	for _, sc := range order {
		name := sc
		if name == "" {
			name = "rehearsal"
		}
		fmt.Fprintf(&b, "%s:\n", name)
		for _, d := range groups[sc] {
			mark := " "
			if d.Worse {
				mark = "!"
			}
			switch {
			case !d.InBase:
				fmt.Fprintf(&b, "%s   %s %s: %s (new)\n", mark, d.Check, d.Figure, format(d.Current, d.Unit))
			case !d.InCur:
				fmt.Fprintf(&b, "%s   %s %s: %s (no longer measured)\n", mark, d.Check, d.Figure, format(d.Base, d.Unit))
			default:
				fmt.Fprintf(&b, "%s   %s %s: %s -> %s (%s)\n", mark, d.Check, d.Figure, format(d.Base, d.Unit), format(d.Current, d.Unit), signed(d.Current-d.Base, d.Unit))
			}
		}
	}
	if regs := r.Regressions(); len(regs) > 0 {
		fmt.Fprintf(&b, "REGRESSED: %d %s\n", len(regs), plural(len(regs), "regression", "regressions"))
	} else {
		b.WriteString("no regression\n")
	}
	return b.String()
}

func format(v float64, u verdict.Unit) string {
	switch u {
	case verdict.UnitRatio:
		return trim(v*100) + "%"
	case verdict.UnitSeconds:
		return trim(v) + "s"
	}
	return trim(v)
}

// signed is a difference: of ratios in percentage points ("+0.16 pp", a
// "%" would read as relative to the base), of other figures in their unit.
func signed(v float64, u verdict.Unit) string {
	s := format(v, u)
	if u == verdict.UnitRatio {
		s = trim(v*100) + " pp"
	}
	if v >= 0 {
		return "+" + s
	}
	return s
}

func trim(v float64) string {
	s := strconv.FormatFloat(v, 'f', 4, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
