package verdict

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// loadCheck asks whether the clients measured what they were meant to: each
// client kind achieved its rate in every judged phase, never paused longer
// than MaxSendGap, and did not fail by itself (out of file descriptors or
// ports). A load generator that was starved measured less than it claims,
// so the rehearsal cannot be judged; it never passes by default.
func (a *analysis) loadCheck() Check {
	if len(a.s.Requests) == 0 {
		return cannotJudge(CheckLoad, "no requests", noRequestsFix, count("requests", 0))
	}
	var spans []timeline.Span
	if a.hasBase {
		spans = append(spans, a.baseline)
	}
	for _, w := range a.windows {
		spans = append(spans, w.fault)
		if w.hasRecovery {
			spans = append(spans, w.recovery)
		}
	}
	from, to := spans[0].Start, spans[0].End
	for _, sp := range spans {
		from, to = min(from, sp.Start), max(to, sp.End)
	}

	var problems []string
	var figs []Figure
	d := &Diagnosis{Class: ClassNone, Title: "the load generator did not measure enough: cannot judge"}
	for _, c := range a.clients {
		idx := a.requestsOf(c, from, to)
		rate := a.rates[c]
		if rate == 0 {
			rate = estimateRate(a.s.Requests, idx)
		}
		name := c.String()
		figs = append(figs, count("target_rate_"+name, rate))
		clientErrs := 0
		for _, i := range idx {
			if a.s.Requests[i].Err == timeline.ErrClient {
				clientErrs++
			}
		}
		figs = append(figs, count("client_errors_"+name, clientErrs))
		if clientErrs > 0 {
			problems = append(problems, fmt.Sprintf("the %s client failed %s by itself", name, plural(clientErrs, "request", "requests")))
			d.Evidence = append(d.Evidence, Evidence{Count: clientErrs, Text: fmt.Sprintf(
				"%s of the %s client failed in the client itself (%s): nothing reached the app; "+
					"raise the open-files limit (ulimit -n) or lower the rate", plural(clientErrs, "request", "requests"),
				name, a.firstErrText(idx, timeline.ErrClient))})
		}
		for _, sp := range spans {
			dur := sp.Duration()
			if dur < time.Second || rate == 0 {
				continue // too short to measure a rate on
			}
			n := len(a.requestsOf(c, sp.Start, sp.End))
			expected := float64(rate) * dur.Seconds()
			achieved := float64(n) / dur.Seconds()
			figs = append(figs, Figure{Name: "achieved_rate_" + name + "_" + phaseFigure(sp.Name), Value: achieved, Unit: UnitCount})
			if float64(n) < a.th.MinAchievedRate*expected-2 {
				problems = append(problems, fmt.Sprintf("the %s client sent %.0f/s of %d/s in phase %s", name, achieved, rate, sp.Name))
				d.Evidence = append(d.Evidence, Evidence{At: sp.Start, Until: sp.End, Count: n, Text: fmt.Sprintf(
					"phase %s: the %s client sent %d requests in %s (%.1f/s), below %.0f%% of its %d/s: the machine "+
						"running the load was too busy", sp.Name, name, n, dur.Round(time.Millisecond), achieved,
					a.th.MinAchievedRate*100, rate)})
			}
		}
		gap, at := largestGap(a.s.Requests, idx)
		limit := a.th.MaxSendGap
		if rate > 0 {
			limit = max(limit, 20*time.Second/time.Duration(rate))
		}
		figs = append(figs, seconds("max_send_gap_"+name, gap))
		if gap > limit {
			problems = append(problems, fmt.Sprintf("the %s client paused %s", name, dur(gap)))
			d.Evidence = append(d.Evidence, Evidence{At: at, Until: at + gap, Text: fmt.Sprintf(
				"the %s client sent nothing from %s to %s (%s, limit %s): a blind spot, not a measurement",
				name, fmtAt(at), fmtAt(at+gap), dur(gap), dur(limit))})
		}
	}
	c := Check{Name: CheckLoad, Measured: figs}
	if len(problems) == 0 {
		c.Status = Pass
		var parts []string
		for _, cl := range a.clients {
			parts = append(parts, fmt.Sprintf("%s %d/s", cl, a.rates[cl]))
		}
		c.Summary = "every client kept its rate without pauses (" + strings.Join(parts, ", ") + ")"
		return c
	}
	c.Status = CannotJudge
	c.Summary = "load generator starved: " + strings.Join(problems, "; ")
	d.Fix = "run the rehearsal on a less loaded machine or at a lower rate (--rate); the figures of a " +
		"starved load generator understate what clients would see"
	c.Diagnosis = d
	return c
}

func phaseFigure(name string) string { return strings.ReplaceAll(name, ":", "_") }

// estimateRate guesses a client's target rate from the median interval
// between its sends (for timelines without rate metadata).
func estimateRate(rs []timeline.Request, idx []int) int {
	if len(idx) < 3 {
		return 0
	}
	gaps := make([]time.Duration, 0, len(idx)-1)
	for k := 1; k < len(idx); k++ {
		gaps = append(gaps, rs[idx[k]].Offset-rs[idx[k-1]].Offset)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	m := gaps[len(gaps)/2]
	if m <= 0 {
		return 0
	}
	return int(time.Second/m + 0) // rounding down is fine for a lower bound
}

func largestGap(rs []timeline.Request, idx []int) (gap, at time.Duration) {
	for k := 1; k < len(idx); k++ {
		if g := rs[idx[k]].Offset - rs[idx[k-1]].Offset; g > gap {
			gap, at = g, rs[idx[k-1]].Offset
		}
	}
	return gap, at
}

func (a *analysis) firstErrText(idx []int, kind timeline.ErrorKind) string {
	for _, i := range idx {
		if a.s.Requests[i].Err == kind {
			return a.s.Requests[i].ErrText
		}
	}
	return ""
}
