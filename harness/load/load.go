package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Why a run ended (Summary.Stopped).
const (
	StoppedDuration = "duration elapsed"
	StoppedByStop   = "stopped"
	StoppedContext  = "context ended" // an abort: in-flight requests were cut and abandoned
)

// abortGrace is how long an aborted run waits for its last results.
const abortGrace = 100 * time.Millisecond

// Generator is one load run: a constant rate against one target, for a
// bounded duration. It runs once; build another for another run. Its methods
// are safe for concurrent use.
type Generator struct {
	cfg config

	mu      sync.Mutex
	started bool
	done    chan struct{} // closed when the run ended and sum/err are set
	sum     Summary
	err     error

	stopOnce sync.Once
	stopc    chan struct{}
}

// New checks the settings and returns a Generator for target, an http:// or
// https:// URL. Every invalid setting is reported at once, each with the
// option that fixes it.
func New(target string, opts ...Option) (*Generator, error) {
	cfg := defaultConfig(target)
	for _, o := range opts {
		o(&cfg)
	}
	cfg.settle()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, stopc: make(chan struct{})}, nil
}

// String describes the load: "load: service client, GET http://x/ at 500
// rps for 1m0s (timeout 2s, new connection per request, max 1000 in
// flight)".
func (g *Generator) String() string {
	conn := "new connection per request"
	if g.cfg.keepAlive {
		conn = "pooled keep-alive connections"
	}
	target := g.cfg.target
	if g.cfg.router != nil {
		target = "each ready pod (routed by the client) at path " + pathOf(g.cfg.target)
	}
	retry := ""
	if g.cfg.transparentRetry {
		retry = ", net/http's transparent retry on"
	}
	return fmt.Sprintf("%s: %s client, %s %s at %d rps for %v (timeout %v, %s%s, max %d in flight)",
		g.cfg.name, g.cfg.kind, g.cfg.method, target, g.cfg.rate, g.cfg.duration, g.cfg.timeout, conn, retry, g.cfg.maxWorkers())
}

// Kind is the client kind of this load.
func (g *Generator) Kind() timeline.ClientKind { return g.cfg.kind }

// Run sends the load, recording every result in tl, until the duration
// elapsed, Stop was called or ctx ended, and returns the summary. When ctx
// ended it returns the summary of what was recorded and ctx's error.
func (g *Generator) Run(ctx context.Context, tl *timeline.Timeline) (Summary, error) {
	if err := g.Start(ctx, tl); err != nil {
		return Summary{}, err
	}
	return g.Wait()
}

// Start begins the load in the background; Wait collects its summary. It
// fails if the Generator already ran or tl is nil.
func (g *Generator) Start(ctx context.Context, tl *timeline.Timeline) error {
	if tl == nil {
		return errors.New("load: Start needs a timeline: pass timeline.New(time.Now())")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("load: this Generator already ran: build a new one with load.New for another run")
	}
	g.started = true
	g.done = make(chan struct{})
	go func() {
		sum, err := g.run(ctx, tl)
		g.mu.Lock()
		g.sum, g.err = sum, err
		g.mu.Unlock()
		close(g.done)
	}()
	return nil
}

// Wait blocks until the run ends and returns its summary (and the context's
// error if the context ended it).
func (g *Generator) Wait() (Summary, error) {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	if done == nil {
		return Summary{}, errors.New("load: Wait before Start: call Start (or Run) first")
	}
	<-done
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sum, g.err
}

// Stop ends the load early: no new requests are sent, the ones in flight
// finish (within the timeout) and are recorded. It may be called any number
// of times, before, during or after the run; a Generator stopped before it
// started sends nothing.
func (g *Generator) Stop() { g.stopOnce.Do(func() { close(g.stopc) }) }

// Done is closed when the run has ended (nil before Start).
func (g *Generator) Done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

