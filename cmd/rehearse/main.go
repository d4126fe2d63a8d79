// Command rehearse runs upgrade and chaos rehearsals on local kind clusters
// and prepares what they need on a machine without a container registry.
//
//	rehearse run                            a rehearsal (make rehearse)
//	rehearse restore                        undo what interrupted rehearsals left
//	rehearse preflight                      read-only checks before an upgrade
//	rehearse judge | report RUN             judge a saved run again; render its reports
//	rehearse compare BASELINE CURRENT       flag regressions between two runs
//	rehearse trend DIR                      chart many runs; judge one against its history
//	rehearse scenarios | checks             what can be rehearsed and judged
//	rehearse cluster up|smoke|add-worker|remove-node|down
//	rehearse image node --k8s-version V     build (or find) the kind node image for V
//	rehearse engine                         make sure a Docker engine answers
//
// The verbs only parse flags and call the library (package harness and its
// parts); `rehearse <verb> --help` tells the rest.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, as the root command's help documents them.
const (
	exitPassed     = 0
	exitFailed     = 1 // a verdict (or a smoke check) failed
	exitBadInput   = 2 // nothing was changed
	exitCannotRun  = 3 // could not run, interrupted, cannot judge, or left something undone
	exitCodesShown = `Exit codes:
  0  the rehearsal passed (for other commands: done as asked)
  1  a verdict failed: the application did not survive the rehearsal
     (for ` + "`cluster smoke`" + `: a smoke check failed)
  2  bad input (an unknown flag, command, preset, scenario, setting or check,
     a value out of range, a missing file): nothing was started or changed
  3  the rehearsal could not run, was interrupted, or cannot judge what it
     saw ("CANNOT JUDGE: <why>"); also when a change could not be undone
     (it stays in the cluster's journal: run ` + "`rehearse restore`" + `)`
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries the exit code of a command. A nil err means everything
// the user needs was printed already (the run's final line).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is bad input: exit code 2. Its message names the problem and
// the fix.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitBadInput, err: fmt.Errorf(format, args...)}
}

// usageError turns a validation error of the library into bad input.
func usageError(err error) error { return &exitError{code: exitBadInput, err: err} }

// silentExit ends with a code after the command printed its own conclusion.
func silentExit(code int) error {
	if code == exitPassed {
		return nil
	}
	return &exitError{code: code}
}

// execute runs the command line and returns the exit code. Errors cobra
// finds itself (unknown commands and flags, bad flag values, extra
// arguments) carry no code: they are bad input. An error a command returns
// without a code is one it met while doing its work: it could not run.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitPassed
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		fmt.Fprintf(stderr, "rehearse: %v\nsee `%s --help`\n", err, cmd.CommandPath())
		return exitBadInput
	}
	if ee.err != nil {
		fmt.Fprintf(stderr, "rehearse: %v\n", ee.err)
	}
	return ee.code
}

// doing wraps a command's work: an error without a code means the command
// could not do what it was asked (exit 3), not that its input was bad.
func doing(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *exitError
		if err != nil && !errors.As(err, &ee) {
			err = &exitError{code: exitCannotRun, err: err}
		}
		return err
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "rehearse",
		Short: "Upgrade and chaos rehearsals for Kubernetes applications",
		Long: `rehearse finds out before production whether an application survives what a
Kubernetes upgrade does to it: it deploys the application on a local kind
cluster, puts it under load, does to the cluster what an upgrade does (every
pod replaced, nodes cordoned, added and removed) and judges by what the
clients saw.

  rehearse run                   a rehearsal: the rehearsal app, rolling restart
  rehearse run --preset abrupt-shutdown
  rehearse restore               undo what an interrupted rehearsal left

` + exitCodesShown,
		// Errors and usage are printed by execute, once, with the fix.
		SilenceErrors: true,
		SilenceUsage:  true,
		// No Args: cobra then reports an unknown command with suggestions.
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v\nsee `%s --help` for its flags", err, cmd.CommandPath())
	})
	root.AddCommand(
		newRunCmd(stdout, stderr),
		newUpgradeCmd(stdout, stderr),
		newWatchCmd(stdout, stderr),
		newPerformCmd(stdout, stderr),
		newRestoreCmd(stdout, stderr),
		newPreflightCmd(stdout, stderr),
		newScenariosCmd(stdout),
		newChecksCmd(stdout),
		newClusterCmd(stdout, stderr),
		newImageCmd(stdout, stderr),
		newEngineCmd(stderr),
		newJudgeCmd(stdout),
		newReportCmd(stdout),
		newCompareCmd(stdout),
		newTrendCmd(stdout),
	)
	return root
}

// group is a command that only holds others: alone it prints its help; with
// an argument that is none of its commands it is bad input (cobra would
// otherwise print the help and exit 0).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		// It is runnable only to refuse unknown commands; it takes no flags.
		DisableFlagsInUseLine: true,
		RunE:                  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}
