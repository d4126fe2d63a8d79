// Package reports turns a run record (package record) into what people
// and CI read: the text verdict, one self-contained HTML report with the
// timeline charts (package html), JUnit XML for CI test viewers (package
// junit) and a Markdown summary for job summaries and pull-request
// comments (package markdown). Reports are pure renderings of a record, so
// a saved run can be rendered again at any time (`rehearse report`), or
// judged again with other thresholds first (`rehearse judge`); nightly runs
// are compared with package compare.
package reports

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/reports/html"
	"github.com/kube-rehearse/rehearse/reports/junit"
	"github.com/kube-rehearse/rehearse/reports/markdown"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// TextFileName is the text verdict's name in a results directory.
const TextFileName = "verdict.txt"

// Files are the paths Write wrote.
type Files struct {
	Record, Text, HTML, JUnit, Markdown string
}

// List is the files, record first.
func (f Files) List() []string {
	var out []string
	for _, p := range []string{f.Record, f.Text, f.HTML, f.JUnit, f.Markdown} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Write saves the record and every report of it into dir (created when
// missing): run.json, verdict.txt, report.html, junit.xml, summary.md.
func Write(dir string, r *record.Record) (Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, err
	}
	f := Files{Record: filepath.Join(dir, record.FileName)}
	if err := record.Write(f.Record, r); err != nil {
		return Files{}, fmt.Errorf("writing %s: %w", f.Record, err)
	}
	rf, err := Render(dir, r)
	rf.Record = f.Record
	return rf, err
}

// Render writes the reports of a record (not the record itself) into dir.
func Render(dir string, r *record.Record) (Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, err
	}
	f := Files{
		Text:     filepath.Join(dir, TextFileName),
		HTML:     filepath.Join(dir, html.FileName),
		JUnit:    filepath.Join(dir, junit.FileName),
		Markdown: filepath.Join(dir, markdown.FileName),
	}
	for _, w := range []struct {
		path   string
		render func(io.Writer) error
	}{
		{f.Text, func(w io.Writer) error { _, err := io.WriteString(w, Text(r)); return err }},
		{f.HTML, func(w io.Writer) error { return html.Render(w, r) }},
		{f.JUnit, func(w io.Writer) error { return junit.Write(w, r) }},
		{f.Markdown, func(w io.Writer) error {
			return markdown.Write(w, r, markdown.Options{ReportLink: html.FileName})
		}},
	} {
		var b bytes.Buffer
		if err := w.render(&b); err != nil {
			return Files{}, fmt.Errorf("rendering %s: %w", w.path, err)
		}
		if err := os.WriteFile(w.path, b.Bytes(), 0o644); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// Text is the verdict people read in a terminal: the loads, the steps that
// failed, the verdict line by line, and the explanation (evidence, fix) of
// every failed or unjudged check.
func Text(r *record.Record) string {
	var b strings.Builder
	for _, c := range timeline.ClientKinds() {
		if sum, ok := r.Load(c); ok {
			fmt.Fprintf(&b, "load %s: %s\n", c, sum)
		}
	}
	for _, sc := range r.Scenarios {
		if sc.FailedStep != "" || sc.Error != "" {
			fmt.Fprintf(&b, "scenario %s: step %q failed: %s\n", sc.ID(), sc.FailedStep, sc.Error)
		}
	}
	if r.RevertError != "" {
		fmt.Fprintf(&b, "REVERT FAILED: %s: run `rehearse restore`\n", r.RevertError)
	}
	return b.String() + r.Verdict.String() + r.Verdict.Explain()
}
