package html

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// kindColors are the colours of successes and of each error kind, the
// same in every chart.
var kindColors = map[string]string{
	"ok":          "#3a9d5d",
	"http5xx":     "#d62728",
	"http4xx":     "#ff7f0e",
	"refused":     "#9467bd",
	"reset":       "#e377c2",
	"timeout":     "#8c564b",
	"eof":         "#bcbd22",
	"dns":         "#17becf",
	"other":       "#7f7f7f",
	"closed-idle": "#c49c94",
	"client":      "#aec7e8",
}

var groupColors = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2"}

// colorNames name groupColors for titles that say which line is which.
var colorNames = []string{"blue", "orange", "green", "purple", "yellow", "teal"}

// tipSeries is one series of a chart as the page's script reads it to show
// the values under the cursor.
type tipSeries struct {
	Chart  string    `json:"chart"`
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Values []float64 `json:"values"`
}

// charts draws every chart of a window and the data their tooltips read.
func charts(w *window, idx int) (svgs []template.HTML, tips []tipSeries) {
	add := func(s string, t ...tipSeries) {
		svgs = append(svgs, template.HTML(s))
		tips = append(tips, t...)
	}
	for _, cs := range w.Clients {
		s, t := requestsChart(w, idx, cs)
		add(s, t...)
	}
	if len(w.Clients) > 0 {
		s, t := latencyChart(w, idx)
		add(s, t...)
	}
	s, t := readyChart(w, idx)
	add(s, t...)
	if len(w.NodeGroups) > 0 {
		s, t := nodesChart(w, idx)
		add(s, t...)
	}
	add(eventsChart(w, idx))
	if len(w.Pods) > 0 {
		add(podsChart(w, idx))
	}
	return svgs, tips
}

func chartID(idx int, name string) string { return fmt.Sprintf("w%d-%s", idx, name) }

// requestsChart stacks, per time slice, one client's successes and each
// kind of failure, in requests per second.
func requestsChart(w *window, idx int, cs clientSeries) (string, []tipSeries) {
	const h = 120
	id := chartID(idx, "requests-"+cs.Client.String())
	per := secs(w.Bucket)
	perAt := func(b int) float64 { return w.bucketSeconds(b) }
	kinds := []timeline.ErrorKind{}
	for _, k := range timeline.ErrorKinds() {
		if cs.Failed[k] != nil {
			kinds = append(kinds, k)
		}
	}
	names := []string{"ok"}
	for _, k := range kinds {
		names = append(names, k.String())
	}
	peak := 0.0
	for b := range cs.OK {
		t := cs.OK[b]
		for _, k := range kinds {
			t += cs.Failed[k][b]
		}
		peak = max(peak, float64(t)/perAt(b))
	}
	top := niceCeil(peak * 1.15) // headroom: the phases show above a steady rate
	s := newChart(id, cs.Client.String()+" client: requests per second, by outcome", w, h, strings.Join(names, " "))
	s.yAxis(top, "/s")
	s.openPlot(w)
	tips := []tipSeries{{Chart: id, Name: "ok", Unit: "/s", Values: make([]float64, len(cs.OK))}}
	for _, k := range kinds {
		tips = append(tips, tipSeries{Chart: id, Name: k.String(), Unit: "/s", Values: make([]float64, len(cs.OK))})
	}
	for _, name := range names {
		fmt.Fprintf(&s.b, `<g class="series" data-name="%s" fill="%s" shape-rendering="crispEdges">`, name, kindColors[name])
		for b := range cs.OK {
			// Stack: successes at the bottom, then the failures in
			// kind order, each above the ones before it.
			below := 0
			v := cs.OK[b]
			if name != "ok" {
				below = cs.OK[b]
				for _, k := range kinds {
					if k.String() == name {
						v = cs.Failed[k][b]
						break
					}
					below += cs.Failed[k][b]
				}
			}
			for i := range tips {
				if tips[i].Name == name {
					tips[i].Values[b] = float64(v) / perAt(b)
				}
			}
			if v == 0 {
				continue
			}
			y0 := float64(h) * float64(below) / perAt(b) / top
			y1 := float64(h) * float64(below+v) / perAt(b) / top
			x := secs(w.From + time.Duration(b)*w.Bucket)
			fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s"/>`, num(x), num(float64(h)-y1), num(per), num(y1-y0))
		}
		s.b.WriteString(`</g>`)
	}
	return s.end(), tips
}

