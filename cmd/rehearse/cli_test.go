package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios"
)

// The binary under test, built once: the tests run it as a person does, in
// a world without Docker, so anything that reaches for a cluster fails
// loudly instead of starting one.
var binary string

// stagingConfig is a kubeconfig of a cluster rehearse did not create,
// context "staging", whose API server nobody answers: a test that reaches
// it fails at once.
var stagingConfig string

const stagingKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: staging
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: staging
  user: {token: "x"}
contexts:
- name: staging
  context: {cluster: staging, user: staging}
current-context: staging
`

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rehearse-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rehearse")
	stagingConfig = filepath.Join(dir, "staging.kubeconfig")
	if err := os.WriteFile(stagingConfig, []byte(stagingKubeconfig), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building rehearse: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
	dockerCalled   bool
}

// rehearse runs the binary with a PATH whose only `docker` is a tripwire
// that records being called, and a home and cache of its own.
func rehearse(t *testing.T, args ...string) result {
	t.Helper()
	home := t.TempDir()
	bin := filepath.Join(home, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	tripwire := filepath.Join(home, "docker-was-called")
	require.NoError(t, os.WriteFile(filepath.Join(bin, "docker"),
		[]byte("#!/bin/sh\necho \"$@\" >> "+tripwire+"\nexit 1\n"), 0o755))

	cmd := exec.Command(binary, args...)
	cmd.Dir = home
	cmd.Env = []string{"PATH=" + bin, "HOME=" + home, "REHEARSE_CACHE_DIR=" + filepath.Join(home, "cache")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	_, statErr := os.Stat(tripwire)
	r.dockerCalled = statErr == nil
	// Nothing but the tripwire's directory may appear: bad input and help
	// change nothing, not even a cache directory.
	entries, err := os.ReadDir(home)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() != "bin" && e.Name() != "docker-was-called" {
			t.Errorf("rehearse %s created %s", strings.Join(args, " "), e.Name())
		}
	}
	return r
}

func TestHelpExitsZeroAndTouchesNothing(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{},
		{"run", "--help"},
		{"help", "run"},
		{"cluster", "up", "--help"},
		{"cluster", "down", "--help"},
		{"restore", "--help"},
		{"image", "node", "--help"},
		{"engine", "--help"},
		{"judge", "--help"},
		{"preflight", "--help"},
		{"watch", "--help"},
		{"perform", "--help"},
		{"report", "--help"},
		{"compare", "--help"},
		{"trend", "--help"},
		{"cluster"},
	} {
		t.Run(strings.Join(append([]string{"rehearse"}, args...), " "), func(t *testing.T) {
			t.Parallel()
			r := rehearse(t, args...)
			assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stdout, "Usage:")
			assert.False(t, r.dockerCalled, "help ran docker")
		})
	}
}

func TestRootHelpDocumentsExitCodes(t *testing.T) {
	r := rehearse(t, "--help")
	for _, want := range []string{"Exit codes:", "0  the rehearsal passed", "1  a verdict failed", "2  bad input", "3  the rehearsal could not run", "cannot judge"} {
		assert.Contains(t, r.stdout, want)
	}
	for _, cmd := range []string{"run", "restore", "scenarios", "checks", "cluster", "image", "engine", "completion", "judge", "report", "compare", "trend", "watch", "perform"} {
		assert.Contains(t, r.stdout, "\n  "+cmd+" ", "command %s listed", cmd)
	}
}

// Bad input exits 2 at once, says what is wrong, and starts nothing.
func TestBadInputExitsTwoAtOnce(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"run", "--rate", "0"}, []string{"--rate 0", "1 to 5000"}},
		{[]string{"run", "--rate", "5001"}, []string{"--rate 5001"}},
		{[]string{"run", "--preset", "nope"}, []string{`--preset "nope"`, "well-behaved"}},
		{[]string{"run", "--scenario", "nope"}, []string{`unknown scenario "nope"`, "rolling-restart"}},
		{[]string{"run", "--set", "nope=1"}, []string{"no setting nope", "timeout"}},
		{[]string{"run", "--set", "novalue"}, []string{`--set "novalue"`, "key=value"}},
		{[]string{"run", "--scenario", "node-cordon", "--set", "hold=forever"}, []string{"hold", "positive duration"}},
		{[]string{"run", "--manifests", "/nonexistent"}, []string{"--manifests /nonexistent", "no such file", "--deployment", "--service"}},
		{[]string{"run", "--deployment", "shop"}, []string{"--deployment is for your own app", "--manifests"}},
		{[]string{"run", "--dns-policy", "None"}, []string{`--dns-policy "None"`, "ClusterFirst or Default"}},
		{[]string{"run", "--with-dependency", "--outside-dependency"}, []string{"give one"}},
		{[]string{"run", "--kubeconfig", stagingConfig, "--outside-dependency"}, []string{"--outside-dependency needs a kind cluster"}},
		{[]string{"run", "--checks", "load,nope"}, []string{`unknown check "nope"`, "error-rate"}},
		{[]string{"run", "--clients", "browser"}, []string{`"browser" is not a client kind`, "gateway, service"}},
		{[]string{"run", "--baseline", "0s"}, []string{"--baseline 0s", "positive duration"}},
		{[]string{"run", "--workers", "-1"}, []string{"workers -1"}},
		{[]string{"run", "--cluster", "Not_A_Name"}, []string{`name "Not_A_Name"`}},
		{[]string{"run", "--bogus-flag"}, []string{"unknown flag: --bogus-flag", "rehearse run --help"}},
		{[]string{"run", "--rate", "many"}, []string{"invalid argument", "--rate"}},
		{[]string{"run", "extra"}, []string{`unknown command "extra"`}},
		{[]string{"cluster", "up", "--workers", "-1"}, []string{"--workers -1", "0 to 20"}},
		{[]string{"cluster", "up", "--k8s-version", "1.34"}, []string{"v1.MINOR.PATCH"}},
		{[]string{"cluster", "remove-node"}, []string{"--node"}},
		{[]string{"cluster", "down", "--all", "--name", "x"}, []string{"not both"}},
		{[]string{"cluster", "bogus"}, []string{`unknown command "bogus"`}},
		{[]string{"image", "node", "--k8s-version", "latest"}, []string{"v1.MINOR.PATCH"}},
		{[]string{"restore", "--context", "staging"}, []string{`no context "staging"`, "$KUBECONFIG"}},
		{[]string{"restore", "--kubeconfig", stagingConfig, "--context", "prod"}, []string{`no context "prod"`, "staging"}},
		{[]string{"restore", "--kubeconfig", "/nonexistent"}, []string{"/nonexistent"}},
		{[]string{"restore", "--cluster", "x", "--kubeconfig", "/etc/hostname"}, []string{"not both"}},
		{[]string{"run", "--namespace", "Bad_NS"}, []string{`--namespace "Bad_NS"`}},
		{[]string{"run", "--kubeconfig", stagingConfig, "--cluster", "x", "--workers", "3"}, []string{"--cluster is for a local kind cluster", "--workers is for"}},
		{[]string{"run", "--kubeconfig", stagingConfig, "--clients", "gateway,service"}, []string{"--clients gateway", "use --clients service"}},
		{[]string{"run", "--kubeconfig", stagingConfig, "--allow-cluster", "[bad"}, []string{`entry "[bad"`, "CONTEXT@https://host:port"}},
		// Refused before anything is contacted (its server does not answer).
		{[]string{"run", "--kubeconfig", stagingConfig, "--scenario", "node-drain"}, []string{"context staging", "not on the allow-list",
			"cordon and drain a node", "Nothing was changed", "--allow-cluster staging"}},
		{[]string{"run", "--kubeconfig", stagingConfig, "--scenario", "node-drain", "--allow-cluster", "staging@https://other:6443"}, []string{"not on the allow-list"}},
		{[]string{"bogus"}, []string{`unknown command "bogus"`}},
		{[]string{"preflight", "--drain-timeout-in-minutes", "0"}, []string{"--drain-timeout-in-minutes 0", "1 to 1440"}},
		{[]string{"preflight", "--to", "latest"}, []string{`to "latest"`, "v1.MINOR"}},
		{[]string{"preflight", "--max-surge", "many"}, []string{"maxSurge", "percentage"}},
		{[]string{"preflight", "--subnet", "10.0.0.0"}, []string{"IPv4 range"}},
		{[]string{"preflight", "--manifests", "/nonexistent"}, []string{"--manifests /nonexistent"}},
		{[]string{"preflight", "--kubeconfig", stagingConfig, "--context", "prod"}, []string{`no context "prod"`}},
		{[]string{"watch", "--for", "30s", "--quiet-period", "0s"}, []string{"--for 30s", "1m to 24h", "--quiet-period 0s"}},
		{[]string{"watch", "--scenario", "node-drain", "--allow-cluster", "x"}, []string{"--scenario is run's", "--allow-cluster is run's"}},
		{[]string{"watch", "--kubeconfig", stagingConfig, "--clients", "gateway"}, []string{"--clients gateway"}},
		{[]string{"perform"}, []string{"--scenario: give the scenario"}},
		{[]string{"perform", "--scenario", "rolling-restart", "--namespace", "shop"}, []string{"give both, or neither"}},
		{[]string{"perform", "--scenario", "node-drain", "--set", "bogus=1"}, []string{"no setting bogus"}},
		// Refused before anything is contacted, as run is.
		{[]string{"perform", "--kubeconfig", stagingConfig, "--scenario", "node-drain"}, []string{"not on the allow-list", "--allow-cluster staging"}},
		{[]string{"judge"}, []string{"takes RUN"}},
		{[]string{"judge", "/nonexistent/run.json"}, []string{"no such file", "run.json"}},
		{[]string{"judge", "/etc/hostname"}, []string{"not a run record"}},
		{[]string{"report", "a", "b"}, []string{"takes RUN", "got 2"}},
		{[]string{"compare", "/nonexistent"}, []string{"BASELINE and CURRENT"}},
		{[]string{"compare", "a", "b", "--tolerance", "error_rate"}, []string{"FIGURE=VALUE"}},
		{[]string{"trend", "/nonexistent"}, []string{"not a directory"}},
		{[]string{"trend", "/etc", "--judge", "x", "--judge-latest"}, []string{"give one"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := rehearse(t, tc.args...)
			assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Less(t, r.took, time.Second, "bad input must be refused at once")
			for _, w := range tc.want {
				assert.Contains(t, r.stderr, w)
			}
			assert.False(t, r.dockerCalled, "bad input ran docker")
		})
	}
}

// An allowed cluster passes the safety check and is contacted: this one's
// API server does not answer, so the rehearsal cannot run (3). A scenario
// that touches only the app's namespace needs no allowance.
func TestAnAllowedClusterIsContacted(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--kubeconfig", stagingConfig, "--scenario", "node-drain", "--allow-cluster", "staging"},
		{"run", "--kubeconfig", stagingConfig, "--scenario", "node-drain", "--allow-cluster", "https://127.0.0.1:1"},
		{"run", "--kubeconfig", stagingConfig, "--scenario", "rolling-restart"},
	} {
		r := rehearse(t, args...)
		assert.Equal(t, 3, r.code, "%v\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
		assert.Contains(t, r.stdout, "CANNOT JUDGE: the rehearsal could not run", args)
		assert.Contains(t, r.stdout, "127.0.0.1:1", args)
		assert.NotContains(t, r.stdout+r.stderr, "allow-list", args)
	}
}

// Every problem is reported at once, so one try is enough to fix them all.
func TestRunReportsEveryProblemAtOnce(t *testing.T) {
	r := rehearse(t, "run", "--rate", "0", "--preset", "nope", "--checks", "nope")
	assert.Equal(t, 2, r.code)
	for _, w := range []string{"--rate 0", `--preset "nope"`, `unknown check "nope"`} {
		assert.Contains(t, r.stderr, w)
	}
}

func TestScenariosListsKindsAndSettings(t *testing.T) {
	r := rehearse(t, "scenarios")
	require.Equal(t, 0, r.code, r.stderr)
	for _, k := range scenarios.Kinds() {
		assert.Contains(t, r.stdout, k.Name+"\n  "+k.Summary)
		if k.Disrupts != "" {
			assert.Contains(t, r.stdout, k.Summary+"\n  on a cluster rehearse did not create, needs --allow-cluster: it would "+k.Disrupts)
		}
		for key, help := range k.Settings {
			assert.Contains(t, r.stdout, "--set "+key+"=...  "+help)
		}
	}
}

func TestChecksListsEveryCheck(t *testing.T) {
	r := rehearse(t, "checks")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, strings.Join(verdict.CheckNames(), "\n")+"\n", r.stdout)
}

// Completion runs in-process: cobra's hidden __complete command is what the
// shell scripts call.
func TestCompletion(t *testing.T) {
	complete := func(args ...string) []string {
		var out, errb bytes.Buffer
		code := execute(append([]string{"__complete"}, args...), &out, &errb)
		require.Equal(t, 0, code, errb.String())
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[:len(lines)-1] // the last line is the directive
	}
	var presets []string
	for _, p := range appspec.Presets() {
		presets = append(presets, string(p))
	}
	assert.Equal(t, presets, complete("run", "--preset", ""))
	assert.Equal(t, scenarios.Names(), complete("run", "--scenario", ""))

	checks := complete("run", "--checks", "load,")
	assert.Contains(t, checks, "load,error-rate")
	assert.NotContains(t, checks, "load,load", "a check already listed is not offered again")
	assert.Len(t, checks, len(verdict.CheckNames())-1)

	settings := complete("run", "--scenario", "node-cordon", "--set", "")
	assert.Len(t, settings, 2)
	assert.True(t, strings.HasPrefix(settings[0], "hold=\t"), settings[0])

	var script, errb bytes.Buffer
	require.Equal(t, 0, execute([]string{"completion", "bash"}, &script, &errb), errb.String())
	assert.Contains(t, script.String(), "__rehearse_")
}
