// Package html renders a run record as one self-contained HTML page: the
// verdict, each diagnosis with its evidence and fix, the upgrade figures,
// and per scenario the charts on one time axis (requests per second by
// outcome per client kind, latency, ready endpoints, nodes by version and
// image, every cluster event, a lane per pod with the failures attributed
// to it). The page fetches nothing: styles, script and charts (SVG drawn
// here) are inside the file, so it opens from disk, from a CI artifact, or
// attached to a mail. Requests are aggregated into at most maxBuckets
// slices per window, so the file stays small however long the run.
package html

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// FileName is the report's name in a rehearsal's results directory.
const FileName = "report.html"

//go:embed page.html.tmpl
var pageTemplate string

//go:embed report.css
var pageCSS string

//go:embed report.js
var pageJS string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"clock":  clock,
	"dur":    fmtDur,
	"lower":  strings.ToLower,
	"status": statusClass,
	"upper":  strings.ToUpper,
}).Parse(pageTemplate))

// view is what the template reads.
type view struct {
	Rec      *record.Record
	Title    string
	Outcome  string
	Class    string
	Facts    [][2]string
	Checks   []verdict.Check
	Problems []problem
	Details  []verdict.Check
	Windows  []windowView
	CSS      template.CSS
	JS       template.JS
}

type problem struct {
	Check    verdict.Check
	Heading  string
	Evidence []evidenceView
}

type evidenceView struct {
	verdict.Evidence
	Window int // the window whose charts show it; -1 when none
}

type windowView struct {
	Index   int
	Heading string
	Charts  []template.HTML
	Data    template.JS
}

// Render writes the report of a record.
func Render(out io.Writer, r *record.Record) error {
	if r.Timeline == nil {
		return fmt.Errorf("html: the record has no timeline to draw")
	}
	snap := r.Timeline.Snapshot()
	v := view{Rec: r, Outcome: outcomeText(r.Verdict), Class: statusClass(r.Verdict.Outcome),
		Checks: r.Verdict.Checks, CSS: template.CSS(pageCSS), JS: template.JS(pageJS)}
	v.Title = "rehearsal " + r.Name + ": " + v.Outcome
	v.Facts = facts(r)

	ws := windows(r, &snap)
	for i := range ws {
		w := &ws[i]
		svgs, tips := charts(w, i)
		data, err := json.Marshal(struct {
			From   float64     `json:"from"`
			Bucket float64     `json:"bucket"`
			Series []tipSeries `json:"series"`
		}{secs(w.From), secs(w.Bucket), tips})
		if err != nil {
			return err
		}
		heading := "what the clients saw"
		if w.Scenario != "" {
			heading = "scenario " + w.Scenario + ": what the clients saw"
		}
		heading += fmt.Sprintf(" (%s to %s, %s slices)", clock(w.From), clock(w.To), fmtDur(w.Bucket))
		v.Windows = append(v.Windows, windowView{Index: i, Heading: heading, Charts: svgs, Data: template.JS(data)})
	}
	windowOf := func(at time.Duration) int {
		for i, w := range ws {
			if at >= w.From && at < w.To {
				return i
			}
		}
		return -1
	}
	for _, c := range r.Verdict.Checks {
		if len(c.Details) > 0 {
			v.Details = append(v.Details, c)
		}
		if c.Status == verdict.Pass || c.Diagnosis == nil {
			continue
		}
		p := problem{Check: c, Heading: strings.ToUpper(string(c.Status)) + " " + c.Name + ": " + diagnosisTitle(c.Diagnosis)}
		for _, e := range c.Diagnosis.Evidence {
			p.Evidence = append(p.Evidence, evidenceView{Evidence: e, Window: windowOf(e.At)})
		}
		v.Problems = append(v.Problems, p)
	}
	return page.Execute(out, v)
}

func diagnosisTitle(d *verdict.Diagnosis) string {
	if d.Class != verdict.ClassNone {
		return d.Class.String()
	}
	return d.Title
}

func outcomeText(rep verdict.Report) string {
	switch rep.Outcome {
	case verdict.Pass:
		return "passed"
	case verdict.Fail:
		n := len(rep.Failed())
		if n == 1 {
			return "FAILED (1 check)"
		}
		return fmt.Sprintf("FAILED (%d checks)", n)
	case verdict.CannotJudge:
		return "CANNOT JUDGE"
	}
	return "not judged"
}

func statusClass(s verdict.Status) string {
	switch s {
	case verdict.Pass:
		return "pass"
	case verdict.Fail:
		return "fail"
	}
	return "unjudged"
}

// facts are the run's particulars, as label and value.
func facts(r *record.Record) [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("run", r.Run)
	if !r.Started.IsZero() {
		add("started", r.Started.UTC().Format("2006-01-02 15:04:05 UTC"))
		add("took", fmtDur(r.Duration()))
	}
	add("cluster", r.Target.Name)
	add("Kubernetes", versions(r))
	add("app", strings.TrimSpace(r.App.Description+" "+appWhere(r.App)))
	if r.Plan.Rate > 0 {
		add("load", fmt.Sprintf("%d requests/s per client (%s); warm-up up to %s, baseline %s, recovery %s",
			r.Plan.Rate, strings.Join(r.Plan.Clients, ", "), fmtDur(r.Plan.Warmup), fmtDur(r.Plan.Baseline), fmtDur(r.Plan.Recovery)))
	}
	for _, sc := range r.Scenarios {
		var set []string
		for _, s := range sc.Settings {
			set = append(set, s.Name+"="+s.Value)
		}
		text := sc.ID()
		if len(set) > 0 {
			text += " (" + strings.Join(set, ", ") + ")"
		}
		if sc.FailedStep != "" {
			text += "; step “" + sc.FailedStep + "” failed: " + sc.Error
		}
		add("scenario", text)
	}
	for _, k := range timeline.ClientKinds() {
		if l, ok := r.Load(k); ok {
			add(k.String()+" client", l.String())
		}
	}
	add("could not finish", r.Error)
	add("revert failed", r.RevertError)
	add("tool", strings.TrimSpace(r.Tool.Name+" "+r.Tool.Version+" ("+r.Tool.Go+")"))
	return out
}

func appWhere(a record.App) string {
	if a.Namespace == "" {
		return ""
	}
	return "(Deployment " + a.Namespace + "/" + a.Deployment + ", Service " + a.Service + ")"
}

// versions says which Kubernetes versions and node images the nodes ran,
// before and after.
func versions(r *record.Record) string {
	sum := func(ns []record.Node) string {
		count := map[string]int{}
		for _, n := range ns {
			count[nodeLabel(n.Version, n.Image)]++
		}
		var parts []string
		for k, c := range count {
			parts = append(parts, fmt.Sprintf("%d × %s", c, k))
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	}
	before, after := sum(r.Target.NodesBefore), sum(r.Target.NodesAfter)
	switch {
	case before == "":
		return after
	case after == "" || after == before:
		return before
	}
	return before + " → " + after
}
