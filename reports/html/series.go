package html

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// maxBuckets bounds the number of time slices a chart has: enough to see a
// one-second outage in a ten-minute run, few enough that the file stays
// small whatever the run's length and rate (requests are aggregated, never
// embedded one by one).
const maxBuckets = 1200

// minPerBucket is how many requests of one client a slice should hold: a
// slice of 10 requests at a steady rate shows a count that jitters by 10 %
// from slice to slice, noise that looks like failures; 50 keep it at 2 %.
const minPerBucket = 50

// bucketSizes are the slice lengths a window may use: the shortest that
// holds minPerBucket requests of a client at the planned rate and gives at
// most maxBuckets slices.
var bucketSizes = []time.Duration{
	100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
}

func bucketFor(span time.Duration, rate int) time.Duration {
	for _, b := range bucketSizes {
		if span/b <= maxBuckets && (rate <= 0 || float64(rate)*b.Seconds() >= minPerBucket) {
			return b
		}
	}
	return max(span/maxBuckets, bucketSizes[len(bucketSizes)-1])
}

// window is the part of the timeline one scenario's charts show: its
// baseline (for the first) or its fault phase, up to the end of its
// recovery.
type window struct {
	Scenario   string // the scenario's ID ("" when the plan had one)
	From, To   time.Duration
	Bucket     time.Duration
	Phases     []timeline.Span // the phases that overlap the window
	Clients    []clientSeries
	Ready      []int // ready endpoints at the middle of each bucket
	MinReady   int   // the threshold
	NodeGroups []nodeGroup
	Pods       []podLane
	Unassigned []bucketCount // failures attributed to no pod, per bucket
	Marks      []mark
}

func (w *window) buckets() int { return int((w.To - w.From + w.Bucket - 1) / w.Bucket) }

func (w *window) bucketOf(at time.Duration) int {
	if at < w.From || at >= w.To {
		return -1
	}
	return int((at - w.From) / w.Bucket)
}

// clientSeries is one client kind's requests per bucket.
type clientSeries struct {
	Client timeline.ClientKind
	OK     []int
	Failed map[timeline.ErrorKind][]int // only kinds that occurred
	P50    []time.Duration              // latency of successful requests; -1 when none
	P99    []time.Duration
}

// nodeGroup is the Ready nodes of one Kubernetes version and node image
// per bucket.
type nodeGroup struct {
	Label string
	Count []int
}

// podLane is one pod's life in the window.
type podLane struct {
	Pod, Node string
	Spans     []podSpan
	Failed    []bucketCount // failures attributed to the pod
	Evidence  []verdict.Evidence
}

type podSpan struct {
	From, To time.Duration
	State    string // "starting", "ready", "terminating"
}

type bucketCount struct {
	Bucket int
	N      int
	Kinds  string // "reset 3, refused 1"
}

// mark is one event on the events lane.
type mark struct {
	At    time.Duration
	Until time.Duration // > At for a span (a drain, the API server away)
	Lane  string
	Text  string
}

// The lanes of the events chart, top to bottom.
var markLanes = []string{"harness", "nodes", "drains", "evictions", "pods", "endpoints", "api server"}

// windows cuts the record into one window per scenario.
func windows(r *record.Record, s *timeline.Snapshot) []window {
	phases := s.Phases()
	ids := scenarioIDs(r)
	var out []window
	for i, id := range ids {
		var from, to time.Duration = -1, -1
		for _, p := range phases {
			kind, sc := timeline.SplitPhase(p.Name)
			in := false
			switch kind {
			case timeline.PhaseBaseline:
				in = i == 0
			case timeline.PhaseFault, timeline.PhaseRecovery:
				in = sc == id
			}
			if !in {
				continue
			}
			if from < 0 || p.Start < from {
				from = p.Start
			}
			to = max(to, p.End)
		}
		if from < 0 { // nothing past the warm-up: show what there is
			from, to = 0, s.End()
		}
		if to <= from {
			to = from + time.Second
		}
		w := window{Scenario: id, From: from, To: to, Bucket: bucketFor(to-from, r.Plan.Rate), MinReady: r.Thresholds.MinReadyEndpoints}
		for _, p := range phases {
			if p.End > from && p.Start < to {
				w.Phases = append(w.Phases, p)
			}
		}
		fill(&w, r, s)
		out = append(out, w)
	}
	return out
}

func scenarioIDs(r *record.Record) []string {
	if len(r.Scenarios) <= 1 {
		return []string{""}
	}
	var ids []string
	for _, sc := range r.Scenarios {
		ids = append(ids, sc.ID())
	}
	return ids
}

