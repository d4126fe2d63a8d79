// Package preflight checks a cluster before an upgrade, reading only, for
// what the failure catalogue says breaks upgrades and can be seen in
// advance: disruption budgets that allow no eviction, workloads one drain
// takes down, pods that receive traffic before they are ready or stop
// before their endpoints are gone, grace periods longer than the drain
// timeout, APIs the target version removed (in manifests, and as clients
// really call them, from the API server's own metric), and surge capacity.
// Each finding names the object, the evidence and the fix.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Severity is how bad a finding is for the upgrade.
type Severity int

const (
	// Info: worth knowing, or a rule that could not look.
	Info Severity = iota
	// Warning: clients will likely see errors during the upgrade.
	Warning
	// Blocker: the upgrade will fail or hang, or the app go down.
	Blocker
)

func (s Severity) String() string {
	switch s {
	case Blocker:
		return "blocker"
	case Warning:
		return "warning"
	}
	return "info"
}

// MarshalText writes the severity's name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	for _, v := range []Severity{Info, Warning, Blocker} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("severity %q: use info, warning or blocker", b)
}

// Finding is one problem found.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Class is the failure catalogue's class (0: none).
	Class    int    `json:"class,omitempty"`
	Object   string `json:"object"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
}

// Options say what to check against.
type Options struct {
	// Namespaces to check (empty: every namespace but the system ones).
	Namespaces []string
	// To is the Kubernetes version the upgrade goes to ("v1.34" or
	// "v1.34.4"): APIs removed by then are blockers. Empty: the removed
	// APIs rules judge against nothing and only report deprecations.
	To string
	// DrainTimeout is each node's drain deadline (AKS's
	// drainTimeoutInMinutes; default 30 minutes).
	DrainTimeout time.Duration
	// Manifests is a file or directory of YAML/JSON manifests to scan for
	// removed APIs ("": none).
	Manifests string
	// Surge, when set, checks that the surge nodes fit.
	Surge *Surge
}

// Report is what a pre-flight found.
type Report struct {
	Findings []Finding `json:"findings"`
	// Rules are the rules that ran; NotChecked says why a rule could not
	// look (it then found nothing, which is not a pass).
	Rules      []string          `json:"rules"`
	NotChecked map[string]string `json:"not_checked,omitempty"`
}

// Worst is the highest severity found (Info when nothing was).
func (r Report) Worst() Severity {
	w := Info
	for _, f := range r.Findings {
		if f.Severity > w {
			w = f.Severity
		}
	}
	return w
}

// Count is how many findings have that severity.
func (r Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Validate checks the options without contacting anything.
func (o Options) Validate() error {
	var errs []error
	if o.To != "" {
		if _, err := parseMinor(o.To); err != nil {
			errs = append(errs, fmt.Errorf("to %q: %v: write v1.MINOR (v1.34) or v1.MINOR.PATCH", o.To, err))
		}
	}
	if o.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain timeout %s: give a positive duration", o.DrainTimeout))
	}
	if o.Surge != nil {
		if err := o.Surge.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("surge: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run checks the cluster. Only reads are made. An error is for a cluster
// that cannot be read at all; a rule that cannot look is in NotChecked.
func Run(ctx context.Context, client kubernetes.Interface, o Options) (Report, error) {
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Minute
	}
	if err := o.Validate(); err != nil {
		return Report{}, fmt.Errorf("preflight: %w", err)
	}
	to, _ := parseMinor(o.To)
	rep := Report{NotChecked: map[string]string{}}
	w, err := readWorkloads(ctx, client, o.Namespaces)
	if err != nil {
		return Report{}, fmt.Errorf("preflight: reading the workloads: %w", err)
	}
	for _, r := range workloadRules {
		rep.Rules = append(rep.Rules, r.name)
		rep.Findings = append(rep.Findings, r.check(w, o)...)
	}
	rep.Rules = append(rep.Rules, RuleRemovedAPIsCalled)
	called, why := calledAPIs(ctx, client, to)
	rep.Findings = append(rep.Findings, called...)
	if why != "" {
		rep.NotChecked[RuleRemovedAPIsCalled] = why
	}
	if o.Manifests != "" {
		rep.Rules = append(rep.Rules, RuleRemovedAPIsInManifests)
		fs, err := manifestAPIs(o.Manifests, to)
		if err != nil {
			return Report{}, fmt.Errorf("preflight: %w", err)
		}
		rep.Findings = append(rep.Findings, fs...)
	}
	if o.Surge != nil {
		rep.Rules = append(rep.Rules, RuleSurgeCapacity)
		fs, why := surgeCapacity(ctx, client, *o.Surge)
		rep.Findings = append(rep.Findings, fs...)
		if why != "" {
			rep.NotChecked[RuleSurgeCapacity] = why
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Object < b.Object
	})
	return rep, nil
}

// Print writes the report for people: one block per finding, worst first,
// then what could not be checked and a one-line summary.
func (r Report) Print(w io.Writer) {
	for _, f := range r.Findings {
		class := ""
		if f.Class != 0 {
			class = fmt.Sprintf(" (class %d)", f.Class)
		}
		fmt.Fprintf(w, "%s  %s%s: %s\n", strings.ToUpper(f.Severity.String()), f.Rule, class, f.Object)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintf(tw, "  evidence:\t%s\n  fix:\t%s\n", f.Evidence, f.Fix)
		tw.Flush()
	}
	var rules []string
	for rule := range r.NotChecked {
		rules = append(rules, rule)
	}
	sort.Strings(rules)
	for _, rule := range rules {
		fmt.Fprintf(w, "NOT CHECKED  %s: %s\n", rule, r.NotChecked[rule])
	}
	fmt.Fprintf(w, "preflight: %d blockers, %d warnings, %d notes from %d rules", r.Count(Blocker), r.Count(Warning), r.Count(Info), len(r.Rules))
	if len(rules) > 0 {
		fmt.Fprintf(w, " (%d could not look)", len(rules))
	}
	fmt.Fprintln(w)
}