func (g *Generator) run(ctx context.Context, tl *timeline.Timeline) (Summary, error) {
	c := &g.cfg
	sum := Summary{Name: c.name, Target: c.target, Rate: c.rate}
	if err := ctx.Err(); err != nil {
		sum.Stopped = StoppedContext
		return sum, err
	}
	select {
	case <-g.stopc:
		sum.Stopped = StoppedByStop
		return sum, nil
	default:
	}

	d := newDialer(c.timeout)
	side := newSideTable()
	client := newClient(c, d, side)
	defer client.CloseIdleConnections()
	workers := c.maxWorkers()
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(min(workers, max(10, c.rate/50)))),
		vegeta.MaxWorkers(uint64(workers)),
		vegeta.MaxBody(0), // the body is drained, never kept: only status and headers matter
	)
	target := vegeta.Target{Method: c.method, URL: c.target, Body: c.body, Header: c.header}
	targeter := vegeta.NewStaticTargeter(target)
	if c.router != nil {
		targeter = routedTargeter(target, c.router)
	}
	pacer := vegeta.ConstantPacer{Freq: c.rate, Per: time.Second}

	begin := time.Now()
	tl.AddEvent(timeline.Event{Offset: tl.Since(begin), Kind: timeline.EvNote,
		Detail: "load started: " + g.String()})
	results := atk.Attack(targeter, pacer, c.duration, c.name)

	var (
		rec      recorder
		ctxDone  = ctx.Done()
		stopc    = g.stopc
		abortAt  time.Time
		stopped  = StoppedDuration
		abandons int
		grace    <-chan time.Time
	)
	rec.tl, rec.kind, rec.side, rec.router = tl, c.kind, side, c.router
loop:
	for {
		select {
		case <-grace:
			// vegeta's pacer may sleep up to one interval before it sees the
			// stop: leave the last results, all abandoned, to a drainer.
			go func() {
				for range results {
				}
			}()
			break loop
		case res, ok := <-results:
			if !ok {
				break loop
			}
			if !abortAt.IsZero() && !res.End().Before(abortAt) {
				abandons++ // cut short by the abort, or sent after it
				continue
			}
			rec.record(res)
		case <-stopc:
			stopc = nil
			if abortAt.IsZero() {
				stopped = StoppedByStop
			}
			atk.Stop()
		case <-ctxDone:
			ctxDone = nil
			abortAt = time.Now()
			stopped = StoppedContext
			atk.Stop()
			d.abort()
			grace = time.After(abortGrace)
		}
	}

	sum = rec.summary(sum)
	sum.Stopped = stopped
	sum.Abandoned = abandons
	tl.Note("load ended (" + stopped + "): " + sum.String())
	if !abortAt.IsZero() {
		return sum, ctx.Err()
	}
	return sum, nil
}

// Canonical forms of the attribution headers, computed once: looking up a
// non-canonical name (contract.HeaderPodIP is "X-Pod-IP") canonicalises it on
// every call, an allocation per request.
var (
	keyPod         = http.CanonicalHeaderKey(contract.HeaderPodName)
	keyNode        = http.CanonicalHeaderKey(contract.HeaderNodeName)
	keyPodIP       = http.CanonicalHeaderKey(contract.HeaderPodIP)
	keyTerminating = http.CanonicalHeaderKey(contract.HeaderTerminating)
	keyDownstream  = http.CanonicalHeaderKey(contract.HeaderDownstreamError)
)

func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// attribute fills the request's attribution from the response headers
// without an allocation per call.
func attribute(r *timeline.Request, h http.Header) {
	if h == nil {
		return
	}
	r.Pod = first(h, keyPod)
	r.Node = first(h, keyNode)
	r.PodIP = first(h, keyPodIP)
	if r.Pod != "" || r.PodIP != "" {
		r.Via = timeline.ViaHeaders
	}
	r.Downstream = first(h, keyDownstream)
	t := first(h, keyTerminating)
	r.Terminating = strings.EqualFold(t, "true") || t == "1" || strings.EqualFold(t, "yes")
}

