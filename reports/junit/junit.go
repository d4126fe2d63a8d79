// Package junit writes a run record as JUnit XML, the test report format
// CI systems read (GitLab, Jenkins, GitHub actions that publish test
// results, Azure Pipelines): one test suite per scenario, one test case per
// check. A failed check is a <failure> carrying its diagnosis, evidence and
// fix; a check that could not judge is an <error>, never a pass, so CI
// shows it as broken. The documents validate against both common JUnit
// schemas (Jenkins' junit-10 and Ant's): every attribute and element either
// requires is written.
package junit

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// FileName is the report's name in a rehearsal's results directory.
const FileName = "junit.xml"

// testSuites is the root. It carries no totals: Ant's schema allows no
// attributes on it, and viewers add the suites' counts up themselves.
type testSuites struct {
	XMLName xml.Name    `xml:"testsuites"`
	Suites  []testSuite `xml:"testsuite"`
}

type testSuite struct {
	Name       string     `xml:"name,attr"`
	Tests      int        `xml:"tests,attr"`
	Failures   int        `xml:"failures,attr"`
	Errors     int        `xml:"errors,attr"`
	Time       string     `xml:"time,attr"`
	Timestamp  string     `xml:"timestamp,attr"`
	Hostname   string     `xml:"hostname,attr"`
	ID         int        `xml:"id,attr"`
	Package    string     `xml:"package,attr"`
	Properties []property `xml:"properties>property"`
	Cases      []testCase `xml:"testcase"`
	SystemOut  string     `xml:"system-out"`
	SystemErr  string     `xml:"system-err"`
}

type property struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type testCase struct {
	Name      string   `xml:"name,attr"`
	Classname string   `xml:"classname,attr"`
	Time      string   `xml:"time,attr"`
	Failure   *problem `xml:"failure,omitempty"`
	Error     *problem `xml:"error,omitempty"`
}

type problem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// Write writes the record's JUnit XML.
func Write(w io.Writer, r *record.Record) error {
	doc := build(r)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func build(r *record.Record) testSuites {
	name := r.Name
	if name == "" {
		name = "rehearsal"
	}
	host := hostOf(r.Target.Name)
	stamp := r.Started.UTC().Format("2006-01-02T15:04:05")
	props := []property{{"run", r.Run}, {"outcome", string(r.Verdict.Outcome)}, {"tool", r.Tool.Name + " " + r.Tool.Version}}
	if r.Verdict.Reason != "" {
		props = append(props, property{"reason", r.Verdict.Reason})
	}
	for _, sc := range r.Scenarios {
		props = append(props, property{"scenario", sc.ID()})
		for _, s := range sc.Settings {
			props = append(props, property{sc.ID() + "." + s.Name, s.Value})
		}
	}

	// Checks judged once per rehearsal go to their own suite; the others
	// to their scenario's ("drain/error-rate/gateway" to drain's; with a
	// single scenario they have no prefix).
	groups := map[string][]verdict.Check{}
	var order []string
	scenarioOf := func(check string) string {
		if len(r.Scenarios) > 1 {
			if sc, _, ok := strings.Cut(check, "/"); ok {
				for _, s := range r.Scenarios {
					if s.ID() == sc {
						return sc
					}
				}
			}
		}
		if verdict.JudgedOnce(check) {
			return ""
		}
		if len(r.Scenarios) > 0 {
			return r.Scenarios[0].ID()
		}
		return "rehearsal"
	}
	for _, c := range r.Verdict.Checks {
		g := scenarioOf(c.Name)
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], c)
	}
	var doc testSuites
	for i, g := range order {
		suiteName, class := name+" / rehearsal checks", "rehearse."+name
		if g != "" {
			suiteName, class = name+" / "+g, "rehearse."+name+"."+g
		}
		s := testSuite{Name: suiteName, ID: i, Package: "rehearse." + name, Timestamp: stamp, Hostname: host,
			Time: seconds(r.Duration()), Properties: props}
		if i == 0 {
			s.SystemOut = r.Verdict.String() // the whole verdict, once
		}
		for _, c := range groups[g] {
			tc := testCase{Name: c.Name, Classname: class, Time: "0"}
			switch c.Status {
			case verdict.Fail:
				tc.Failure = &problem{Message: c.Summary, Type: kind(c), Text: explain(c)}
				s.Failures++
			case verdict.CannotJudge:
				tc.Error = &problem{Message: "cannot judge: " + c.Summary, Type: "cannot judge", Text: explain(c)}
				s.Errors++
			}
			s.Cases = append(s.Cases, tc)
		}
		s.Tests = len(s.Cases)
		doc.Suites = append(doc.Suites, s)
	}
	if r.Error != "" || r.RevertError != "" {
		// A rehearsal that did not finish, or left a change behind, is
		// never green, whatever its checks said.
		s := testSuite{Name: name + " / run", ID: len(doc.Suites), Package: "rehearse." + name, Timestamp: stamp,
			Hostname: host, Time: seconds(r.Duration()), Properties: props}
		add := func(n, msg string) {
			s.Cases = append(s.Cases, testCase{Name: n, Classname: "rehearse." + name, Time: "0",
				Error: &problem{Message: msg, Type: "rehearsal", Text: msg}})
			s.Errors++
		}
		if r.Error != "" {
			add("rehearsal ran to its end", r.Error)
		}
		if r.RevertError != "" {
			add("every change was undone", r.RevertError+": run `rehearse restore`")
		}
		s.Tests = len(s.Cases)
		doc.Suites = append(doc.Suites, s)
	}
	return doc
}

func kind(c verdict.Check) string {
	if c.Diagnosis == nil {
		return "failed"
	}
	if c.Diagnosis.Class != verdict.ClassNone {
		return c.Diagnosis.Class.String()
	}
	return c.Diagnosis.Title
}

// explain is the text of a failure: the diagnosis, its evidence, the fix.
func explain(c verdict.Check) string {
	var b strings.Builder
	b.WriteString(c.Name + ": " + c.Summary + "\n")
	if d := c.Diagnosis; d != nil {
		b.WriteString(kind(c) + "\n")
		for _, e := range d.Evidence {
			b.WriteString("  - " + e.Text + "\n")
		}
		if d.Fix != "" {
			b.WriteString("fix: " + d.Fix + "\n")
		}
	}
	for _, l := range c.Details {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", max(d, 0).Seconds()) }

// hostOf is the cluster's name without its kind ("kind rehearse-run" ->
// "rehearse-run"), the schemas' hostname.
func hostOf(target string) string {
	if _, name, ok := strings.Cut(target, " "); ok {
		return name
	}
	if target == "" {
		return "unknown"
	}
	return target
}
