// Package markdown writes a run record as a short Markdown summary, made
// for a CI job summary ($GITHUB_STEP_SUMMARY, a GitLab or Azure DevOps
// comment) or a pull-request comment: the outcome, the verdict table, each
// diagnosis with its evidence and fix, the upgrade figures, and a link to
// the full HTML report.
package markdown

import (
	"fmt"
	"io"
	"strings"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// FileName is the summary's name in a rehearsal's results directory.
const FileName = "summary.md"

// maxEvidence bounds the evidence lines per diagnosis: a comment should be
// read, not scrolled; the HTML report has all of them.
const maxEvidence = 5

// Options change what is written.
type Options struct {
	// ReportLink is where the HTML report is (a path relative to the
	// summary, or the URL of a CI artifact); none when empty.
	ReportLink string
}

// Write writes the summary.
func Write(w io.Writer, r *record.Record, opt Options) error {
	var b strings.Builder
	name := r.Name
	if name == "" {
		name = r.Run
	}
	fmt.Fprintf(&b, "### %s Rehearsal `%s`: %s\n\n", icon(r.Verdict.Outcome), name, outcome(r.Verdict))
	if r.Verdict.Reason != "" {
		fmt.Fprintf(&b, "> %s\n\n", oneLine(r.Verdict.Reason))
	}
	b.WriteString(context(r) + "\n\n")
	if r.Error != "" {
		fmt.Fprintf(&b, "**The rehearsal did not run to its end:** %s\n\n", oneLine(r.Error))
	}
	if r.RevertError != "" {
		fmt.Fprintf(&b, "**A change could not be undone:** %s (run `rehearse restore`)\n\n", oneLine(r.RevertError))
	}

	b.WriteString("| | check | what was measured | diagnosis |\n|---|---|---|---|\n")
	for _, c := range r.Verdict.Checks {
		diag := ""
		if c.Diagnosis != nil && c.Status != verdict.Pass {
			diag = title(c.Diagnosis)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", icon(c.Status), c.Name, cell(c.Summary), cell(diag))
	}
	b.WriteByte('\n')

	var problems []verdict.Check
	for _, c := range r.Verdict.Checks {
		if c.Status != verdict.Pass && c.Diagnosis != nil {
			problems = append(problems, c)
		}
	}
	if len(problems) > 0 {
		b.WriteString("#### Diagnoses\n\n")
		for _, c := range problems {
			fmt.Fprintf(&b, "**`%s`: %s**\n\n", c.Name, title(c.Diagnosis))
			for i, e := range c.Diagnosis.Evidence {
				if i == maxEvidence {
					fmt.Fprintf(&b, "- … and %d more (see the full report)\n", len(c.Diagnosis.Evidence)-maxEvidence)
					break
				}
				fmt.Fprintf(&b, "- %s\n", oneLine(e.Text))
			}
			if c.Diagnosis.Fix != "" {
				fmt.Fprintf(&b, "\n**Fix:** %s\n", oneLine(c.Diagnosis.Fix))
			}
			b.WriteByte('\n')
		}
	}
	for _, c := range r.Verdict.Checks {
		if len(c.Details) == 0 {
			continue
		}
		fmt.Fprintf(&b, "<details><summary><code>%s</code> figures</summary>\n\n```\n%s\n```\n\n</details>\n\n", c.Name, strings.Join(c.Details, "\n"))
	}
	if opt.ReportLink != "" {
		fmt.Fprintf(&b, "Full report, with the timeline charts: [%s](%s)\n", reportName(opt.ReportLink), opt.ReportLink)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func reportName(link string) string {
	if i := strings.LastIndexByte(link, '/'); i >= 0 && i < len(link)-1 {
		return link[i+1:]
	}
	return link
}

// context is one line: where, what, how hard, how long.
func context(r *record.Record) string {
	var parts []string
	if r.Target.Name != "" {
		parts = append(parts, r.Target.Name)
	}
	versions := map[string]bool{}
	var vs []string
	for _, n := range append(append([]record.Node{}, r.Target.NodesBefore...), r.Target.NodesAfter...) {
		if n.Version != "" && !versions[n.Version] {
			versions[n.Version] = true
			vs = append(vs, n.Version)
		}
	}
	if len(vs) > 0 {
		parts = append(parts, "Kubernetes "+strings.Join(vs, " → "))
	}
	if r.App.Description != "" {
		parts = append(parts, r.App.Description)
	}
	for _, sc := range r.Scenarios {
		var set []string
		for _, s := range sc.Settings {
			set = append(set, s.Name+"="+s.Value)
		}
		text := "`" + sc.ID() + "`"
		if len(set) > 0 {
			text += " (" + strings.Join(set, ", ") + ")"
		}
		parts = append(parts, text)
	}
	var loads []string
	for _, k := range timeline.ClientKinds() {
		if l, ok := r.Load(k); ok {
			loads = append(loads, fmt.Sprintf("%s %d/%d failed", k, l.Failed, l.Sent))
		}
	}
	if len(loads) > 0 {
		parts = append(parts, fmt.Sprintf("%d req/s per client: %s", r.Plan.Rate, strings.Join(loads, ", ")))
	}
	if d := r.Duration(); d > 0 {
		parts = append(parts, "took "+d.Round(1e9).String())
	}
	return strings.Join(parts, " · ")
}

func outcome(rep verdict.Report) string {
	switch rep.Outcome {
	case verdict.Pass:
		return "passed"
	case verdict.Fail:
		n := len(rep.Failed())
		return fmt.Sprintf("**FAILED** (%d %s)", n, map[bool]string{true: "check", false: "checks"}[n == 1])
	}
	return "**CANNOT JUDGE**"
}

func icon(s verdict.Status) string {
	switch s {
	case verdict.Pass:
		return "✅"
	case verdict.Fail:
		return "❌"
	}
	return "⚠️"
}

func title(d *verdict.Diagnosis) string {
	if d.Class != verdict.ClassNone {
		return d.Class.String()
	}
	return d.Title
}

// cell makes text safe inside a table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
