// Package timeline is the core data model of a rehearsal: one timeline per
// run, holding every request result the load generator saw and every event
// observed in the cluster or performed by the harness, all on one clock.
//
// Times are offsets (time.Duration) from the rehearsal start. The start is
// kept as a time.Time too: its wall-clock part is for reports, its monotonic
// part (when it came from time.Now) makes Since and Now immune to wall-clock
// steps. Record producers should turn their own time.Time stamps into offsets
// with Timeline.Since rather than by subtracting wall clocks.
//
// A Timeline accepts appends from many goroutines (the load generator streams
// requests while watches add events); readers take a Snapshot, whose records
// are sorted by offset whatever order they arrived in. Verdicts and reports
// are pure functions of a Snapshot, and a whole timeline can be saved and
// loaded as JSON Lines (Encode, Decode) to be judged and rendered again later.
package timeline

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Forever is the end offset of an interval that was still open when the
// timeline ended.
const Forever = time.Duration(math.MaxInt64)

// Phase names verdicts understand. A rehearsal warms up (load on, not
// judged: connections are being opened and every pod reached), measures a
// baseline (nothing done yet: it must be clean), then each scenario's fault
// phase (the scenario's steps) and recovery phase (load only). A plan with
// several scenarios names their phases "fault:<scenario>" and
// "recovery:<scenario>" (FaultPhase, RecoveryPhase).
const (
	PhaseWarmup   = "warmup"
	PhaseBaseline = "baseline"
	PhaseFault    = "fault"
	PhaseRecovery = "recovery"
)

// FaultPhase is the fault phase's name for a scenario ("" for the only one).
func FaultPhase(scenario string) string { return scenarioPhase(PhaseFault, scenario) }

// RecoveryPhase is the recovery phase's name for a scenario.
func RecoveryPhase(scenario string) string { return scenarioPhase(PhaseRecovery, scenario) }

func scenarioPhase(kind, scenario string) string {
	if scenario == "" {
		return kind
	}
	return kind + ":" + scenario
}

// SplitPhase reads a phase name: its kind (PhaseFault...) and scenario.
func SplitPhase(name string) (kind, scenario string) {
	kind, scenario, _ = strings.Cut(name, ":")
	return kind, scenario
}

// Request is the result of one request of the load.
type Request struct {
	Offset  time.Duration // when it was sent, from the rehearsal start
	Latency time.Duration // until the answer or the error
	Code    int           // HTTP status code; 0 when there was no response
	Err     ErrorKind     // ErrNone on success; see ClassifyError
	ErrText string        // the raw error text, empty on success

	Client ClientKind // which client sent it
	Reused bool       // sent on a pooled connection that had carried a request before

	// Attribution: the pod that answered (named by the response's headers)
	// or that the request was sent to (by a client that routes itself).
	// Via says which; empty when neither is known, as for a transport error
	// of a client that does not route itself.
	Pod         string
	Node        string
	PodIP       string
	Via         Via
	Terminating bool // the pod said it was shutting down

	// Downstream is what the app said failed behind it (its
	// X-Downstream-Error header: "dns", "connect"...), empty otherwise.
	Downstream string
}

// OK reports whether the request succeeded.
func (r *Request) OK() bool { return r.Err == ErrNone }

// Attributed reports whether the request is known to have reached (or been
// sent to) a pod.
func (r *Request) Attributed() bool { return r.Pod != "" || r.PodIP != "" }

// End is the offset at which the client had its answer or error.
func (r *Request) End() time.Duration { return r.Offset + r.Latency }

// InitialState begins the detail of an event that records the state an
// observer found when it started, rather than a change it saw.
const InitialState = "initial state; "

// Initial says whether the event records the state found at the start.
func (e *Event) Initial() bool { return strings.HasPrefix(e.Detail, InitialState) }

// Event is something that happened in the cluster (observed by a watch) or
// was done by the harness (phases, actions, faults). Which subject fields are
// set depends on Kind; see the EventKind constants.
type Event struct {
	Offset time.Duration
	Kind   EventKind
	Pod    string
	Node   string
	IP     string // the endpoint (pod) IP, for endpoint events
	UID    string // the pod's UID, for pod, endpoint, route and app-log events (pod names can repeat)
	Name   string // the phase, action or fault name
	Detail string // free text: a message, an error, the watch's reason
	Client ClientKind
	Value  time.Duration // a measured duration, for kinds that carry one (WatchLag; ContainerExited: how late it was seen)

	// For ContainerExited: the exit code (nil when unknown) and the reason
	// the kubelet gave ("Completed", "Error", "OOMKilled").
	ExitCode *int
	Reason   string
}

