// Command runc-capfilter is an OCI runtime that removes, from the process
// spec of each container and exec, the capabilities this host cannot grant,
// then runs runc with the same arguments. See package capfilter for why.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/kube-rehearse/rehearse/harness/engine/capfilter"
)

func main() {
	args := os.Args[1:]
	if err := filter(args); err != nil {
		// Say why, then still hand over to runc: it prints the real error
		// if the spec is unusable.
		fmt.Fprintln(os.Stderr, "runc-capfilter:", err)
	}
	runc, err := findRunc()
	if err != nil {
		fmt.Fprintln(os.Stderr, "runc-capfilter:", err)
		os.Exit(127)
	}
	err = syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintln(os.Stderr, "runc-capfilter: exec runc:", err)
	os.Exit(127)
}

func filter(args []string) error {
	inv := capfilter.ParseArgs(args)
	var edit func(string, capfilter.Set) error
	var path string
	switch {
	case inv.Command == "create" || inv.Command == "run":
		path, edit = filepath.Join(inv.Bundle, "config.json"), capfilter.FilterBundleConfig
	case inv.Command == "exec" && inv.ProcessFile != "":
		path, edit = inv.ProcessFile, capfilter.FilterProcessFile
	default:
		return nil
	}
	allowed, err := capfilter.BoundingSet()
	if err != nil {
		return err
	}
	return edit(path, allowed)
}

// findRunc looks in fixed places: the shim that starts us may run with a
// minimal PATH.
func findRunc() (string, error) {
	if p := os.Getenv("REHEARSE_RUNC"); p != "" {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("runc"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("runc not found: install Debian's runc package or set REHEARSE_RUNC")
}