// routedTargeter sends each request to the pod the router picks, keeping
// the target's method, path, headers and body.
func routedTargeter(base vegeta.Target, r Router) vegeta.Targeter {
	path := pathOf(base.URL)
	none := "http://" + noEndpointHost + path
	return func(t *vegeta.Target) error {
		*t = base
		ep, ok := r.Pick()
		if !ok {
			t.URL = none
			return nil
		}
		t.URL = "http://" + ep.Addr + path
		return nil
	}
}

// pathOf is the path and query of an http URL ("/" when it has none).
func pathOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		return u[i:]
	}
	return "/"
}

// recorder turns vegeta results into timeline requests and keeps the counts.
// It belongs to the one goroutine reading the results.
type recorder struct {
	tl          *timeline.Timeline
	kind        timeline.ClientKind
	side        *sideTable
	router      Router
	sent, ok    int
	byKind      [256]int // indexed by timeline.ErrorKind
	first, last time.Duration
	maxLatency  time.Duration
	sumLatency  time.Duration
}

func (r *recorder) record(res *vegeta.Result) {
	req := timeline.Request{
		Offset:  r.tl.Since(res.Timestamp),
		Latency: res.Latency,
		Code:    int(res.Code),
		ErrText: res.Error,
		Client:  r.kind,
	}
	req.Err = timeline.ClassifyError(req.Code, req.ErrText)
	attribute(&req, res.Headers)
	var info reqInfo
	known := false
	if r.side != nil {
		info, known = r.side.take(res.Seq)
	}
	if known {
		req.Reused = info.reused
		if info.routed {
			// The client chose the pod: that is who the request went to,
			// whatever the answer (or its absence) says.
			req.Pod, req.PodIP, req.Node, req.Via = info.ep.Pod, info.ep.IP(), info.ep.Node, timeline.ViaRoute
		}
		switch {
		case req.Err.IsConnection() && info.reused && !info.wrote && req.Err != timeline.ErrTimeout:
			// A pooled connection the server had closed before the request
			// was written on it: nothing reached the app.
			req.Err = timeline.ErrClosedIdle
		case req.Err == timeline.ErrTimeout && !info.reused && !info.wrote:
			// The connection was never made (a pod whose address no longer
			// answers): no connection could be made, not a request lost.
			req.Err = timeline.ErrRefused
		}
	} else if r.router != nil && req.Err != timeline.ErrNone && res.URL != "" {
		if ep, ok := r.router.Lookup(hostOf(res.URL)); ok {
			req.Pod, req.PodIP, req.Node, req.Via = ep.Pod, ep.IP(), ep.Node, timeline.ViaRoute
		}
	}
	r.tl.AddRequest(req)

	if r.sent == 0 || req.Offset < r.first {
		r.first = req.Offset
	}
	if r.sent == 0 || req.Offset > r.last {
		r.last = req.Offset
	}
	r.sent++
	if req.Err == timeline.ErrNone {
		r.ok++
	}
	r.byKind[req.Err]++
	r.maxLatency = max(r.maxLatency, req.Latency)
	r.sumLatency += req.Latency
}

func (r *recorder) summary(s Summary) Summary {
	s.Sent, s.Succeeded, s.Failed = r.sent, r.ok, r.sent-r.ok
	s.First, s.Last = r.first, r.last
	if r.sent > 1 && r.last > r.first {
		s.Achieved = float64(r.sent-1) / (r.last - r.first).Seconds()
	}
	if r.sent > 0 {
		s.MeanLatency = r.sumLatency / time.Duration(r.sent)
	}
	s.MaxLatency = r.maxLatency
	for k, n := range r.byKind {
		if n > 0 && timeline.ErrorKind(k) != timeline.ErrNone {
			if s.ByKind == nil {
				s.ByKind = map[timeline.ErrorKind]int{}
			}
			s.ByKind[timeline.ErrorKind(k)] = n
		}
	}
	return s
}