// Span is a named interval on the timeline: a phase or an action.
type Span struct {
	Name  string
	Start time.Duration
	End   time.Duration // the end offset; when Open, the end of the timeline
	Open  bool          // never ended: the run stopped (or was cut) inside it
}

// Contains reports whether the offset is in [Start, End).
func (s Span) Contains(at time.Duration) bool { return at >= s.Start && at < s.End }

// Duration is End - Start.
func (s Span) Duration() time.Duration { return s.End - s.Start }

// chunkSize is how many requests one storage chunk holds. Requests go into
// fixed-size chunks rather than one growing slice so that an append never
// copies the records already stored (no latency spike and no doubled memory
// at an hour of 1000 rps), and allocates once per chunk.
const chunkSize = 4096

// maxInternedText bounds the table of interned error texts: error texts often
// embed ephemeral ports, so beyond a few thousand distinct ones interning
// stops paying and texts are stored as they come.
const maxInternedText = 4096

// storedRequest is a Request as the timeline keeps it: strings are indexes
// into the timeline's string table, so the record holds no pointers. The
// garbage collector then never scans the (large) request chunks, and a
// record takes 40 bytes instead of 120.
type storedRequest struct {
	off, lat                  time.Duration
	code                      int32
	pod, node, ip, text, down uint32
	err                       ErrorKind
	client                    ClientKind
	via                       Via
	term, reused              bool
}

// Timeline is the record of one rehearsal. The zero value is not usable; use
// New. All methods are safe for concurrent use.
type Timeline struct {
	mu     sync.Mutex
	start  time.Time
	meta   map[string]string
	chunks [][]storedRequest
	nreq   int
	// forgotten counts the requests ForgetRequestsBefore dropped, so that
	// RequestsSince's counts stay the same.
	forgotten int
	events    []Event

	// Sortedness of what was appended so far, so that snapshots of the usual
	// in-order streams skip sorting.
	lastReq, lastEv     time.Duration
	reqSorted, evSorted bool

	strs  []string          // the string table; strs[0] is ""
	names map[string]uint32 // interned pod, node, IP strings (and event subjects)
	texts map[string]uint32 // interned error texts, bounded

	tally [numClientKinds]Tally // running counts per client, for live progress
}

// Tally is a running count of one client's requests.
type Tally struct {
	Sent, Failed int
}

// Tally returns the requests of one client kind added so far and how many
// failed: cheap (no snapshot), for a live progress line.
func (t *Timeline) Tally(c ClientKind) Tally {
	if c >= numClientKinds {
		return Tally{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tally[c]
}

// RequestsSince returns the requests added after the first n, in the
// order they were added, and the count to pass next time: how a program
// forwards a live timeline's results elsewhere as they come (the
// in-cluster load generator, to its log). Requests forgotten in between
// (ForgetRequestsBefore) are skipped.
func (t *Timeline) RequestsSince(n int) ([]Request, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	total := t.forgotten + t.nreq
	if n < t.forgotten {
		n = t.forgotten
	}
	if n > total {
		n = total
	}
	out := make([]Request, 0, total-n)
	for i := n - t.forgotten; i < t.nreq; i++ {
		out = append(out, t.request(&t.chunks[i/chunkSize][i%chunkSize]))
	}
	return out, total
}

// EventsSince returns the events appended after the first n, in the order
// they arrived, and the count to pass next time: a cheap way to follow a
// live timeline (no copy of what was read before).
func (t *Timeline) EventsSince(n int) ([]Event, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n < 0 || n > len(t.events) {
		n = len(t.events)
	}
	return slices.Clone(t.events[n:]), len(t.events)
}

// take moves the content of o, a timeline nobody else holds, into the
// empty t.
func (t *Timeline) take(o *Timeline) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start, t.meta, t.chunks, t.nreq, t.events = o.start, o.meta, o.chunks, o.nreq, o.events
	t.lastReq, t.lastEv, t.reqSorted, t.evSorted = o.lastReq, o.lastEv, o.reqSorted, o.evSorted
	t.strs, t.names, t.texts, t.tally = o.strs, o.names, o.texts, o.tally
}

// New starts a timeline at start, which should come from time.Now() so that
// it carries a monotonic reading.
func New(start time.Time) *Timeline {
	return &Timeline{
		start:     start,
		meta:      map[string]string{},
		reqSorted: true,
		evSorted:  true,
		strs:      []string{""},
		names:     map[string]uint32{},
		texts:     map[string]uint32{},
	}
}

// Start is the rehearsal start.
func (t *Timeline) Start() time.Time { return t.start }

// Since converts a clock reading into an offset on this timeline. Readings
// from time.Now() in this process are compared on the monotonic clock.
func (t *Timeline) Since(at time.Time) time.Duration { return at.Sub(t.start) }

// Now is the current offset.
func (t *Timeline) Now() time.Duration { return time.Since(t.start) }

// SetMeta records a piece of metadata (cluster name, Kubernetes version,
// scenario, app image...). It is saved in the header line.
func (t *Timeline) SetMeta(key, value string) {
	t.mu.Lock()
	t.meta[key] = value
	t.mu.Unlock()
}

// Meta returns a copy of the metadata.
func (t *Timeline) Meta() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.meta)
}

