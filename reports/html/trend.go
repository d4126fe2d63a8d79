package html

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/compare"
)

// TrendFileName is the trend page's usual name.
const TrendFileName = "trend.html"

//go:embed trend.html.tmpl
var trendTemplate string

var trendPage = template.Must(template.New("trend").Funcs(template.FuncMap{
	"status": statusClass,
	"upper":  strings.ToUpper,
}).Parse(trendTemplate))

type trendView struct {
	Title     string
	Groups    []trendGroup
	Histories []compare.History
	CSS       template.CSS
}

type trendGroup struct {
	Name   string
	Runs   []compare.Point // one per run, for the table
	Charts []template.HTML
}

// RenderTrend writes a page with one small chart per judged figure of each
// rehearsal across runs (only figures that were ever non-zero), the
// percentile line of the history, and the verdicts of runs judged against
// their history.
func RenderTrend(out io.Writer, title string, series []compare.Series, histories []compare.History) error {
	v := trendView{Title: title, Histories: histories, CSS: template.CSS(pageCSS)}
	byName := map[string]*trendGroup{}
	var names []string
	for _, s := range series {
		g := byName[s.Name]
		if g == nil {
			g = &trendGroup{Name: s.Name}
			byName[s.Name] = g
			names = append(names, s.Name)
		}
		if len(s.Points) > len(g.Runs) {
			g.Runs = s.Points
		}
		if !s.Judged || !slices.ContainsFunc(s.Points, func(p compare.Point) bool { return p.Value != 0 }) {
			continue
		}
		g.Charts = append(g.Charts, template.HTML(trendChart(s)))
	}
	slices.Sort(names)
	for _, n := range names {
		v.Groups = append(v.Groups, *byName[n])
	}
	return trendPage.Execute(out, v)
}

// trendChart draws one figure over the runs: a point per run (coloured by
// the run's outcome), the 95th percentile dashed.
func trendChart(s compare.Series) string {
	const w, h, left, top = 520, 90, 60, 20
	pw := w - left - 10
	var b strings.Builder
	peak := 0.0
	var vals []float64
	for _, p := range s.Points {
		peak = max(peak, p.Value)
		vals = append(vals, p.Value)
	}
	ceil := niceCeil(peak * 1.1)
	y := func(v float64) float64 { return top + float64(h) - v/ceil*float64(h) }
	x := func(i int) float64 {
		if len(s.Points) == 1 {
			return left + float64(pw)/2
		}
		return left + float64(i)/float64(len(s.Points)-1)*float64(pw)
	}
	fmt.Fprintf(&b, `<svg class="chart trend" width="%d" height="%d" viewBox="0 0 %d %d" data-figure="%s">`, w, h+top+14, w, h+top+14, esc(s.Check+" "+s.Figure))
	fmt.Fprintf(&b, `<text class="title" x="%d" y="14">%s · %s</text>`, left, esc(s.Check), esc(s.Figure))
	fmt.Fprintf(&b, `<rect class="frame" x="%d" y="%d" width="%d" height="%d"/>`, left, top, pw, h)
	fmt.Fprintf(&b, `<text class="ylabel" x="%d" y="%d">%s</text><text class="ylabel" x="%d" y="%d">0</text>`,
		left-6, top+4, esc(unitValue(ceil, s.Unit)), left-6, top+h+4)
	if len(vals) >= 2 {
		p95 := compare.Percentile(vals, 95)
		fmt.Fprintf(&b, `<line class="p95" x1="%d" x2="%d" y1="%s" y2="%s"><title>95th percentile: %s</title></line>`,
			left, left+pw, num(y(p95)), num(y(p95)), esc(unitValue(p95, s.Unit)))
	}
	var pts []string
	for i, p := range s.Points {
		pts = append(pts, num(x(i))+","+num(y(p.Value)))
	}
	fmt.Fprintf(&b, `<polyline class="trendline" points="%s"/>`, strings.Join(pts, " "))
	for i, p := range s.Points {
		fmt.Fprintf(&b, `<circle class="run %s" cx="%s" cy="%s" r="3.5"><title>%s %s: %s (%s)</title></circle>`,
			statusClass(p.Outcome), num(x(i)), num(y(p.Value)), esc(p.At.UTC().Format("2006-01-02 15:04")), esc(p.Run),
			esc(unitValue(p.Value, s.Unit)), esc(string(p.Outcome)))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func unitValue(v float64, u verdict.Unit) string {
	switch u {
	case verdict.UnitRatio:
		return trimNum(float64(int64(v*100*1000+0.5))/1000) + "%"
	case verdict.UnitSeconds:
		return trimNum(float64(int64(v*1000+0.5))/1000) + "s"
	}
	return trimNum(float64(int64(v*1000+0.5)) / 1000)
}
