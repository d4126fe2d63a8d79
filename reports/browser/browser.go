// Package browser drives a headless Chromium to look at a report as a
// person would: the DOM after the page's script ran, and a screenshot.
// The report tests use it to prove that the charts render; it finds
// Chromium on the PATH and, as root on Debian or Ubuntu, installs Debian's
// chromium package when there is none (as package engine does for Docker),
// so a fresh CI machine needs no set-up. Chromium's own command line
// (--headless, --dump-dom, --screenshot) is enough for this, so no
// DevTools client library is pulled in.
package browser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/kube-rehearse/rehearse/harness/engine"
)

// Browser is a Chromium executable.
type Browser struct {
	Path string
}

var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the Chromium on the PATH.
func Find() (*Browser, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return &Browser{Path: p}, nil
		}
	}
	return nil, errors.New("no Chromium on the PATH (looked for " + fmt.Sprint(names) + ")")
}

// Ensure returns the Chromium on the PATH, installing Debian's chromium
// package first when there is none and this is a Debian or Ubuntu machine
// where we are root; otherwise the error says how to get one.
func Ensure(ctx context.Context, out io.Writer) (*Browser, error) {
	if b, err := Find(); err == nil {
		return b, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, errors.New("no Chromium on the PATH and no apt-get to install Debian's: install Chromium (or Google Chrome)")
	}
	if err := engine.AptInstall(ctx, out, "chromium"); err != nil {
		return nil, fmt.Errorf("installing Chromium: %w", err)
	}
	return Find()
}

// run starts a headless Chromium with the flags a machine without a
// display, a sandbox or the internet needs: background networking,
// component updates and sync would each try to reach Google and be refused.
func (b *Browser) run(ctx context.Context, stdout io.Writer, args ...string) error {
	profile, err := os.MkdirTemp("", "rehearse-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, b.Path, append(base, args...)...)
	var stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", b.Path, err, stderr.String())
	}
	return nil
}

// DOM loads url, lets its scripts run, and returns the document as it is
// then (serialised).
func (b *Browser) DOM(ctx context.Context, url string) (string, error) {
	var out limitedBuffer
	out.max = 64 << 20
	if err := b.run(ctx, &out, "--virtual-time-budget=3000", "--dump-dom", url); err != nil {
		return "", err
	}
	return out.String(), nil
}

// Screenshot saves a PNG of url as a window of width × height shows it.
func (b *Browser) Screenshot(ctx context.Context, url, png string, width, height int) error {
	return b.run(ctx, io.Discard, "--virtual-time-budget=3000",
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "--screenshot="+png, url)
}

// limitedBuffer keeps the first max bytes written (64 KiB by default):
// enough of Chromium's chatter to say why it failed.
type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.max == 0 {
		l.max = 64 << 10
	}
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