func (t *Timeline) intern(s string) uint32 {
	if s == "" {
		return 0
	}
	if v, ok := t.names[s]; ok {
		return v
	}
	i := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	t.names[s] = i
	return i
}

func (t *Timeline) internText(s string) uint32 {
	if s == "" {
		return 0
	}
	if v, ok := t.texts[s]; ok {
		return v
	}
	i := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	if len(t.texts) < maxInternedText {
		t.texts[s] = i
	}
	return i
}

func (t *Timeline) internString(s string) string { return t.strs[t.intern(s)] }

// AddRequest appends a request result. It is cheap enough to call for every
// result of a high-rate load: it takes a lock, interns the strings (pod
// names repeat, so the per-response copies can be collected) and copies the
// record into a chunk; it allocates only when a chunk fills (and when a
// string is new).
func (t *Timeline) AddRequest(r Request) {
	t.mu.Lock()
	sr := storedRequest{
		off: r.Offset, lat: r.Latency, code: int32(r.Code), err: r.Err, term: r.Terminating,
		client: r.Client, via: r.Via, reused: r.Reused,
		pod: t.intern(r.Pod), node: t.intern(r.Node), ip: t.intern(r.PodIP), text: t.internText(r.ErrText),
		down: t.intern(r.Downstream),
	}
	n := len(t.chunks)
	if n == 0 || len(t.chunks[n-1]) == chunkSize {
		t.chunks = append(t.chunks, make([]storedRequest, 0, chunkSize))
		n++
	}
	t.chunks[n-1] = append(t.chunks[n-1], sr)
	if t.nreq > 0 && r.Offset < t.lastReq {
		t.reqSorted = false
	}
	if r.Offset > t.lastReq || t.nreq == 0 {
		t.lastReq = r.Offset
	}
	t.nreq++
	if r.Client < numClientKinds {
		t.tally[r.Client].Sent++
		if r.Err != ErrNone {
			t.tally[r.Client].Failed++
		}
	}
	t.mu.Unlock()
}

func (t *Timeline) request(sr *storedRequest) Request {
	return Request{
		Offset: sr.off, Latency: sr.lat, Code: int(sr.code), Err: sr.err, Terminating: sr.term,
		Client: sr.client, Via: sr.via, Reused: sr.reused,
		Pod: t.strs[sr.pod], Node: t.strs[sr.node], PodIP: t.strs[sr.ip], ErrText: t.strs[sr.text],
		Downstream: t.strs[sr.down],
	}
}

// AddEvent appends an event.
func (t *Timeline) AddEvent(e Event) {
	t.mu.Lock()
	t.addEventLocked(e)
	t.mu.Unlock()
}

func (t *Timeline) addEventLocked(e Event) {
	e.Pod = t.internString(e.Pod)
	e.Node = t.internString(e.Node)
	e.IP = t.internString(e.IP)
	e.UID = t.internString(e.UID)
	if len(t.events) > 0 && e.Offset < t.lastEv {
		t.evSorted = false
	}
	if e.Offset > t.lastEv || len(t.events) == 0 {
		t.lastEv = e.Offset
	}
	t.events = append(t.events, e)
}

// Note appends a free-text note at the current offset.
func (t *Timeline) Note(detail string) {
	t.AddEvent(Event{Offset: t.Now(), Kind: EvNote, Detail: detail})
}

// BeginPhase marks the start of the named phase now and returns its offset.
func (t *Timeline) BeginPhase(name string) time.Duration {
	at := t.Now()
	t.BeginPhaseAt(name, at)
	return at
}

// EndPhase marks the end of the named phase now and returns its offset.
func (t *Timeline) EndPhase(name string) time.Duration {
	at := t.Now()
	t.EndPhaseAt(name, at)
	return at
}

// BeginPhaseAt marks the start of the named phase at an offset.
func (t *Timeline) BeginPhaseAt(name string, at time.Duration) {
	t.AddEvent(Event{Offset: at, Kind: EvPhaseStart, Name: name})
}

// EndPhaseAt marks the end of the named phase at an offset.
func (t *Timeline) EndPhaseAt(name string, at time.Duration) {
	t.AddEvent(Event{Offset: at, Kind: EvPhaseEnd, Name: name})
}

// BeginAction marks the start of a harness action now ("drain kind-worker2").
func (t *Timeline) BeginAction(name string) time.Duration {
	at := t.Now()
	t.AddEvent(Event{Offset: at, Kind: EvActionStart, Name: name})
	return at
}