// latencyChart draws the median and 99th percentile latency of successful
// requests of every client.
func latencyChart(w *window, idx int) (string, []tipSeries) {
	const h = 100
	id := chartID(idx, "latency")
	peak := 0.0
	for _, cs := range w.Clients {
		for _, v := range cs.P99 {
			peak = max(peak, ms(v))
		}
	}
	top := niceCeil(peak * 1.15) // headroom: a steady latency is not drawn on the frame
	var names []string
	for _, cs := range w.Clients {
		names = append(names, cs.Client.String()+"-p50", cs.Client.String()+"-p99")
	}
	var who []string
	for ci, cs := range w.Clients {
		who = append(who, cs.Client.String()+" "+colorNames[ci%len(colorNames)])
	}
	title := "latency of successful requests, " + strings.Join(who, ", ") + " (p50 dashed, p99 solid)"
	s := newChart(id, title, w, h, strings.Join(names, " "))
	s.yAxis(top, "ms")
	s.openPlot(w)
	var tips []tipSeries
	for ci, cs := range w.Clients {
		color := groupColors[ci%len(groupColors)]
		for _, q := range []struct {
			name string
			vals []time.Duration
			dash bool
		}{{"p50", cs.P50, true}, {"p99", cs.P99, false}} {
			name := cs.Client.String() + "-" + q.name
			tip := tipSeries{Chart: id, Name: name, Unit: "ms", Values: make([]float64, len(q.vals))}
			var pts []string
			flush := func() {
				if len(pts) > 0 {
					dash := ""
					if q.dash {
						dash = ` stroke-dasharray="4 3"`
					}
					fmt.Fprintf(&s.b, `<polyline class="line" data-name="%s" stroke="%s"%s points="%s"/>`, name, color, dash, strings.Join(pts, " "))
				}
				pts = pts[:0]
			}
			for b, v := range q.vals {
				if v < 0 { // no success in the slice: a gap in the line
					tip.Values[b] = -1
					flush()
					continue
				}
				tip.Values[b] = ms(v)
				x := secs(w.From+time.Duration(b)*w.Bucket) + secs(w.Bucket)/2
				pts = append(pts, num(x)+","+num(float64(h)-ms(v)/top*float64(h)))
			}
			flush()
			tips = append(tips, tip)
		}
	}
	return s.end(), tips
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// readyChart is the number of ready endpoints, with the required minimum.
func readyChart(w *window, idx int) (string, []tipSeries) {
	const h = 70
	id := chartID(idx, "ready")
	top := float64(max(slices.Max(append([]int{1}, w.Ready...)), w.MinReady) + 1)
	top += float64(int(top) % 2) // even, so that the middle label is whole
	s := newChart(id, "ready endpoints of the Service (dashed: the required minimum)", w, h, "ready")
	s.yAxis(top, "")
	s.openPlot(w)
	y := func(v int) string { return num(float64(h) - float64(v)/top*float64(h)) }
	var d strings.Builder
	tip := tipSeries{Chart: id, Name: "ready", Values: make([]float64, len(w.Ready))}
	for b, v := range w.Ready {
		x := secs(w.From + time.Duration(b)*w.Bucket)
		if b == 0 {
			fmt.Fprintf(&d, "M%s,%s", num(x), y(v))
		} else {
			fmt.Fprintf(&d, "H%sV%s", num(x), y(v))
		}
		tip.Values[b] = float64(v)
	}
	fmt.Fprintf(&d, "H%s", num(secs(w.To)))
	fmt.Fprintf(&s.b, `<path class="line" data-name="ready" stroke="#4e79a7" d="%s"/>`, d.String())
	fmt.Fprintf(&s.b, `<line class="limit" x1="%s" x2="%s" y1="%s" y2="%s"/>`, num(secs(w.From)), num(secs(w.To)), y(w.MinReady), y(w.MinReady))
	for b, v := range w.Ready {
		if v < w.MinReady {
			x := secs(w.From + time.Duration(b)*w.Bucket)
			fmt.Fprintf(&s.b, `<rect class="below" x="%s" y="0" width="%s" height="%d"/>`, num(x), num(secs(w.Bucket)), h)
		}
	}
	return s.end(), []tipSeries{tip}
}

// nodesChart stacks the Ready nodes by Kubernetes version and node image.
func nodesChart(w *window, idx int) (string, []tipSeries) {
	const h = 70
	id := chartID(idx, "nodes")
	peak := 0
	n := w.buckets()
	for b := 0; b < n; b++ {
		t := 0
		for _, g := range w.NodeGroups {
			t += g.Count[b]
		}
		peak = max(peak, t)
	}
	top := float64(peak + 1 + (peak+1)%2)
	var names []string
	for _, g := range w.NodeGroups {
		names = append(names, g.Label)
	}
	s := newChart(id, "Ready nodes by Kubernetes version and node image", w, h, strings.Join(names, "|"))
	s.yAxis(top, "")
	s.openPlot(w)
	var tips []tipSeries
	below := make([]int, n)
	for gi, g := range w.NodeGroups {
		color := groupColors[gi%len(groupColors)]
		fmt.Fprintf(&s.b, `<g class="series" data-name="%s" fill="%s" shape-rendering="crispEdges"><title>%s</title>`, esc(g.Label), color, esc(g.Label))
		tip := tipSeries{Chart: id, Name: g.Label, Values: make([]float64, n)}
		for b := 0; b < n; b++ {
			tip.Values[b] = float64(g.Count[b])
			if g.Count[b] == 0 {
				continue
			}
			x := secs(w.From + time.Duration(b)*w.Bucket)
			y1 := float64(h) * float64(below[b]+g.Count[b]) / top
			fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s"/>`, num(x), num(float64(h)-y1), num(secs(w.Bucket)), num(float64(h)*float64(g.Count[b])/top))
			below[b] += g.Count[b]
		}
		s.b.WriteString(`</g>`)
		tips = append(tips, tip)
	}
	return s.end(), tips
}

// eventsChart puts every event worth seeing on its lane, with its text on
// hover; spans (a drain, the API server away) are bars.
func eventsChart(w *window, idx int) string {
	const row = 16
	var lanes []string
	for _, l := range markLanes {
		for _, m := range w.Marks {
			if m.Lane == l {
				lanes = append(lanes, l)
				break
			}
		}
	}
	h := max(len(lanes), 1) * row
	s := newChart(chartID(idx, "events"), "what happened (hover for details)", w, h, strings.Join(lanes, " "))
	for i, l := range lanes {
		s.label(i*row+row/2, l, l)
	}
	s.openPlot(w)
	for i, l := range lanes {
		y := i * row
		for _, m := range w.Marks {
			if m.Lane != l {
				continue
			}
			tip := esc(clock(m.At) + " " + m.Text)
			if m.Until > m.At {
				fmt.Fprintf(&s.b, `<rect class="mark span lane-%s" x="%s" y="%d" width="%s" height="%d"><title>%s</title></rect>`,
					laneClass(l), num(secs(m.At)), y+3, num(secs(m.Until-m.At)), row-6, tip)
				continue
			}
			fmt.Fprintf(&s.b, `<line class="mark lane-%s" x1="%s" x2="%s" y1="%d" y2="%d"><title>%s</title></line>`,
				laneClass(l), num(secs(m.At)), num(secs(m.At)), y+2, y+row-2, tip)
		}
	}
	return s.end()
}

func laneClass(l string) string { return strings.ReplaceAll(l, " ", "-") }

// podsChart has one lane per pod: starting, ready, terminating, and the
// failed requests attributed to it as red ticks (darker for more).
func podsChart(w *window, idx int) string {
	const row = 16
	lanes := len(w.Pods)
	if len(w.Unassigned) > 0 {
		lanes++
	}
	h := lanes * row
	s := newChart(chartID(idx, "pods"), "pods: starting, ready, terminating; red: failed requests attributed to the pod", w, h, "pods")
	for i, p := range w.Pods {
		s.label(i*row+row/2, p.Pod, p.Pod+" on "+p.Node)
	}
	if len(w.Unassigned) > 0 {
		s.label(len(w.Pods)*row+row/2, "(no pod known)", "failed requests no pod could be named for")
	}
	s.openPlot(w)
	failTicks := func(y int, counts []bucketCount, who string) {
		for _, c := range counts {
			x := secs(w.From + time.Duration(c.Bucket)*w.Bucket)
			op := min(1, 0.35+float64(c.N)/20)
			fmt.Fprintf(&s.b, `<rect class="fail" x="%s" y="%d" width="%s" height="%d" fill-opacity="%s"><title>%s %s: %d failed (%s)</title></rect>`,
				num(x), y+1, num(secs(w.Bucket)), row-2, num(op), clock(w.From+time.Duration(c.Bucket)*w.Bucket), esc(who), c.N, esc(c.Kinds))
		}
	}
	for i, p := range w.Pods {
		y := i * row
		for _, sp := range p.Spans {
			fmt.Fprintf(&s.b, `<rect class="pod %s" x="%s" y="%d" width="%s" height="%d"><title>%s %s from %s to %s</title></rect>`,
				sp.State, num(secs(sp.From)), y+4, num(secs(sp.To-sp.From)), row-8, esc(p.Pod), sp.State, clock(sp.From), clock(sp.To))
		}
		failTicks(y, p.Failed, p.Pod)
		for _, e := range p.Evidence {
			until := max(e.Until, e.At+w.Bucket)
			fmt.Fprintf(&s.b, `<rect class="evidence" x="%s" y="%d" width="%s" height="%d"><title>%s</title></rect>`,
				num(secs(e.At)), y+1, num(secs(until-e.At)), row-2, esc(e.Text))
		}
	}
	if len(w.Unassigned) > 0 {
		failTicks(len(w.Pods)*row, w.Unassigned, "no pod known")
	}
	return s.end()
}
