// Command rehearse runs upgrade and chaos rehearsals on local kind clusters
// and prepares what they need on a machine without a container registry.
//
//	rehearse engine                         make sure a Docker engine answers
//	rehearse image node --k8s-version V     build (or find) the kind node image for V
//	rehearse cluster up|down|smoke          a local cluster for rehearsals
//	rehearse run                            the default rehearsal (make rehearse)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"engine", "make sure a Docker engine answers (installs and starts Debian's docker.io when root)", runEngine},
		{"image", "build container images offline: `image node --k8s-version vX.Y.Z`", runImage},
		{"cluster", "manage a local kind cluster: `cluster up`, `cluster smoke`, `cluster down`", runCluster},
		{"run", "the rehearsal `make rehearse` runs: cluster up, smoke checks, cluster down", runRehearsal},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rehearse:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage()
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:])
		}
	}
	printUsage()
	return usageError{fmt.Sprintf("unknown command %q: use one of the commands listed above", args[0])}
}

func printUsage() {
	fmt.Fprintln(os.Stderr, "usage: rehearse <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
}

// newFlags makes a flag set whose errors come back as usage errors.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}
