package load

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Summary is what one run did, from the client's side. The requests
// themselves are in the timeline.
type Summary struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Rate   int    `json:"rate"` // the target rate, requests per second

	Sent      int                        `json:"sent"` // requests recorded in the timeline
	Succeeded int                        `json:"succeeded"`
	Failed    int                        `json:"failed"`
	ByKind    map[timeline.ErrorKind]int `json:"failed_by_kind,omitempty"` // failures by kind; nil when none failed

	// Abandoned counts requests in flight when the context ended the run:
	// their outcome was cut short by the abort itself, so they are not
	// recorded. A lower bound: results arriving after a short grace are not
	// counted.
	Abandoned int `json:"abandoned,omitempty"`

	First       time.Duration `json:"first_ns"` // send offset of the first recorded request
	Last        time.Duration `json:"last_ns"`  // and of the last
	Achieved    float64       `json:"achieved"` // requests per second between First and Last
	MeanLatency time.Duration `json:"mean_latency_ns"`
	MaxLatency  time.Duration `json:"max_latency_ns"`
	Stopped     string        `json:"stopped"` // why the run ended: StoppedDuration, StoppedByStop or StoppedContext
}

// Duration is the span of the sends, Last - First.
func (s Summary) Duration() time.Duration { return s.Last - s.First }

// ErrorRate is Failed / Sent (0 when nothing was sent).
func (s Summary) ErrorRate() float64 {
	if s.Sent == 0 {
		return 0
	}
	return float64(s.Failed) / float64(s.Sent)
}

// String is a one-line account: "sent 3000 in 2.998s (1000.3/s of 1000/s),
// ok 2990, failed 10 (http5xx=10), latency mean 1.2ms max 9ms".
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d in %v (%.1f/s of %d/s), ok %d, failed %d", s.Sent,
		s.Duration().Round(time.Millisecond), s.Achieved, s.Rate, s.Succeeded, s.Failed)
	if len(s.ByKind) > 0 {
		var kinds []string
		for _, k := range timeline.ErrorKinds() {
			if n := s.ByKind[k]; n > 0 {
				kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
			}
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(kinds, " "))
	}
	if s.Abandoned > 0 {
		fmt.Fprintf(&b, ", abandoned %d in flight at the abort", s.Abandoned)
	}
	fmt.Fprintf(&b, ", latency mean %v max %v", s.MeanLatency.Round(time.Microsecond), s.MaxLatency.Round(time.Microsecond))
	return b.String()
}

// Summarize is the summary of one client's requests among reqs (sorted by
// offset), as its generator would have reported them: for a part of a
// timeline (an upgrade `rehearse watch` found in hours of load). Name,
// Target and Stopped are left for the caller.
func Summarize(reqs []timeline.Request, c timeline.ClientKind, rate int) Summary {
	a := Accumulator{Rate: rate}
	for i := range reqs {
		if reqs[i].Client == c {
			a.Add(&reqs[i])
		}
	}
	return a.Summary()
}

// Accumulator sums up requests as they come, in offset order, for a
// client whose results arrive from elsewhere (the in-cluster client's,
// through its pods' logs).
type Accumulator struct {
	Rate  int
	sum   Summary
	total time.Duration
}

// Add counts one request.
func (a *Accumulator) Add(q *timeline.Request) {
	s := &a.sum
	if s.Sent == 0 || q.Offset < s.First {
		s.First = q.Offset
	}
	s.Last = max(s.Last, q.Offset)
	s.Sent++
	a.total += q.Latency
	s.MaxLatency = max(s.MaxLatency, q.Latency)
	if q.OK() {
		s.Succeeded++
		return
	}
	s.Failed++
	if s.ByKind == nil {
		s.ByKind = map[timeline.ErrorKind]int{}
	}
	s.ByKind[q.Err]++
}

// Summary is what was added so far. Name, Target and Stopped are left for
// the caller.
func (a *Accumulator) Summary() Summary {
	s := a.sum
	s.Rate = a.Rate
	if s.ByKind != nil {
		s.ByKind = maps.Clone(s.ByKind)
	}
	if s.Sent > 0 {
		s.MeanLatency = a.total / time.Duration(s.Sent)
	}
	if d := s.Last - s.First; d > 0 {
		s.Achieved = float64(s.Sent-1) / d.Seconds()
	}
	return s
}
