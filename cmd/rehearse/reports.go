package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports"
	"github.com/kube-rehearse/rehearse/reports/compare"
	"github.com/kube-rehearse/rehearse/reports/html"
	"github.com/kube-rehearse/rehearse/reports/record"
)

// readRecord loads a run record named on the command line; a missing or
// unreadable one is bad input.
func readRecord(arg string) (*record.Record, error) {
	r, err := record.Read(arg)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageErrorf("%s: no such file: give a rehearsal's %s (or its results directory)", arg, record.FileName)
		}
		return nil, usageError(err)
	}
	return r, nil
}

func newJudgeCmd(stdout io.Writer) *cobra.Command {
	var thresholds, checks []string
	var out string
	cmd := &cobra.Command{
		Use:   "judge RUN",
		Short: "Judge a saved rehearsal again, with other thresholds or checks",
		Long: `judge reads a run record (the run.json a rehearsal wrote, or its results
directory) and judges its timeline again: with other thresholds (--threshold
NAME=VALUE, repeatable), or other checks. It prints the verdict and ends as
a rehearsal does (exit 0 passed, 1 failed, 3 cannot judge). Nothing is
contacted: the timeline holds everything the verdict needs.

Thresholds: ` + strings.Join(verdict.ThresholdNames(), ", ") + `
(durations as 500ms or 2s, ratios as 0.001 or 0.1%).

With --out, the re-judged record and its reports are written to that
directory; the original record is never changed.

` + exitCodesShown,
		Example: `  rehearse judge rehearsal-results/20261201-101500-a1b2c3
  rehearse judge run.json --threshold max-outage=2s --threshold max-error-rate=1%
  rehearse judge run.json --checks error-rate,longest-outage --out rejudged/`,
		Args: exactArgs(1, "RUN: the run.json of a rehearsal"),
		RunE: doing(func(cmd *cobra.Command, args []string) error {
			r, err := readRecord(args[0])
			if err != nil {
				return err
			}
			th := r.Thresholds
			var problems []string
			for _, kv := range thresholds {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					problems = append(problems, fmt.Sprintf("--threshold %q: write NAME=VALUE (names: %s)", kv, strings.Join(verdict.ThresholdNames(), ", ")))
					continue
				}
				if err := th.Set(k, v); err != nil {
					problems = append(problems, "--threshold: "+err.Error())
				}
			}
			if len(checks) > 0 {
				if err := verdict.ValidateChecks(checks); err != nil {
					problems = append(problems, fmt.Sprintf("--checks: %v (see: rehearse checks)", err))
				}
			}
			if out != "" && sameDir(out, args[0]) {
				problems = append(problems, "--out is the record's own directory: give another one (the original record is kept as it was)")
			}
			if len(problems) > 0 {
				return usageErrorf("judge: %s", strings.Join(problems, "\n  "))
			}
			again := r.Rejudge(th, checks...)
			fmt.Fprint(stdout, reports.Text(again))
			where := "above"
			if out != "" {
				files, err := reports.Write(out, again)
				if err != nil {
					return err
				}
				where = "above and " + out
				fmt.Fprintf(stdout, "written: %s\n", strings.Join(files.List(), ", "))
			}
			line, code := verdictLine(again.Verdict, where)
			fmt.Fprintln(stdout, line)
			return silentExit(code)
		}),
	}
	cmd.Flags().StringArrayVar(&thresholds, "threshold", nil, "a threshold, NAME=VALUE (repeatable): "+strings.Join(verdict.ThresholdNames(), ", "))
	cmd.Flags().StringSliceVar(&checks, "checks", nil, "checks to judge, comma-separated (default: the record's; see: rehearse checks)")
	cmd.Flags().StringVar(&out, "out", "", "write the re-judged record and its reports to `DIR`")
	_ = cmd.RegisterFlagCompletionFunc("checks", completeList(verdict.CheckNames))
	_ = cmd.RegisterFlagCompletionFunc("threshold", completeList(verdict.ThresholdNames))
	return cmd
}