func fill(w *window, r *record.Record, s *timeline.Snapshot) {
	n := w.buckets()
	reqs := s.RequestsIn(w.From, w.To)
	for _, c := range clientsOf(reqs) {
		cs := clientSeries{Client: c, OK: make([]int, n), Failed: map[timeline.ErrorKind][]int{},
			P50: make([]time.Duration, n), P99: make([]time.Duration, n)}
		lat := make([][]time.Duration, n)
		for i := range reqs {
			q := &reqs[i]
			b := w.bucketOf(q.Offset)
			if q.Client != c || b < 0 {
				continue
			}
			if q.OK() {
				cs.OK[b]++
				lat[b] = append(lat[b], q.Latency)
				continue
			}
			if cs.Failed[q.Err] == nil {
				cs.Failed[q.Err] = make([]int, n)
			}
			cs.Failed[q.Err][b]++
		}
		for b := range lat {
			cs.P50[b], cs.P99[b] = quantile(lat[b], 0.5), quantile(lat[b], 0.99)
		}
		w.Clients = append(w.Clients, cs)
	}

	ready := timeline.ReadyEndpoints(s.Events)
	w.Ready = make([]int, n)
	for b := range w.Ready {
		w.Ready[b] = ready.At(w.mid(b))
	}
	w.NodeGroups = nodeGroups(w, r, s)
	w.Pods, w.Unassigned = podLanes(w, r, s, reqs)
	w.Marks = marks(w, s)
}

// bucketSeconds is how long slice b is: the last one may be cut by the
// window's end, and its rate is over what it covers.
func (w *window) bucketSeconds(b int) float64 {
	from := w.From + time.Duration(b)*w.Bucket
	return secs(min(w.Bucket, w.To-from))
}

func (w *window) mid(b int) time.Duration { return w.From + time.Duration(b)*w.Bucket + w.Bucket/2 }

func clientsOf(reqs []timeline.Request) []timeline.ClientKind {
	seen := map[timeline.ClientKind]bool{}
	for i := range reqs {
		seen[reqs[i].Client] = true
	}
	var out []timeline.ClientKind
	for _, c := range append([]timeline.ClientKind{timeline.ClientUnknown}, timeline.ClientKinds()...) {
		if seen[c] {
			out = append(out, c)
		}
	}
	return out
}

// quantile of unsorted latencies (sorted in place); -1 for none.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	slices.Sort(d)
	i := int(q*float64(len(d)) + 0.5)
	return d[min(max(i-1, 0), len(d)-1)]
}

