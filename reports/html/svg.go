package html

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// Chart geometry, in pixels. Every chart of a window shares the time axis:
// the plot area is a nested <svg> whose x coordinates are seconds of the
// timeline (its viewBox spans the window), so the page's script zooms all
// of them at once by changing their viewBox, without redrawing. Its y
// coordinates are pixels; lines keep their width through
// vector-effect="non-scaling-stroke".
const (
	chartWidth = 1100
	marginLeft = 190 // lane and axis labels
	marginTop  = 22  // the chart's title
	axisHeight = 20  // time labels under the plot
	plotWidth  = chartWidth - marginLeft - 16
)

// svg builds one chart.
type svg struct {
	b          strings.Builder
	from, span float64 // the window, in seconds
	height     int     // the plot's
	plotOpen   bool
}

func secs(d time.Duration) float64 { return d.Seconds() }

// num prints a coordinate compactly (3 decimals at most).
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

func esc(s string) string { return html.EscapeString(s) }

// newChart opens a chart of the window with a plot of the given height.
func newChart(id, title string, w *window, height int, series string) *svg {
	s := &svg{from: secs(w.From), span: secs(w.To - w.From), height: height}
	total := marginTop + height + axisHeight
	fmt.Fprintf(&s.b, `<svg class="chart" id="%s" data-series="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		esc(id), esc(series), chartWidth, total, chartWidth, total, esc(title))
	fmt.Fprintf(&s.b, `<text class="title" x="%d" y="15">%s</text>`, marginLeft, esc(title))
	return s
}

// openPlot starts the plot area; everything drawn until closePlot is in
// (seconds, pixels).
func (s *svg) openPlot(w *window) {
	fmt.Fprintf(&s.b, `<rect class="frame" x="%d" y="%d" width="%d" height="%d"/>`, marginLeft, marginTop, plotWidth, s.height)
	fmt.Fprintf(&s.b, `<svg class="plot" x="%d" y="%d" width="%d" height="%d" viewBox="%s 0 %s %d" preserveAspectRatio="none" data-from="%s" data-span="%s">`,
		marginLeft, marginTop, plotWidth, s.height, num(s.from), num(s.span), s.height, num(s.from), num(s.span))
	for _, p := range w.Phases {
		from, to := max(secs(p.Start), s.from), min(secs(p.End), s.from+s.span)
		kind, _, _ := strings.Cut(p.Name, ":")
		fmt.Fprintf(&s.b, `<rect class="phase ph-%s" x="%s" y="0" width="%s" height="%d"><title>%s %s to %s</title></rect>`,
			esc(kind), num(from), num(to-from), s.height, esc(p.Name), clock(p.Start), clock(p.End))
	}
	s.plotOpen = true
}

func (s *svg) closePlot() {
	s.b.WriteString(`</svg>`)
	s.plotOpen = false
}

// yAxis labels the plot's left edge from 0 to top (a nice number), with
// unit after the top label.
func (s *svg) yAxis(top float64, unit string) {
	for _, v := range []float64{0, top / 2, top} {
		if v != math.Trunc(v) && top >= 2 { // counts: whole numbers only
			continue
		}
		y := marginTop + s.height - int(v/top*float64(s.height))
		label := trimNum(v)
		if v == top {
			label += " " + unit
		}
		fmt.Fprintf(&s.b, `<text class="ylabel" x="%d" y="%d">%s</text>`, marginLeft-6, y+4, esc(label))
		if v > 0 {
			fmt.Fprintf(&s.b, `<line class="grid" x1="%d" x2="%d" y1="%d" y2="%d"/>`, marginLeft, marginLeft+plotWidth, y, y)
		}
	}
}

// label writes a lane label left of the plot, at pixel row y of the plot.
func (s *svg) label(y int, text, tip string) {
	fmt.Fprintf(&s.b, `<text class="lane" x="%d" y="%d">%s<title>%s</title></text>`, marginLeft-6, marginTop+y+4, esc(shorten(text, 28)), esc(tip))
}

// end closes the chart with its time axis.
func (s *svg) end() string {
	if s.plotOpen {
		s.closePlot()
	}
	y := marginTop + s.height
	fmt.Fprintf(&s.b, `<g class="xaxis" data-y="%d">`, y)
	for _, t := range ticks(s.from, s.from+s.span) {
		x := marginLeft + (t-s.from)/s.span*plotWidth
		fmt.Fprintf(&s.b, `<line x1="%s" x2="%s" y1="%d" y2="%d"/><text x="%s" y="%d">%s</text>`,
			num(x), num(x), y, y+4, num(x), y+16, clock(time.Duration(t*float64(time.Second))))
	}
	s.b.WriteString(`</g></svg>`)
	return s.b.String()
}

// ticks are round times between from and to (seconds), about eight of
// them. The page's script computes the same for a zoomed range.
func ticks(from, to float64) []float64 {
	span := to - from
	if span <= 0 {
		return nil
	}
	step := 1.0
	for _, st := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600} {
		step = st
		if span/st <= 10 {
			break
		}
	}
	var out []float64
	for t := math.Ceil(from/step) * step; t <= to+1e-9; t += step {
		out = append(out, t)
	}
	return out
}

// clock prints an offset as the time axis does: "45s", "1:05", "12.5s".
func clock(d time.Duration) string {
	s := d.Seconds()
	if s < 60 {
		return trimNum(math.Round(s*10)/10) + "s"
	}
	whole := int(math.Round(s))
	return fmt.Sprintf("%d:%02d", whole/60, whole%60)
}

func trimNum(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// shorten keeps the end of a long label, where pod names differ
// ("…54576b6474-rkwsk").
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
