// Command repeat runs a suite several times and tabulates its verdicts, to
// prove that the same rehearsal gives the same verdict every time (a verdict
// that flips is a bug in the harness, never "flakiness"):
//
//	go run ./cmd/repeat -n 5 ./suites/rollingrestart      (make repeat SUITE=rollingrestart N=5)
//	go run ./cmd/repeat -tabulate rehearsal-repeats/20261123-1200
//
// Each run is `go test -count=1` of the suite with REHEARSE_RESULTS_DIR set,
// so every rehearsal records its outcome (suite.Record). The table has one
// row per rehearsal case and one column per run; the last column says
// whether the runs agree. The exit code is 0 only when every run of `go
// test` passed and every case got the same verdict in every run.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/kube-rehearse/rehearse/suites/suite"
)

func main() {
	n := flag.Int("n", 5, "how many times to run the suite")
	out := flag.String("out", "rehearsal-repeats", "directory for the runs' outcomes (a subdirectory per invocation)")
	tabulate := flag.String("tabulate", "", "only tabulate the outcomes already in this directory")
	timeout := flag.String("timeout", "80m", "go test -timeout of each run")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: repeat [-n N] [-out DIR] PACKAGE   |   repeat -tabulate DIR\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *tabulate != "" {
		if flag.NArg() > 0 {
			usage("-tabulate takes no package")
		}
		os.Exit(report(*tabulate, nil))
	}
	if flag.NArg() != 1 {
		usage("give one suite package, e.g. ./suites/rollingrestart")
	}
	if *n < 1 || *n > 50 {
		usage(fmt.Sprintf("-n %d: run 1 to 50 times", *n))
	}
	pkg := flag.Arg(0)
	// Absolute: go test runs the suite in its package's directory.
	dir, err := filepath.Abs(filepath.Join(*out, time.Now().Format("20060102-150405")))
	if err != nil {
		fatal(err)
	}
	var testErrs []string
	for i := 1; i <= *n; i++ {
		runDir := filepath.Join(dir, fmt.Sprintf("run-%02d", i))
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			fatal(err)
		}
		began := time.Now()
		fmt.Fprintf(os.Stderr, "run %d/%d of %s (log: %s)\n", i, *n, pkg, filepath.Join(runDir, "go-test.log"))
		log, err := os.Create(filepath.Join(runDir, "go-test.log"))
		if err != nil {
			fatal(err)
		}
		cmd := exec.Command("go", "test", "-count=1", "-p", "1", "-timeout", *timeout, "-v", pkg)
		cmd.Env = append(os.Environ(), "REHEARSE_RESULTS_DIR="+runDir)
		cmd.Stdout, cmd.Stderr = log, log
		err = cmd.Run()
		log.Close()
		status := "passed"
		if err != nil {
			status = "FAILED: " + err.Error()
			testErrs = append(testErrs, fmt.Sprintf("run %d: go test %s", i, status))
		}
		fmt.Fprintf(os.Stderr, "  go test %s in %s\n", status, time.Since(began).Round(time.Second))
	}
	os.Exit(report(dir, testErrs))
}

// report prints the table of every run under dir and returns the exit code.
func report(dir string, testErrs []string) int {
	runs, err := filepath.Glob(filepath.Join(dir, "run-*", "outcomes.jsonl"))
	if err != nil || len(runs) == 0 {
		fmt.Fprintf(os.Stderr, "repeat: no outcomes under %s (run-*/outcomes.jsonl): did the suite record them (suite.Record)?\n", dir)
		return 1
	}
	sort.Strings(runs)
	table := map[string][]string{} // case -> verdict per run
	sent := map[string][]string{}
	var cases []string
	for ri, path := range runs {
		outs, err := read(path)
		if err != nil {
			fatal(err)
		}
		for _, o := range outs {
			if _, ok := table[o.Case]; !ok {
				cases = append(cases, o.Case)
				table[o.Case] = make([]string, len(runs))
				sent[o.Case] = make([]string, len(runs))
			}
			table[o.Case][ri] = o.Verdict()
			sent[o.Case][ri] = fmt.Sprintf("%d/%d", o.Errors["gateway"]+o.Errors["service"], o.Requests["gateway"]+o.Requests["service"])
		}
	}
	fmt.Printf("Verdicts of %d runs (%s); cell: verdict [failed/sent requests, both clients]\n\n", len(runs), dir)
	fmt.Print("| case |")
	for i := range runs {
		fmt.Printf(" run %d |", i+1)
	}
	fmt.Print(" agree |\n|---|")
	for range runs {
		fmt.Print("---|")
	}
	fmt.Print("---|\n")
	code := 0
	for _, c := range cases {
		agree := true
		for _, v := range table[c] {
			if v != table[c][0] {
				agree = false
			}
		}
		mark := "yes"
		if !agree {
			mark, code = "NO", 1
		}
		fmt.Printf("| %s |", c)
		for i, v := range table[c] {
			if v == "" {
				v = "(missing)"
			}
			fmt.Printf(" %s [%s] |", v, sent[c][i])
		}
		fmt.Printf(" %s |\n", mark)
	}
	for _, e := range testErrs {
		fmt.Println("\n" + e)
		code = 1
	}
	if code == 0 {
		fmt.Printf("\nevery case got the same verdict in all %d runs\n", len(runs))
	}
	return code
}

func read(path string) ([]suite.Outcome, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []suite.Outcome
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o suite.Outcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, o)
	}
	return out, sc.Err()
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "repeat:", msg)
	flag.Usage()
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "repeat:", err)
	os.Exit(1)
}
