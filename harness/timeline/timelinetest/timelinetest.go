// Package timelinetest builds synthetic timelines for tests of verdicts and
// reports: pods that start and stop, phases, and a simulated load that a
// Service routes round-robin to the endpoints that are ready at each instant,
// answered by a behaviour the test chooses (a well-behaved app, one that
// exits on SIGTERM, one whose readiness lies...).
//
// World goes further: a deterministic simulation of the app's pods, the
// kubelet, the EndpointSlice controller, kube-proxy, the gateway and the
// load's clients, whose timelines carry the subtle effects of the real world
// (propagation delays, pooled connections, in-flight losses, net/http's
// silent retries) for tests of verdicts on the hard cases.
package timelinetest

import (
	"fmt"
	"sort"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Start is the wall-clock start of every built timeline, fixed so that tests
// are reproducible.
var Start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// S converts seconds to a duration: S(1.5) is 1.5 s. Synthetic timelines
// read better in seconds.
func S(sec float64) time.Duration { return time.Duration(sec * float64(time.Second)) }

// RefusedText is the error text of a request that found nothing listening.
const RefusedText = "Get \"http://web.default.svc/\": dial tcp 10.96.0.10:80: connect: connection refused"

// ResetText is the error text of a request whose connection was reset.
const ResetText = "Get \"http://web.default.svc/\": read tcp 10.244.0.1:41234->10.96.0.10:80: read: connection reset by peer"

// Builder accumulates a timeline. Methods return the builder for chaining.
type Builder struct {
	TL      *timeline.Timeline
	Latency time.Duration // latency of simulated requests; 2 ms by default
	rr      int
}

// New starts an empty timeline at Start.
func New() *Builder {
	return &Builder{TL: timeline.New(Start), Latency: 2 * time.Millisecond}
}

// Snapshot is the sorted view of what was built.
func (b *Builder) Snapshot() timeline.Snapshot { return b.TL.Snapshot() }

// Event appends an event.
func (b *Builder) Event(e timeline.Event) *Builder {
	b.TL.AddEvent(e)
	return b
}

// Request appends a request as given.
func (b *Builder) Request(r timeline.Request) *Builder {
	b.TL.AddRequest(r)
	return b
}

// Phase marks a phase from..to.
func (b *Builder) Phase(name string, from, to time.Duration) *Builder {
	b.TL.BeginPhaseAt(name, from)
	b.TL.EndPhaseAt(name, to)
	return b
}

// PodStart records a pod scheduled on node at scheduled, Ready (and its
// endpoint ready) at ready. A negative ready means it never became ready.
func (b *Builder) PodStart(pod, node, ip string, scheduled, ready time.Duration) *Builder {
	b.TL.AddEvent(timeline.Event{Offset: scheduled, Kind: timeline.EvPodScheduled, Pod: pod, Node: node})
	b.TL.AddEvent(timeline.Event{Offset: scheduled, Kind: timeline.EvEndpointNotReady, Pod: pod, Node: node, IP: ip})
	if ready >= 0 {
		b.TL.AddEvent(timeline.Event{Offset: ready, Kind: timeline.EvPodReady, Pod: pod, Node: node, IP: ip})
		b.TL.AddEvent(timeline.Event{Offset: ready, Kind: timeline.EvEndpointReady, Pod: pod, Node: node, IP: ip})
	}
	return b
}

// PodStop records the deletion of a pod at deleted, its endpoint turning not
// ready (terminating) at endpointGone, its container exiting at exited (exit
// code 0 unless code says otherwise) and its endpoint being removed once both
// happened.
func (b *Builder) PodStop(pod, ip string, deleted, endpointGone, exited time.Duration, code ...int) *Builder {
	c := 0
	if len(code) > 0 {
		c = code[0]
	}
	reason := "Completed"
	if c != 0 {
		reason = "Error"
	}
	b.TL.AddEvent(timeline.Event{Offset: deleted, Kind: timeline.EvPodDeletionRequested, Pod: pod})
	b.TL.AddEvent(timeline.Event{Offset: endpointGone, Kind: timeline.EvEndpointNotReady, Pod: pod, IP: ip})
	b.TL.AddEvent(timeline.Event{Offset: exited, Kind: timeline.EvPodNotReady, Pod: pod})
	b.TL.AddEvent(timeline.Event{Offset: exited, Kind: timeline.EvContainerExited, Pod: pod, ExitCode: &c, Reason: reason})
	b.TL.AddEvent(timeline.Event{Offset: max(endpointGone, exited), Kind: timeline.EvEndpointRemoved, Pod: pod, IP: ip})
	return b
}

// OK appends a successful request answered by pod (unattributed if pod is "").
func (b *Builder) OK(at time.Duration, pod string) *Builder {
	b.TL.AddRequest(timeline.Request{Offset: at, Latency: b.Latency, Code: 200, Pod: pod})
	return b
}

// Fail appends a failed request: an HTTP status answered by pod, or, when
// code is 0, a transport error with errText (unattributed, as such errors are).
func (b *Builder) Fail(at time.Duration, code int, errText, pod string) *Builder {
	r := timeline.Request{Offset: at, Latency: b.Latency, Code: code, ErrText: errText}
	if code != 0 {
		r.Pod = pod
		if errText == "" {
			r.ErrText = fmt.Sprintf("%d", code)
		}
	}
	r.Err = timeline.ClassifyError(code, r.ErrText)
	b.TL.AddRequest(r)
	return b
}

// Behaviour is how a simulated app answers a request routed to pod p at an
// offset: an HTTP status (then the answer is attributed to the pod), or 0 and
// a transport error text.
type Behaviour func(at time.Duration, p *timeline.PodLifecycle) (code int, errText string)

// Alive answers 200 while the process runs (until its container exited) and
// refuses connections after: an app with no preStop wait, whose Service may
// still route to it after it exited.
func Alive(at time.Duration, p *timeline.PodLifecycle) (int, string) {
	if p.Exited.Known && at >= p.Exited.At {
		return 0, RefusedText
	}
	return 200, ""
}

// Load simulates requests sent every interval in [from, to). Each goes, as a
// Service would send it, round-robin to one of the endpoints ready at that
// instant according to the events built so far (so add the pod events
// first); with no ready endpoint it is refused. The behaviour answers it.
func (b *Builder) Load(from, to, every time.Duration, behave Behaviour) *Builder {
	events := b.TL.Events()
	lcs := timeline.PodLifecycles(events)
	for at := from; at < to; at += every {
		var ready []*timeline.PodLifecycle
		for i := range lcs {
			if lcs[i].EndpointReadyAt(at) {
				ready = append(ready, &lcs[i])
			}
		}
		sort.Slice(ready, func(i, j int) bool { return ready[i].Pod < ready[j].Pod })
		if len(ready) == 0 {
			b.Fail(at, 0, RefusedText, "")
			continue
		}
		p := ready[b.rr%len(ready)]
		b.rr++
		code, text := behave(at, p)
		r := timeline.Request{Offset: at, Latency: b.Latency, Code: code, ErrText: text}
		if code != 0 {
			r.Pod, r.Node, r.PodIP = p.Pod, p.Node, p.IP
			r.Terminating = p.DeletionRequested.Known && at >= p.DeletionRequested.At
			if code >= 400 && text == "" {
				r.ErrText = fmt.Sprintf("%d", code)
			}
		}
		r.Err = timeline.ClassifyError(code, r.ErrText)
		b.TL.AddRequest(r)
	}
	return b
}
