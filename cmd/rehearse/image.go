package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness/engine"
)

func runEngine(ctx context.Context, args []string) error {
	fs := newFlags("engine")
	if err := parse(fs, args); err != nil {
		return err
	}
	return engine.Ensure(ctx, engine.Options{})
}

func runImage(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "node" {
		return usageError{"image: say which image: `rehearse image node --k8s-version vX.Y.Z` (or --all for both rehearsal versions)"}
	}
	from, to := nodeimage.Versions()
	fs := newFlags("image node")
	version := fs.String("k8s-version", from, "Kubernetes version of the node image (v1.MINOR.PATCH)")
	all := fs.Bool("all", false, "build the node images of both rehearsal versions ("+from+" and "+to+")")
	offline := fs.Bool("offline", false, "build our own image even if a kindest/node image of that version exists locally")
	pull := fs.Bool("pull", false, "try `docker pull kindest/node:<version>` before building (needs a registry)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	versions := []string{*version}
	if *all {
		versions = []string{from, to}
	}
	for _, v := range versions {
		if _, err := nodeimage.ParseVersion(v); err != nil {
			return err
		}
	}
	if err := engine.Ensure(ctx, engine.Options{}); err != nil {
		return err
	}
	for _, v := range versions {
		res, err := nodeimage.Image(ctx, nodeimage.Options{Version: v, Offline: *offline, Pull: *pull})
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s\t%s\n", v, res.Image, res.Source)
		if res.Source == "built" {
			fmt.Fprintf(os.Stderr, "cold build of %s: %s\n", v, summarize(res.Timings))
		}
	}
	return nil
}

func summarize(ts []nodeimage.Timing) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		how := ""
		if t.Cached {
			how = " cached"
		}
		parts = append(parts, fmt.Sprintf("%s %s%s", t.Step, t.Duration.Round(100_000_000), how))
	}
	return strings.Join(parts, "; ")
}