// EndAction marks the end of a harness action now; a non-nil err is kept in
// the event's Detail.
func (t *Timeline) EndAction(name string, err error) time.Duration {
	at := t.Now()
	e := Event{Offset: at, Kind: EvActionEnd, Name: name}
	if err != nil {
		e.Detail = err.Error()
	}
	t.AddEvent(e)
	return at
}

// Len returns how many requests and events the timeline holds.
func (t *Timeline) Len() (requests, events int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nreq, len(t.events)
}

// Snapshot is an immutable, sorted copy of a timeline: what verdicts and
// reports work on. Build one with Timeline.Snapshot, or directly (tests, or a
// program holding records from elsewhere) with records sorted by Sort.
type Snapshot struct {
	Start    time.Time
	Meta     map[string]string
	Requests []Request // sorted by Offset; ties keep arrival order
	Events   []Event   // sorted by Offset; ties keep arrival order
}

// Snapshot copies the timeline's current content, sorted by offset.
func (t *Timeline) Snapshot() Snapshot {
	t.mu.Lock()
	s := Snapshot{
		Start:    t.start,
		Meta:     maps.Clone(t.meta),
		Requests: make([]Request, 0, t.nreq),
		Events:   slices.Clone(t.events),
	}
	for _, c := range t.chunks {
		for i := range c {
			s.Requests = append(s.Requests, t.request(&c[i]))
		}
	}
	reqSorted, evSorted := t.reqSorted, t.evSorted
	t.mu.Unlock()
	if !reqSorted {
		sortRequests(s.Requests)
	}
	if !evSorted {
		sortEvents(s.Events)
	}
	return s
}

// Requests returns the requests sorted by offset.
func (t *Timeline) Requests() []Request { return t.Snapshot().Requests }

// Events returns the events sorted by offset.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	ev := slices.Clone(t.events)
	sorted := t.evSorted
	t.mu.Unlock()
	if !sorted {
		sortEvents(ev)
	}
	return ev
}

func sortRequests(r []Request) {
	slices.SortStableFunc(r, func(a, b Request) int { return cmp.Compare(a.Offset, b.Offset) })
}

func sortEvents(e []Event) {
	slices.SortStableFunc(e, func(a, b Event) int { return cmp.Compare(a.Offset, b.Offset) })
}

// Sort sorts the snapshot's records by offset (stable), for snapshots built
// by hand.
func (s *Snapshot) Sort() {
	sortRequests(s.Requests)
	sortEvents(s.Events)
}

// End is the last offset the timeline knows of: the latest event, or the
// latest moment a request's answer arrived.
func (s *Snapshot) End() time.Duration {
	var end time.Duration
	for i := range s.Requests {
		end = max(end, s.Requests[i].End())
	}
	if n := len(s.Events); n > 0 {
		end = max(end, s.Events[n-1].Offset)
	}
	return end
}

// Phases returns the phases, in order of their start. A PhaseEnd closes the
// earliest open phase of the same name; a phase never ended is Open and ends
// at the end of the timeline; a PhaseEnd without a start is ignored.
func (s *Snapshot) Phases() []Span { return s.spans(EvPhaseStart, EvPhaseEnd) }

// Actions returns the harness actions as spans, like Phases.
func (s *Snapshot) Actions() []Span { return s.spans(EvActionStart, EvActionEnd) }

func (s *Snapshot) spans(startKind, endKind EventKind) []Span {
	var out []Span
	open := map[string][]int{}
	for i := range s.Events {
		e := &s.Events[i]
		switch e.Kind {
		case startKind:
			open[e.Name] = append(open[e.Name], len(out))
			out = append(out, Span{Name: e.Name, Start: e.Offset, Open: true})
		case endKind:
			if q := open[e.Name]; len(q) > 0 {
				out[q[0]].End, out[q[0]].Open = e.Offset, false
				open[e.Name] = q[1:]
			}
		}
	}
	end := s.End()
	for i := range out {
		if out[i].Open {
			out[i].End = max(end, out[i].Start)
		}
	}
	return out
}

// RequestsIn returns the sub-slice of the (sorted) requests sent in
// [from, to). It shares memory with the snapshot.
func (s *Snapshot) RequestsIn(from, to time.Duration) []Request {
	lo, _ := slices.BinarySearchFunc(s.Requests, from, func(r Request, t time.Duration) int { return cmp.Compare(r.Offset, t) })
	hi, _ := slices.BinarySearchFunc(s.Requests, to, func(r Request, t time.Duration) int { return cmp.Compare(r.Offset, t) })
	if hi < lo {
		hi = lo
	}
	return s.Requests[lo:hi]
}
