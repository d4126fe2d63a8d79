package load

import (
	"fmt"
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
	sum := Summary{Rate: rate}
	var total time.Duration
	first := true
	for i := range reqs {
		q := &reqs[i]
		if q.Client != c {
			continue
		}
		if first {
			sum.First, first = q.Offset, false
		}
		sum.Last = q.Offset
		sum.Sent++
		total += q.Latency
		sum.MaxLatency = max(sum.MaxLatency, q.Latency)
		if q.OK() {
			sum.Succeeded++
			continue
		}
		sum.Failed++
		if sum.ByKind == nil {
			sum.ByKind = map[timeline.ErrorKind]int{}
		}
		sum.ByKind[q.Err]++
	}
	if sum.Sent > 0 {
		sum.MeanLatency = total / time.Duration(sum.Sent)
	}
	if d := sum.Last - sum.First; d > 0 {
		sum.Achieved = float64(sum.Sent-1) / d.Seconds()
	}
	return sum
}