func sameDir(dir, recordArg string) bool {
	a, err1 := filepath.Abs(dir)
	b, err2 := filepath.Abs(recordArg)
	if err1 != nil || err2 != nil {
		return false
	}
	if fi, err := os.Stat(b); err == nil && !fi.IsDir() {
		b = filepath.Dir(b)
	}
	return a == b
}

func newReportCmd(stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "report RUN",
		Short: "Render a saved rehearsal's reports again (HTML, JUnit XML, Markdown, text)",
		Long: `report reads a run record (run.json, or a rehearsal's results directory) and
writes its reports: report.html (the timeline charts, the verdict, every
diagnosis), junit.xml (for CI test viewers), summary.md (for a CI job summary
or a pull-request comment) and verdict.txt, into --out (default: the
record's own directory). The verdict is the record's; to judge again, use
` + "`rehearse judge`" + `.`,
		Example: `  rehearse report rehearsal-results/20261201-101500-a1b2c3
  rehearse report nightly/run.json --out /tmp/report`,
		Args: exactArgs(1, "RUN: the run.json of a rehearsal"),
		RunE: doing(func(cmd *cobra.Command, args []string) error {
			r, err := readRecord(args[0])
			if err != nil {
				return err
			}
			dir := out
			if dir == "" {
				dir = args[0]
				if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
					dir = filepath.Dir(dir)
				}
			}
			files, err := reports.Render(dir, r)
			if err != nil {
				return err
			}
			for _, f := range files.List() {
				fmt.Fprintln(stdout, f)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the reports (`DIR`, default: the record's directory)")
	return cmd
}

func newCompareCmd(stdout io.Writer) *cobra.Command {
	var tolerances []string
	cmd := &cobra.Command{
		Use:   "compare BASELINE CURRENT",
		Short: "Compare two saved rehearsals and flag regressions",
		Long: `compare sets two run records side by side (a nightly run against the last
good one): checks whose status changed, and per scenario every judged figure
that changed: error rates, the longest outage, readiness gaps, shutdown
times, drain and upgrade times. A check that passed and no longer does is a
regression; so is a figure that got worse by more than its tolerance (the
defaults keep a small machine's run-to-run noise out; change one with
--tolerance FIGURE=VALUE: an absolute amount in the figure's unit, such as
error_rate=0.001 or upgrade_total=30s, or a share of the baseline, such as
longest_drain=50%).

Exit codes: 0 no regression, 1 a regression (listed), 2 bad input.`,
		Example: `  rehearse compare nightly/2026-11-30/run.json nightly/2026-12-01/run.json
  rehearse compare last-good/ tonight/ --tolerance upgrade_total=60s`,
		Args: exactArgs(2, "BASELINE and CURRENT: two run.json files"),
		RunE: doing(func(cmd *cobra.Command, args []string) error {
			rules := append(compare.Rules{}, compare.DefaultRules...)
			for _, t := range tolerances {
				if err := rules.Set(t); err != nil {
					return usageErrorf("--tolerance: %v", err)
				}
			}
			base, err := readRecord(args[0])
			if err != nil {
				return err
			}
			cur, err := readRecord(args[1])
			if err != nil {
				return err
			}
			res := compare.Compare(base, cur, rules)
			fmt.Fprint(stdout, res.String())
			for _, r := range res.Regressions() {
				fmt.Fprintf(stdout, "  regression: %s\n", r)
			}
			if res.Regressed() {
				return silentExit(exitFailed)
			}
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&tolerances, "tolerance", nil, "FIGURE=VALUE: how much worse a figure may get (repeatable), e.g. error_rate=0.001, upgrade_total=30s, longest_drain=50%")
	return cmd
}

func newTrendCmd(stdout io.Writer) *cobra.Command {
	var out, judge string
	var judgeLatest bool
	var opt compare.HistoryOptions
	cmd := &cobra.Command{
		Use:   "trend DIR",
		Short: "Chart the figures of many saved rehearsals; judge a run against its history",
		Long: `trend reads every run record (run.json) under DIR, for example a nightly
job's results kept night after night, and writes an HTML page (--out,
default DIR/trend.html) with, per rehearsal, its runs and a chart of each
judged figure across them.

With --judge RUN (or --judge-latest: the newest run of each rehearsal) the
run is judged against the earlier runs of the same rehearsal: a figure worse
than the --percentile (95) of the last --last (20) runs, beyond the noise
allowance ` + "`rehearse compare`" + ` uses, is flagged, and so is a check failing now
that passed in every one of them. With fewer than --min-runs (5) earlier
runs it cannot judge.

Exit codes: 0 written (and nothing flagged), 1 a judged run regressed, 2 bad
input, 3 too little history to judge.`,
		Example: `  rehearse trend nightly/
  rehearse trend nightly/ --judge-latest
  rehearse trend nightly/ --judge nightly/2026-12-01/run.json --percentile 90`,
		Args: exactArgs(1, "DIR: a directory holding run records"),
		RunE: doing(func(cmd *cobra.Command, args []string) error {
			if judge != "" && judgeLatest {
				return usageErrorf("--judge and --judge-latest: give one")
			}
			if opt.Percentile < 0 || opt.Percentile > 100 {
				return usageErrorf("--percentile %v: give 1 to 100", opt.Percentile)
			}
			recs, err := findRecords(args[0])
			if err != nil {
				return err
			}
			var judged []*record.Record
			switch {
			case judge != "":
				r, err := readRecord(judge)
				if err != nil {
					return err
				}
				judged = append(judged, r)
			case judgeLatest:
				latest := map[string]*record.Record{}
				for _, r := range recs {
					if l := latest[r.Name]; l == nil || r.Started.After(l.Started) {
						latest[r.Name] = r
					}
				}
				for _, r := range recs {
					if latest[r.Name] == r {
						judged = append(judged, r)
					}
				}
			}
			var hs []compare.History
			code := exitPassed
			for _, r := range judged {
				h := compare.JudgeHistory(recs, r, opt)
				hs = append(hs, h)
				fmt.Fprint(stdout, h.String())
				switch {
				case h.Regressed():
					code = exitFailed
				case h.CannotJudge != "" && code == exitPassed:
					code = exitCannotRun
				}
			}
			if out == "" {
				out = filepath.Join(args[0], html.TrendFileName)
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			title := fmt.Sprintf("rehearsal trends: %d runs in %s", len(recs), args[0])
			if err := html.RenderTrend(f, title, compare.Trend(recs), hs); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "trend of %d runs: %s\n", len(recs), out)
			return silentExit(code)
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "the HTML page to write (`FILE`, default DIR/trend.html)")
	cmd.Flags().StringVar(&judge, "judge", "", "judge this `RUN` (a run.json) against the history in DIR")
	cmd.Flags().BoolVar(&judgeLatest, "judge-latest", false, "judge the newest run of each rehearsal against the ones before it")
	cmd.Flags().IntVar(&opt.Last, "last", 20, "how many earlier runs make the history")
	cmd.Flags().Float64Var(&opt.Percentile, "percentile", 95, "flag a figure worse than this percentile of the history")
	cmd.Flags().IntVar(&opt.MinRuns, "min-runs", 5, "fewest earlier runs to judge against")
	return cmd
}

// findRecords reads every run record under dir; there must be one.
func findRecords(dir string) ([]*record.Record, error) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil, usageErrorf("%s: not a directory: give the directory the rehearsals' results are kept in", dir)
	}
	var recs []*record.Record
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != record.FileName {
			return err
		}
		r, err := record.Read(path)
		if err != nil {
			return usageError(err)
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, usageErrorf("%s: no %s under it: give the directory the rehearsals wrote their results to", dir, record.FileName)
	}
	return recs, nil
}

// exactArgs wants n arguments and says which when they are not there (bad
// input, exit 2).
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %s (got %d arguments); see `%s --help`", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}