// nodeGroups counts the Ready nodes of each version and image per bucket.
// The image of a node is the one it was listed with before the rehearsal,
// until the harness asked for it (or for a new node of its name) from
// another image; the version is the kubelet's, as the node reported it.
func nodeGroups(w *window, r *record.Record, s *timeline.Snapshot) []nodeGroup {
	type change struct {
		at             time.Duration
		ready          *bool
		version, image string
	}
	changes := map[string][]change{}
	initial := map[string]record.Node{}
	for _, nd := range r.Target.NodesBefore {
		initial[nd.Name] = nd
	}
	yes, no := true, false
	for i := range s.Events {
		e := &s.Events[i]
		if e.Node == "" {
			continue
		}
		c := change{at: e.Offset}
		switch e.Kind {
		case timeline.EvNodeReady:
			c.ready, c.version = &yes, kubeletVersion(e.Detail)
		case timeline.EvNodeAdded:
			c.version = kubeletVersion(e.Detail)
		case timeline.EvNodeNotReady, timeline.EvNodeDeleted, timeline.EvNodeStopped:
			c.ready = &no
		case timeline.EvNodeVersionChanged:
			_, v, _ := strings.Cut(e.Detail, "-> ")
			c.version = strings.TrimSpace(v)
		case timeline.EvNodeRequested:
			_, img, ok := strings.Cut(e.Detail, "from image ")
			if !ok {
				continue
			}
			c.image = strings.TrimSpace(img)
		default:
			continue
		}
		changes[e.Node] = append(changes[e.Node], c)
	}
	counts := map[string][]int{}
	n := w.buckets()
	for name, cs := range changes {
		nd := initial[name]
		ready, version, image := false, nd.Version, nd.Image
		ci := 0
		for b := 0; b < n; b++ {
			at := w.mid(b)
			for ci < len(cs) && cs[ci].at <= at {
				c := cs[ci]
				if c.ready != nil {
					ready = *c.ready
				}
				if c.version != "" {
					version = c.version
				}
				if c.image != "" {
					image = c.image
				}
				ci++
			}
			if !ready {
				continue
			}
			key := nodeLabel(version, image)
			if counts[key] == nil {
				counts[key] = make([]int, n)
			}
			counts[key][b]++
		}
	}
	var out []nodeGroup
	for k, c := range counts {
		out = append(out, nodeGroup{Label: k, Count: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

func kubeletVersion(detail string) string {
	_, rest, ok := strings.Cut(detail, "kubelet ")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, ";")
	v, _, _ = strings.Cut(v, " ")
	return strings.TrimSpace(v)
}

func nodeLabel(version, image string) string {
	switch {
	case version == "" && image == "":
		return "unknown"
	case image == "":
		return version
	case version == "":
		return image
	}
	return version + " · " + image
}

// podLanes draws every pod the window saw: starting (scheduled, not yet
// Ready), ready, terminating (deletion requested until its exit), with the
// failures attributed to it and the verdict's evidence naming it.
func podLanes(w *window, r *record.Record, s *timeline.Snapshot, reqs []timeline.Request) ([]podLane, []bucketCount) {
	var lanes []podLane
	index := map[string]int{}
	for _, p := range timeline.PodLifecycles(s.Events) {
		lane := podLane{Pod: p.Pod, Node: p.Node}
		start := p.FirstSeen
		if p.Scheduled.Known {
			start = p.Scheduled.At
		}
		end := timeline.Forever
		if p.Exited.Known && (!p.DeletionRequested.Known || p.Exited.At >= p.DeletionRequested.At) {
			end = p.Exited.At
		}
		if start >= w.To || end <= w.From {
			continue
		}
		add := func(from, to time.Duration, state string) {
			from, to = max(from, w.From), min(to, w.To, end)
			if to > from {
				lane.Spans = append(lane.Spans, podSpan{From: from, To: to, State: state})
			}
		}
		if fr := p.FirstReady(); fr.Known {
			add(start, fr.At, "starting")
		} else {
			add(start, end, "starting")
		}
		for _, iv := range p.ReadyIntervals {
			to := iv.To
			if p.DeletionRequested.Known {
				to = min(to, p.DeletionRequested.At)
			}
			add(iv.From, to, "ready")
		}
		if p.DeletionRequested.Known {
			add(p.DeletionRequested.At, end, "terminating")
		}
		index[p.Pod] = len(lanes)
		lanes = append(lanes, lane)
	}

	perPod := map[string]map[int]map[timeline.ErrorKind]int{}
	for i := range reqs {
		q := &reqs[i]
		if q.OK() || !q.Err.IsApp() {
			continue
		}
		b := w.bucketOf(q.Offset)
		if b < 0 {
			continue
		}
		key := q.Pod
		if _, ok := index[key]; !ok {
			key = ""
		}
		if perPod[key] == nil {
			perPod[key] = map[int]map[timeline.ErrorKind]int{}
		}
		if perPod[key][b] == nil {
			perPod[key][b] = map[timeline.ErrorKind]int{}
		}
		perPod[key][b][q.Err]++
	}
	counts := func(m map[int]map[timeline.ErrorKind]int) []bucketCount {
		var out []bucketCount
		for b, kinds := range m {
			bc := bucketCount{Bucket: b}
			var parts []string
			for _, k := range timeline.ErrorKinds() {
				if kinds[k] > 0 {
					bc.N += kinds[k]
					parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
				}
			}
			bc.Kinds = strings.Join(parts, ", ")
			out = append(out, bc)
		}
		slices.SortFunc(out, func(a, b bucketCount) int { return cmp.Compare(a.Bucket, b.Bucket) })
		return out
	}
	for pod, m := range perPod {
		if pod != "" {
			lanes[index[pod]].Failed = counts(m)
		}
	}
	for _, c := range r.Verdict.Checks {
		if c.Diagnosis == nil || c.Status == verdict.Pass {
			continue
		}
		for _, e := range c.Diagnosis.Evidence {
			if i, ok := index[e.Pod]; ok && e.Until >= w.From && e.At < w.To {
				lanes[i].Evidence = append(lanes[i].Evidence, e)
			}
		}
	}
	return lanes, counts(perPod[""])
}

// instantMarks say, for each kind of event worth a tick on the events
// chart, its lane and its text.
var instantMarks = map[timeline.EventKind]struct {
	lane string
	text func(e *timeline.Event) string
}{
	timeline.EvPhaseStart:           {"harness", func(e *timeline.Event) string { return "phase " + e.Name + " begins" }},
	timeline.EvFaultInjected:        {"harness", func(e *timeline.Event) string { return "change: " + e.Name + detail(e) }},
	timeline.EvFaultReverted:        {"harness", func(e *timeline.Event) string { return "undone: " + e.Name + detail(e) }},
	timeline.EvBatchStarted:         {"harness", func(e *timeline.Event) string { return "upgrade " + e.Name + " begins" + detail(e) }},
	timeline.EvNodeAdded:            {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " added" + detail(e) }},
	timeline.EvNodeRequested:        {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " requested" + detail(e) }},
	timeline.EvNodeDeleted:          {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " deleted" }},
	timeline.EvNodeCordoned:         {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " cordoned" }},
	timeline.EvNodeUncordoned:       {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " uncordoned" }},
	timeline.EvNodeReady:            {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " Ready" }},
	timeline.EvNodeNotReady:         {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " NotReady" + detail(e) }},
	timeline.EvNodeVersionChanged:   {"nodes", func(e *timeline.Event) string { return "node " + e.Node + ": " + e.Detail }},
	timeline.EvNodeStopped:          {"nodes", func(e *timeline.Event) string { return "node " + e.Node + " stopped abruptly" + detail(e) }},
	timeline.EvEvictionRefused:      {"evictions", func(e *timeline.Event) string { return "eviction of " + e.Pod + " refused" + detail(e) }},
	timeline.EvEvictionRequested:    {"evictions", func(e *timeline.Event) string { return "eviction of " + e.Pod + " asked" }},
	timeline.EvPodDeletionRequested: {"pods", func(e *timeline.Event) string { return "pod " + e.Pod + " deletion requested (SIGTERM follows)" }},
	timeline.EvPodReady:             {"pods", func(e *timeline.Event) string { return "pod " + e.Pod + " Ready" }},
	timeline.EvAppLog:               {"pods", func(e *timeline.Event) string { return "pod " + e.Pod + " logged: " + e.Name }},
	timeline.EvContainerExited: {"pods", func(e *timeline.Event) string {
		code := ""
		if e.ExitCode != nil {
			code = fmt.Sprintf(" with code %d", *e.ExitCode)
		}
		return "pod " + e.Pod + " exited" + code + " " + e.Reason
	}},
	timeline.EvEndpointRemoved:  {"endpoints", func(e *timeline.Event) string { return "endpoint " + e.Pod + " " + e.IP + " removed" }},
	timeline.EvEndpointAdded:    {"endpoints", func(e *timeline.Event) string { return "endpoint " + e.Pod + " " + e.IP + " added" }},
	timeline.EvEndpointNotReady: {"endpoints", func(e *timeline.Event) string { return "endpoint " + e.Pod + " " + e.IP + " not ready" }},
}

