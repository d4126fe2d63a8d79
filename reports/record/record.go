// Package record is the run record: one versioned JSON document per
// rehearsal holding everything it measured and decided: which tool ran it,
// against which cluster (Kubernetes versions, node images), the plan and
// every scenario setting, the thresholds, the loads per client kind, the
// whole timeline and the verdict with its diagnoses and upgrade figures.
//
// Every report (HTML, JUnit XML, Markdown) is rendered from a record, and a
// saved record can be judged again with other thresholds (Rejudge): the
// timeline is the evidence, the verdict a pure function of it.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// Schema names the document type; SchemaVersion is the version this build
// writes. Read accepts versions 1 to SchemaVersion and refuses later ones
// (a newer tool's record may mean something this build cannot know).
const (
	Schema        = "rehearse.run"
	SchemaVersion = 1
)

// FileName is the record's name in a rehearsal's results directory.
const FileName = "run.json"

// Record is one rehearsal.
type Record struct {
	Schema        string `json:"schema"`
	SchemaVersion int    `json:"schema_version"`
	Tool          Tool   `json:"tool"`

	// Run is the run's unique ID; Name says what was rehearsed in words
	// that stay the same from one run to the next ("upgrade/surge-1"), so
	// that nightly runs of the same rehearsal can be compared.
	Run     string    `json:"run"`
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`

	Target    Target     `json:"target"`
	App       App        `json:"app"`
	Plan      Plan       `json:"plan"`
	Scenarios []Scenario `json:"scenarios"`

	Thresholds verdict.Thresholds `json:"thresholds"`
	Checks     []string           `json:"checks"` // the checks judged, as asked for
	Loads      []Load             `json:"loads"`
	Verdict    verdict.Report     `json:"verdict"`

	// Error: the rehearsal did not run to its end (interrupted, a client
	// could not start); what was observed until then is judged.
	Error string `json:"error,omitempty"`
	// RevertError: a change could not be undone (`rehearse restore`).
	RevertError string `json:"revert_error,omitempty"`

	Timeline *timeline.Timeline `json:"timeline"`
}

// Tool is the program that wrote the record.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"` // module version, or the VCS revision of a build from a checkout
	Go      string `json:"go"`
}

// Target is the cluster rehearsed on.
type Target struct {
	Name string `json:"name"` // "kind rehearse-run"
	// Nodes before the first scenario and after the last one: an upgrade
	// changes them.
	NodesBefore []Node `json:"nodes_before"`
	NodesAfter  []Node `json:"nodes_after"`
}

// Node is one node of the cluster.
type Node struct {
	Name         string `json:"name"`
	Pool         string `json:"pool,omitempty"`
	ControlPlane bool   `json:"control_plane,omitempty"`
	Version      string `json:"version"` // the kubelet's
	Image        string `json:"image"`   // the node image
}

// App is the application rehearsed.
type App struct {
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	Service    string `json:"service"`
	// Description says what it is: "rehearsal app, preset no-drain" or
	// "manifests ./deploy".
	Description string `json:"description"`
}

// Plan is how the rehearsal ran.
type Plan struct {
	Rate         int           `json:"rate"` // per client kind, requests per second
	Clients      []string      `json:"clients"`
	GatewayDelay time.Duration `json:"gateway_delay_ns"`
	Warmup       time.Duration `json:"warmup_ns"` // the longest allowed
	Baseline     time.Duration `json:"baseline_ns"`
	Recovery     time.Duration `json:"recovery_ns"`
}

// Scenario is one scenario as planned, and how its steps went.
type Scenario struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name,omitempty"`
	Settings []Setting `json:"settings,omitempty"`
	Steps    []string  `json:"steps"`
	// FailedStep and Error: the step that failed and why (later steps did
	// not run).
	FailedStep string `json:"failed_step,omitempty"`
	Error      string `json:"error,omitempty"`
}

// ID is the scenario's name, or its kind (as check and phase names use it).
func (s Scenario) ID() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Kind
}

// Setting is one scenario setting.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Load is what one client kind did.
type Load struct {
	Client string `json:"client"`
	load.Summary
}

// Load returns the summary of a client kind.
func (r *Record) Load(client timeline.ClientKind) (load.Summary, bool) {
	for _, l := range r.Loads {
		if l.Client == client.String() {
			return l.Summary, true
		}
	}
	return load.Summary{}, false
}

// Duration is how long the rehearsal took.
func (r *Record) Duration() time.Duration { return r.Ended.Sub(r.Started) }

// ThisTool is the running program, for Record.Tool: its module's version,
// or for a build from a checkout the VCS revision it was built from.
func ThisTool() Tool {
	t := Tool{Name: "rehearse", Version: "devel", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return t
	}
	const module = "github.com/kube-rehearse/rehearse"
	if bi.Main.Path == module && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		t.Version = bi.Main.Version
	}
	for _, d := range bi.Deps { // the harness used as a library
		if d.Path == module && d.Version != "" && d.Version != "(devel)" {
			t.Version = d.Version
		}
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if t.Version == "devel" && rev != "" {
		t.Version = "devel+" + rev[:min(12, len(rev))]
		if modified == "true" {
			t.Version += "-dirty"
		}
	}
	return t
}

// Rejudge judges the record's timeline again with other thresholds (and
// checks: the record's own when none are given) and returns a copy with
// the new verdict. The record itself is not changed.
func (r *Record) Rejudge(th verdict.Thresholds, checks ...string) *Record {
	if len(checks) == 0 {
		checks = r.Checks
	}
	out := *r
	out.Thresholds, out.Checks = th, checks
	out.Verdict = verdict.Judge(r.Timeline, th, checks...)
	return &out
}

// Encode writes the record as JSON.
func (r *Record) Encode(w io.Writer) error {
	if r.Timeline == nil {
		return errors.New("record: no timeline: a run record holds the whole timeline")
	}
	r.Schema, r.SchemaVersion = Schema, SchemaVersion
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// Decode reads a record, checking that it is one and of a version this
// build reads.
func Decode(rd io.Reader) (*Record, error) {
	var r Record
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("not a run record (%v): give the %s a rehearsal wrote", err, FileName)
	}
	switch {
	case r.Schema != Schema:
		return nil, fmt.Errorf("not a run record (schema %q, want %q): give the %s a rehearsal wrote", r.Schema, Schema, FileName)
	case r.SchemaVersion < 1 || r.SchemaVersion > SchemaVersion:
		return nil, fmt.Errorf("run record of schema version %d: this build reads versions 1 to %d (use a newer rehearse)", r.SchemaVersion, SchemaVersion)
	case r.Timeline == nil:
		return nil, errors.New("run record without a timeline: nothing to judge or draw")
	}
	return &r, nil
}

// Write saves the record to a file.
func Write(path string, r *Record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Encode(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read loads a record from a file, or from the FileName inside a
// directory.
func Read(path string) (*Record, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path += string(os.PathSeparator) + FileName
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}
