// Package verdict judges a rehearsal: pure functions from a timeline and a
// set of thresholds to a Report, a list of checks that each passed or failed,
// with the figures measured and, for a failure, a diagnosis naming the
// failure class (the mission's catalogue numbers), the evidence and the fix.
//
// Nothing here talks to a cluster: verdicts work the same on a live
// timeline, on one loaded from a saved run, and on a synthetic one in a test.
package verdict

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Class is a failure class from the mission's catalogue ("What goes wrong
// during upgrades"), by its number.
type Class int

// The classes verdicts can diagnose. ClassNone is used when the rehearsal
// could not judge (no requests, no events) or no catalogue class explains
// what was seen.
const (
	ClassNone               Class = 0
	ClassPDBBlocksDrain     Class = 2
	ClassCgroup             Class = 5
	ClassDNS                Class = 6
	ClassNoGracefulShutdown Class = 7
	ClassEndpointLag        Class = 8
	ClassNotReadyTraffic    Class = 9
	ClassZeroReady          Class = 10
	ClassNoRetries          Class = 12
)

var classTitles = map[Class]string{
	ClassNone:               "not a catalogued failure",
	ClassPDBBlocksDrain:     "PodDisruptionBudget blocks the drain",
	ClassCgroup:             "the runtime does not see its container limits (cgroup version)",
	ClassDNS:                "name resolution broken",
	ClassNoGracefulShutdown: "no graceful shutdown",
	ClassEndpointLag:        "endpoint removal lags termination",
	ClassNotReadyTraffic:    "traffic to pods that are not ready / readiness lies",
	ClassZeroReady:          "zero ready endpoints: no PodDisruptionBudget, or replicas not spread over nodes",
	ClassNoRetries:          "clients without retries",
}

// String is "class 8: endpoint removal lags termination".
func (c Class) String() string {
	t, ok := classTitles[c]
	if !ok {
		t = "unknown"
	}
	if c == ClassNone {
		return t
	}
	return fmt.Sprintf("class %d: %s", int(c), t)
}

// Title is the class's name without its number.
func (c Class) Title() string { return classTitles[c] }

// Unit says how to read a Figure's value.
type Unit string

// Units of figures.
const (
	UnitCount   Unit = "count"
	UnitRatio   Unit = "ratio"   // a fraction: 0.001 is 0.1 %
	UnitSeconds Unit = "seconds" // durations and offsets
)

// Figure is one measured number.
type Figure struct {
	Name  string  `json:"name"` // snake_case, stable across runs so that nights can be compared
	Value float64 `json:"value"`
	Unit  Unit    `json:"unit"`
}

func (f Figure) String() string {
	switch f.Unit {
	case UnitRatio:
		return f.Name + "=" + pct(f.Value)
	case UnitSeconds:
		return f.Name + "=" + trimFloat(f.Value) + "s"
	default:
		return f.Name + "=" + trimFloat(f.Value)
	}
}

func count(name string, n int) Figure { return Figure{Name: name, Value: float64(n), Unit: UnitCount} }
func ratio(name string, r float64) Figure {
	return Figure{Name: name, Value: r, Unit: UnitRatio}
}
func seconds(name string, d time.Duration) Figure {
	return Figure{Name: name, Value: d.Seconds(), Unit: UnitSeconds}
}

// Evidence is one fact supporting a diagnosis: a sentence, and the subject,
// times and count it is about, for reports to place on the timeline.
type Evidence struct {
	Text       string        `json:"text"`
	Pod        string        `json:"pod,omitempty"`
	Node       string        `json:"node,omitempty"`
	At         time.Duration `json:"at_ns"`                // offset where it starts
	Until      time.Duration `json:"until_ns"`             // offset where it ends; equal to At for an instant
	Count      int           `json:"count,omitempty"`      // how many requests (or events) it covers
	Correlated bool          `json:"correlated,omitempty"` // requests attributed to the pod by timeline correlation, not by its response headers
}

// Diagnosis says why a check failed and what to do.
type Diagnosis struct {
	Class    Class      `json:"class"`
	Title    string     `json:"title"` // the class title, or what could not be judged
	Evidence []Evidence `json:"evidence,omitempty"`
	Fix      string     `json:"fix,omitempty"` // in words a person can act on
}

// Status is the outcome of a check, or of a whole rehearsal.
type Status string

// The statuses. A rehearsal that cannot be judged never passes: it says
// why, and CI treats it as not passed.
const (
	Pass        Status = "pass"
	Fail        Status = "fail"
	CannotJudge Status = "cannot judge"
)

// Check is one verdict.
type Check struct {
	// Name is the check's name, suffixed with the client kind for checks
	// judged per client ("error-rate/gateway") and prefixed with the
	// scenario when a plan has several ("drain/error-rate/gateway").
	Name      string     `json:"name"`
	Status    Status     `json:"status"`
	Summary   string     `json:"summary"` // one line: what was measured, against what limit
	Measured  []Figure   `json:"measured,omitempty"`
	Diagnosis *Diagnosis `json:"diagnosis,omitempty"` // why it failed or could not be judged; nil when passed
	// Details are lines a report prints under the check whatever its
	// status: per-node figures, the formula of an extrapolation.
	Details []string `json:"details,omitempty"`
}