// marks are the events worth a tick on the events chart; a drain and the
// API server's absence are spans.
func marks(w *window, s *timeline.Snapshot) []mark {
	var out []mark
	add := func(at, until time.Duration, lane, text string) {
		if until < w.From || at >= w.To {
			return
		}
		out = append(out, mark{At: at, Until: until, Lane: lane, Text: text})
	}
	openDrain := map[string]time.Duration{}
	var apiDown time.Duration = -1
	for i := range s.Events {
		e := &s.Events[i]
		at := e.Offset
		if m, ok := instantMarks[e.Kind]; ok {
			add(at, at, m.lane, m.text(e))
			continue
		}
		switch e.Kind {
		case timeline.EvDrainStarted:
			openDrain[e.Node] = at
		case timeline.EvDrainFinished:
			from, ok := openDrain[e.Node]
			if !ok {
				from = at
			}
			delete(openDrain, e.Node)
			text := "drain of " + e.Node
			if e.Detail != "" {
				text += " failed: " + e.Detail
			}
			add(from, at, "drains", text)
		case timeline.EvAPIUnavailable:
			if apiDown < 0 {
				apiDown = at
			}
		case timeline.EvAPIAvailable:
			if apiDown >= 0 {
				add(apiDown, at, "api server", "API server unavailable for "+fmtDur(at-apiDown))
				apiDown = -1
			}
		}
	}
	for node, from := range openDrain {
		add(from, w.To, "drains", "drain of "+node+" (not finished)")
	}
	if apiDown >= 0 {
		add(apiDown, w.To, "api server", "API server unavailable until the end")
	}
	slices.SortStableFunc(out, func(a, b mark) int { return cmp.Compare(a.At, b.At) })
	return out
}

func detail(e *timeline.Event) string {
	if e.Detail == "" {
		return ""
	}
	return ": " + e.Detail
}

// fmtDur prints a duration for people: "85 ms", "1.2 s", "3m05s".
func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDur(-d)
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", d.Seconds()), "0"), ".") + " s"
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
