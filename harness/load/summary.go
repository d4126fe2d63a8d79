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
	Name   string
	Target string
	Rate   int // the target rate, requests per second

	Sent      int // requests recorded in the timeline
	Succeeded int
	Failed    int
	ByKind    map[timeline.ErrorKind]int // failures by kind; nil when none failed

	// Abandoned counts requests in flight when the context ended the run:
	// their outcome was cut short by the abort itself, so they are not
	// recorded. A lower bound: results arriving after a short grace are not
	// counted.
	Abandoned int

	First, Last time.Duration // send offsets of the first and last recorded request
	Achieved    float64       // requests per second between First and Last
	MeanLatency time.Duration
	MaxLatency  time.Duration
	Stopped     string // why the run ended: StoppedDuration, StoppedByStop or StoppedContext
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
