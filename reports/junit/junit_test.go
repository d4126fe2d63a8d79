package junit_test

import (
	"bytes"
	"encoding/xml"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/junit"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

func TestGolden(t *testing.T) {
	for _, app := range []string{"no-drain", "well-behaved"} {
		t.Run(app, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, junit.Write(&b, reporttest.Restart(app, 100, 5*time.Second)))
			reporttest.Golden(t, app+".xml", b.Bytes())
		})
	}
}

// What both common JUnit schemas (Jenkins' junit-10.xsd, Ant's JUnit.xsd)
// require, checked on the document: the root, the attributes each element
// must have, the children in their order, decimal times, a timestamp
// without a zone, and counts that agree with the cases.
type suites struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name       string `xml:"name,attr"`
		Tests      string `xml:"tests,attr"`
		Failures   string `xml:"failures,attr"`
		Errors     string `xml:"errors,attr"`
		Time       string `xml:"time,attr"`
		Timestamp  string `xml:"timestamp,attr"`
		Hostname   string `xml:"hostname,attr"`
		ID         string `xml:"id,attr"`
		Package    string `xml:"package,attr"`
		Properties *struct {
			Property []struct {
				Name  *string `xml:"name,attr"`
				Value *string `xml:"value,attr"`
			} `xml:"property"`
		} `xml:"properties"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message *string `xml:"message,attr"`
				Type    *string `xml:"type,attr"`
				Text    string  `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message *string `xml:"message,attr"`
				Type    *string `xml:"type,attr"`
			} `xml:"error"`
		} `xml:"testcase"`
		SystemOut *string `xml:"system-out"`
		SystemErr *string `xml:"system-err"`
	} `xml:"testsuite"`
}

func TestTheSchemasRulesHold(t *testing.T) {
	r := reporttest.Restart("no-drain", 100, 5*time.Second)
	r.Verdict.Checks = append(r.Verdict.Checks, verdict.Check{Name: "readiness-extra", Status: verdict.CannotJudge, Summary: "no pod reached"})
	r.Error = "interrupted"
	var b bytes.Buffer
	require.NoError(t, junit.Write(&b, r))
	var doc suites
	require.NoError(t, xml.Unmarshal(b.Bytes(), &doc))

	decimal := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	stamp := regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$`)
	tests, failures, errors := 0, 0, 0
	require.NotEmpty(t, doc.Suites)
	for _, s := range doc.Suites {
		assert.NotEmpty(t, s.Name)
		assert.NotEmpty(t, s.Hostname)
		assert.NotEmpty(t, s.Package)
		assert.NotEmpty(t, s.ID)
		assert.Regexp(t, decimal, s.Time)
		assert.Regexp(t, stamp, s.Timestamp)
		require.NotNil(t, s.Properties, "properties is required (Ant)")
		for _, p := range s.Properties.Property {
			assert.NotNil(t, p.Name)
			assert.NotNil(t, p.Value)
		}
		assert.NotNil(t, s.SystemOut, "system-out is required (Ant)")
		assert.NotNil(t, s.SystemErr, "system-err is required (Ant)")
		f, e := 0, 0
		for _, c := range s.Cases {
			assert.NotEmpty(t, c.Name)
			assert.NotEmpty(t, c.Classname)
			assert.Regexp(t, decimal, c.Time)
			if c.Failure != nil {
				f++
				assert.NotNil(t, c.Failure.Message)
				assert.NotNil(t, c.Failure.Type, "type is required (Ant)")
			}
			if c.Error != nil {
				e++
				assert.NotNil(t, c.Error.Message)
				assert.NotNil(t, c.Error.Type)
			}
		}
		assert.Equal(t, itoa(len(s.Cases)), s.Tests)
		assert.Equal(t, itoa(f), s.Failures)
		assert.Equal(t, itoa(e), s.Errors)
		tests, failures, errors = tests+len(s.Cases), failures+f, errors+e
	}
	assert.Equal(t, 13, tests, "every check, and the run")
	assert.Equal(t, 3, failures, "the three failed checks")
	assert.Equal(t, 2, errors, "the check that could not judge, and the run that did not finish")

	// Element order inside a suite: properties, cases, system-out, system-err.
	order := regexp.MustCompile(`(?s)<testsuite [^>]*>\s*<properties>.*?</properties>\s*(<testcase .*?)\s*<system-out>.*?</system-out>\s*<system-err></system-err>\s*</testsuite>`)
	assert.Len(t, order.FindAllIndex(b.Bytes(), -1), len(doc.Suites))
}

func itoa(n int) string { return strconv.Itoa(n) }
