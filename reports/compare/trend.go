package compare

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// Point is one run's value of a figure.
type Point struct {
	Run     string
	At      time.Time
	Value   float64
	Outcome verdict.Status // the run's
}

// Series is one figure of one rehearsal across runs, oldest first.
type Series struct {
	Name   string // the rehearsal (record.Name)
	Check  string
	Figure string
	Unit   verdict.Unit
	Judged bool // a rule applies to the figure
	Points []Point
}

// Trend collects every figure of every record into series, one per
// rehearsal, check and figure, each in the order the runs started.
func Trend(recs []*record.Record) []Series {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b *record.Record) int { return a.Started.Compare(b.Started) })
	type key struct{ name, check, figure string }
	index := map[key]int{}
	var out []Series
	for _, r := range sorted {
		for _, c := range r.Verdict.Checks {
			for _, f := range c.Measured {
				k := key{r.Name, c.Name, f.Name}
				i, ok := index[k]
				if !ok {
					_, judged := Rules(DefaultRules).Find(f.Name)
					i = len(out)
					index[k] = i
					out = append(out, Series{Name: r.Name, Check: c.Name, Figure: f.Name, Unit: f.Unit, Judged: judged})
				}
				out[i].Points = append(out[i].Points, Point{Run: r.Run, At: r.Started, Value: f.Value, Outcome: r.Verdict.Outcome})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Series) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Check, b.Check), cmp.Compare(a.Figure, b.Figure))
	})
	return out
}

// HistoryOptions set how a run is judged against its history.
type HistoryOptions struct {
	Last       int     // how many earlier runs count (default 20)
	Percentile float64 // a figure worse than this percentile of them is flagged (default 95)
	MinRuns    int     // fewer earlier runs than this: cannot judge (default 5)
	Rules      Rules   // the noise allowances (default DefaultRules)
}

func (o *HistoryOptions) defaults() {
	if o.Last <= 0 {
		o.Last = 20
	}
	if o.Percentile <= 0 || o.Percentile > 100 {
		o.Percentile = 95
	}
	if o.MinRuns <= 0 {
		o.MinRuns = 5
	}
	if o.Rules == nil {
		o.Rules = DefaultRules
	}
}

// Flag is a figure (or check) of a run worse than its history.
type Flag struct {
	Check, Figure string
	Unit          verdict.Unit
	Value         float64
	Limit         float64 // the history's percentile
	Why           string
}

// History is the verdict on a run against earlier runs of the same
// rehearsal.
type History struct {
	Run, Name  string
	Runs       int // earlier runs judged against
	Percentile float64
	// CannotJudge says why the history was too short to judge ("" when it
	// was judged).
	CannotJudge string
	Flags       []Flag
}

// Regressed reports whether the run was flagged.
func (h History) Regressed() bool { return len(h.Flags) > 0 }

// JudgeHistory judges cur against the records of the same rehearsal (same
// Name) that started before it: a judged figure worse than the chosen
// percentile of the last runs (beyond its rule's allowance) is flagged, as
// is a check failing now that passed in every one of them, as OpenShift's
// disruption tests judge a run against the history of its job.
func JudgeHistory(history []*record.Record, cur *record.Record, opt HistoryOptions) History {
	opt.defaults()
	h := History{Run: cur.Run, Name: cur.Name, Percentile: opt.Percentile}
	var earlier []*record.Record
	for _, r := range history {
		if r.Name == cur.Name && r.Run != cur.Run && r.Started.Before(cur.Started) {
			earlier = append(earlier, r)
		}
	}
	slices.SortStableFunc(earlier, func(a, b *record.Record) int { return a.Started.Compare(b.Started) })
	if len(earlier) > opt.Last {
		earlier = earlier[len(earlier)-opt.Last:]
	}
	h.Runs = len(earlier)
	if len(earlier) < opt.MinRuns {
		h.CannotJudge = fmt.Sprintf("%d earlier %s of %q, at least %d needed", len(earlier), plural(len(earlier), "run", "runs"), cur.Name, opt.MinRuns)
		return h
	}
	for _, c := range cur.Verdict.Checks {
		passedAlways, seen := true, 0
		for _, r := range earlier {
			for _, p := range r.Verdict.Checks {
				if p.Name == c.Name {
					seen++
					passedAlways = passedAlways && p.Status == verdict.Pass
				}
			}
		}
		if c.Status != verdict.Pass && seen == len(earlier) && passedAlways {
			h.Flags = append(h.Flags, Flag{Check: c.Name, Why: fmt.Sprintf("%s now, passed in each of the last %d runs", c.Status, seen)})
		}
		for _, f := range c.Measured {
			rule, ok := opt.Rules.Find(f.Name)
			if !ok {
				continue
			}
			var vals []float64
			for _, r := range earlier {
				if ch, ok := r.Verdict.Check(c.Name); ok {
					if v, ok := ch.Figure(f.Name); ok {
						vals = append(vals, v.Value)
					}
				}
			}
			if len(vals) < opt.MinRuns {
				continue
			}
			limit := Percentile(vals, opt.Percentile)
			if worse, why := rule.Worse(limit, f.Value); worse {
				h.Flags = append(h.Flags, Flag{Check: c.Name, Figure: f.Name, Unit: f.Unit, Value: f.Value, Limit: limit,
					Why: fmt.Sprintf("%s over the %s percentile of %d runs (%s): %s", format(f.Value, f.Unit), trim(opt.Percentile)+"th",
						len(vals), format(limit, f.Unit), why)})
			}
		}
	}
	return h
}

// String prints the verdict on the run.
func (h History) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) against its history: ", h.Run, h.Name)
	switch {
	case h.CannotJudge != "":
		b.WriteString("CANNOT JUDGE: " + h.CannotJudge + "\n")
	case len(h.Flags) == 0:
		fmt.Fprintf(&b, "nothing worse than the %sth percentile of the last %d runs\n", trim(h.Percentile), h.Runs)
	default:
		fmt.Fprintf(&b, "REGRESSED (%d)\n", len(h.Flags))
		for _, f := range h.Flags {
			if f.Figure == "" {
				fmt.Fprintf(&b, "! %s: %s\n", f.Check, f.Why)
			} else {
				fmt.Fprintf(&b, "! %s %s: %s\n", f.Check, f.Figure, f.Why)
			}
		}
	}
	return b.String()
}

// Percentile of the values (0 to 100), by linear interpolation between
// the closest ranks.
func Percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 1 {
		return s[0]
	}
	pos := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