// Passed reports whether the check passed.
func (c Check) Passed() bool { return c.Status == Pass }

// Figure returns the named figure.
func (c *Check) Figure(name string) (Figure, bool) {
	for _, f := range c.Measured {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

// String is one line: "FAIL graceful-shutdown: ... [class 8: ...]".
func (c Check) String() string {
	var b strings.Builder
	switch c.Status {
	case Pass:
		b.WriteString("PASS ")
	case Fail:
		b.WriteString("FAIL ")
	default:
		b.WriteString("CANNOT JUDGE ")
	}
	b.WriteString(c.Name)
	b.WriteString(": ")
	b.WriteString(c.Summary)
	if c.Diagnosis != nil && c.Status == Fail {
		b.WriteString(" [")
		if c.Diagnosis.Class != ClassNone {
			b.WriteString(c.Diagnosis.Class.String())
		} else {
			b.WriteString(c.Diagnosis.Title)
		}
		b.WriteString("]")
	}
	return b.String()
}

// Report is the verdict on one rehearsal.
type Report struct {
	// Outcome is Pass when every check passed; Fail when a check failed
	// and the rehearsal could be judged; CannotJudge when the rehearsal
	// measured too little to say (a dirty baseline, a starved load
	// generator, pods no client reached), with Reason saying why. A
	// failure's Reason is its first failed check (and how many others).
	Outcome Status  `json:"outcome"`
	Reason  string  `json:"reason,omitempty"`
	Checks  []Check `json:"checks"`
}

// Passed reports whether the rehearsal passed.
func (r Report) Passed() bool { return r.Outcome == Pass }

// Failed returns the checks that failed, in report order.
func (r Report) Failed() []Check { return r.withStatus(Fail) }

// Unjudged returns the checks that could not judge, in report order.
func (r Report) Unjudged() []Check { return r.withStatus(CannotJudge) }

func (r Report) withStatus(s Status) []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == s {
			out = append(out, c)
		}
	}
	return out
}

// Check returns the named check.
func (r Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Diagnoses returns the classes diagnosed by failed checks, in report order,
// without repeats.
func (r Report) Diagnoses() []Class {
	var out []Class
	seen := map[Class]bool{}
	for _, c := range r.Failed() {
		if c.Diagnosis != nil && !seen[c.Diagnosis.Class] {
			seen[c.Diagnosis.Class] = true
			out = append(out, c.Diagnosis.Class)
		}
	}
	return out
}

// String prints the outcome and one line per check, for test logs.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString("outcome: " + strings.ToUpper(string(r.Outcome)))
	if r.Reason != "" {
		b.WriteString(": " + r.Reason)
	}
	b.WriteByte('\n')
	for _, c := range r.Checks {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Explain prints the details of checks that have them (upgrade figures),
// and every failed or unjudged check with its evidence and fix: what a
// person reads to act.
func (r Report) Explain() string {
	var b strings.Builder
	for _, c := range r.Checks {
		if len(c.Details) > 0 {
			fmt.Fprintf(&b, "\n%s:\n", c.Name)
			for _, l := range c.Details {
				b.WriteString("  " + l + "\n")
			}
		}
		if c.Status == Pass || c.Diagnosis == nil {
			continue
		}
		d := c.Diagnosis
		fmt.Fprintf(&b, "\n%s %s: ", strings.ToUpper(string(c.Status)), c.Name)
		if d.Class != ClassNone {
			b.WriteString(d.Class.String())
		} else {
			b.WriteString(d.Title)
		}
		b.WriteByte('\n')
		for _, e := range d.Evidence {
			b.WriteString("  - " + e.Text + "\n")
		}
		if d.Fix != "" {
			b.WriteString("  fix: " + d.Fix + "\n")
		}
	}
	return b.String()
}

// fmtAt formats an offset for evidence: "12.345s".
func fmtAt(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}

// dur formats a duration for people: "1.2 s", "85 ms".
func dur(d time.Duration) string {
	if d < 0 {
		return "-" + dur(-d)
	}
	if d < time.Second {
		return trimFloat(float64(d.Microseconds())/1000) + " ms"
	}
	return trimFloat(d.Seconds()) + " s"
}

// trimFloat prints up to 3 decimals without trailing zeros.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// pct formats a ratio as a percentage: "0.12%".
func pct(r float64) string {
	p := r * 100
	switch {
	case p == 0:
		return "0%"
	case p < 0.01:
		return strconv.FormatFloat(p, 'g', 2, 64) + "%"
	case p >= 10:
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	case p >= 1:
		return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(p, 'f', 2, 64), "0"), ".") + "%"
	default:
		return trimFloat(p) + "%"
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
