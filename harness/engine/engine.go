// Package engine makes sure a Docker engine answers before anything needs
// one. Where a daemon already runs (laptops, CI runners) it does nothing.
// On a bare Debian machine, as root, it installs Debian's docker.io, starts
// dockerd in the background with its log in a known file, and waits until it
// answers. Anywhere else it stops with a message saying how to get Docker.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/engine/capfilter"
)

// Paths the bootstrap uses. They are fixed so a person can find the log.
const (
	DaemonLog     = "/var/log/rehearse-dockerd.log"
	DaemonConfig  = "/etc/docker/daemon.json"
	CapfilterPath = "/usr/local/libexec/rehearse/runc-capfilter"
	capfilterName = "rehearse-runc"

	// engineVersionHint names the engines that have the problem capfilter solves.
	engineVersionHint = "before 23"
)

// Options tune Ensure; the zero value is what make targets use.
type Options struct {
	Out io.Writer // progress messages; os.Stderr when nil
	// ModuleRoot is the checkout holding cmd/runc-capfilter, built when the
	// host needs the runtime wrapper. Found from the working directory when empty.
	ModuleRoot string
	// StartTimeout bounds the wait for a freshly started daemon.
	StartTimeout time.Duration
}

// Ensure returns nil once `docker info` answers.
func Ensure(ctx context.Context, opt Options) error {
	out := opt.Out
	if out == nil {
		out = os.Stderr
	}
	if opt.StartTimeout == 0 {
		opt.StartTimeout = 90 * time.Second
	}
	if Answers(ctx) {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("no Docker engine answers and this is not root, so none can be installed here: " +
			"start Docker (Docker Desktop, `sudo systemctl start docker`, or `sudo dockerd &`), " +
			"or run `make` as root on Debian/Ubuntu to have Debian's docker.io installed and started")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		if _, err := exec.LookPath("apt-get"); err != nil {
			return errors.New("no Docker engine answers and there is no apt-get to install Debian's docker.io: install a Docker engine and start it, then run again")
		}
		fmt.Fprintln(out, "engine: no Docker engine found; installing Debian's docker.io (about a minute)")
		if err := AptInstall(ctx, out, "docker.io"); err != nil {
			return fmt.Errorf("installing docker.io: %w", err)
		}
	}
	if err := configureRuntime(ctx, out, opt.ModuleRoot); err != nil {
		return err
	}
	return startDaemon(ctx, out, opt.StartTimeout)
}

// Answers reports whether a Docker daemon answers `docker info`.
func Answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").Run() == nil
}

// AptInstall installs Debian packages, running `apt-get update` first when
// the package lists are empty (a fresh machine).
func AptInstall(ctx context.Context, out io.Writer, pkgs ...string) error {
	missing := pkgs[:0:0]
	for _, p := range pkgs {
		status, _ := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if !strings.Contains(string(status), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("packages %s are missing and this is not root: run `sudo apt-get install %s`",
			strings.Join(missing, " "), strings.Join(missing, " "))
	}
	update := exec.CommandContext(ctx, "apt-get", "update", "-qq")
	update.Stdout, update.Stderr = out, out
	if err := update.Run(); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	install := exec.CommandContext(ctx, "apt-get", args...)
	install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install.Stdout, install.Stderr = io.Discard, out
	if err := install.Run(); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
	}
	fmt.Fprintf(out, "engine: installed %s\n", strings.Join(missing, " "))
	return nil
}

// configureRuntime registers the capability-filtering runc wrapper as the
// default runtime when this host's bounding set lacks capabilities the
// kernel knows (see package capfilter). Hosts without the problem keep the
// engine's own defaults.
func configureRuntime(ctx context.Context, out io.Writer, moduleRoot string) error {
	have, err := capfilter.BoundingSet()
	if err != nil {
		return err
	}
	last, err := capfilter.LastCap()
	if err != nil {
		return err
	}
	missing := capfilter.Missing(have, last)
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(out, "engine: this host cannot grant %s, which Docker %s asks for in privileged containers; "+
		"registering %s as the default runtime to leave them out\n", strings.Join(missing, ","), engineVersionHint, CapfilterPath)
	if moduleRoot == "" {
		if moduleRoot, err = FindModuleRoot(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(CapfilterPath), 0o755); err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", CapfilterPath, "./cmd/runc-capfilter")
	build.Dir = moduleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = out, out
	if err := build.Run(); err != nil {
		return fmt.Errorf("building runc-capfilter: %w", err)
	}
	return mergeDaemonConfig(DaemonConfig, map[string]any{
		"runtimes":        map[string]any{capfilterName: map[string]any{"path": CapfilterPath}},
		"default-runtime": capfilterName,
	})
}

// mergeDaemonConfig sets top-level keys of dockerd's JSON config, keeping
// whatever else the file holds.
func mergeDaemonConfig(path string, set map[string]any) error {
	doc := map[string]any{}
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s is not valid JSON (%v): fix or remove it, then run again", path, err)
		}
	}
	for k, v := range set {
		if k == "runtimes" {
			rt, _ := doc["runtimes"].(map[string]any)
			if rt == nil {
				rt = map[string]any{}
			}
			for name, def := range v.(map[string]any) {
				rt[name] = def
			}
			doc[k] = rt
			continue
		}
		doc[k] = v
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func startDaemon(ctx context.Context, out io.Writer, timeout time.Duration) error {
	logf, err := os.OpenFile(DaemonLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Not CommandContext: the daemon must outlive this process.
	cmd := exec.Command("dockerd", "--config-file", DaemonConfig)
	if _, err := os.Stat(DaemonConfig); err != nil {
		cmd = exec.Command("dockerd")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dockerd: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	fmt.Fprintf(out, "engine: started dockerd (pid %d), log in %s\n", pid, DaemonLog)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if Answers(ctx) {
			fmt.Fprintln(out, "engine: Docker engine answers")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("dockerd did not answer within %s: read %s", timeout, DaemonLog)
}

// ModulePath is this project's Go module path.
const ModulePath = "github.com/kube-rehearse/rehearse"

// FindModuleRoot returns the directory holding this project's sources, from
// which our own helper binaries (the rehearsal app, the pod network, the
// runtime filter) are built. It walks up from the working directory to our
// go.mod (a checkout of this project); from a user's module that imports the
// harness it asks the go command where the module is (the module cache, or
// the directory a replace directive names).
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module "+ModulePath+"\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", ModulePath).Output()
	if root := strings.TrimSpace(string(out)); err == nil && root != "" {
		return root, nil
	}
	return "", fmt.Errorf("cannot find the sources of %s: run this from a checkout of the project, or from a Go module that requires it (go get %s)", ModulePath, ModulePath)
}
