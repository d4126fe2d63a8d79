// Package suite is the one set-up every `go test` suite of the project
// shares: a kind cluster per suite package (created before the tests,
// deleted after, its logs exported when a test failed), built from the
// e2e-framework's env funcs, and the helpers suites rehearse with.
//
//	func TestMain(m *testing.M) { os.Exit(suite.Main(m, "rehearse-rolling", suite.Options{})) }
//
// Every rehearsal a suite runs can be recorded (Record) into
// $REHEARSE_RESULTS_DIR, so that `make repeat` can run a suite several
// times and check that every verdict came out the same each time.
package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	recordpkg "github.com/kube-rehearse/rehearse/reports/record"
)

// Options shape a suite's cluster.
type Options struct {
	Workers int // default 2
	// ToImage also prepares the node image of the "to" version (for suites
	// that add newer nodes).
	ToImage bool
	// PodSubnet is the cluster's pod range. Each suite has its own (see
	// the suites' TestMain), so a suite's host routes never collide with
	// another suite's cluster, nor with a user's kind cluster on kind's
	// default 10.244.0.0/16, should one be left running.
	PodSubnet string
	// RuntimeConfig turns API versions on in the API server (see
	// cluster.Config.RuntimeConfig).
	RuntimeConfig map[string]string
	// VMCgroup adds, once the cluster is up, a worker that is a VM node
	// of this cgroup mode ("v1" or "v2"; see cluster.VMNode), cordoned so
	// that nothing lands on it until a rehearsal opens it.
	VMCgroup string
}

// Env is the running suite's environment.
var Env struct {
	Test     env.Environment
	Provider *cluster.Provider
	Target   *target.Kind
	Images   struct{ From, To nodeimage.Result }
	// VM is the VM worker of Options.VMCgroup: its node, how QEMU ran it
	// and how long it took to join.
	VM struct {
		Node, Accel, Why, Kernel string
		Joined                   time.Duration
		Images                   nodeimage.VM
	}
}

// Main prepares Docker and the node images, creates the suite's cluster
// (name: the suite's own; a leftover of an interrupted run is replaced),
// runs the tests, and deletes the cluster. It returns the exit code.
func Main(m *testing.M, name string, opt Options) int {
	ctx := context.Background()
	if opt.Workers == 0 {
		opt.Workers = 2
	}
	if err := prepare(ctx, name, opt); err != nil {
		fmt.Fprintf(os.Stderr, "suite %s: %v\n", name, err)
		return 1
	}
	// Flags of e2e-framework select features: go test ./suites/x -args -feature abrupt
	e, err := env.NewFromFlags()
	if err != nil {
		fmt.Fprintf(os.Stderr, "suite %s: %v\n", name, err)
		return 2
	}
	e.Setup(envfuncs.CreateClusterWithOpts(Env.Provider, name), func(ctx context.Context, _ *envconf.Config) (context.Context, error) {
		Env.Target = target.NewKind(Env.Provider.Cluster, true)
		if opt.VMCgroup != "" {
			return ctx, addVMWorker(ctx, name, opt.VMCgroup)
		}
		return ctx, nil
	})
	e.AfterEachFeature(exportLogsOnFailure)
	e.AfterEachTest(func(ctx context.Context, _ *envconf.Config, t *testing.T) (context.Context, error) {
		if t.Failed() {
			exportLogs(ctx, t)
		}
		return ctx, nil
	})
	e.Finish(envfuncs.DestroyCluster(name))
	Env.Test = e
	return e.Run(m)
}

func prepare(ctx context.Context, name string, opt Options) error {
	if err := engine.Ensure(ctx, engine.Options{}); err != nil {
		return err
	}
	from, to := nodeimage.Versions()
	var err error
	if Env.Images.From, err = nodeimage.Image(ctx, nodeimage.Options{Version: from}); err != nil {
		return err
	}
	if opt.ToImage {
		if Env.Images.To, err = nodeimage.Image(ctx, nodeimage.Options{Version: to}); err != nil {
			return err
		}
	}
	if opt.VMCgroup != "" {
		if Env.VM.Images, err = nodeimage.VMImages(ctx, nodeimage.VMOptions{NodeImage: Env.Images.From.Image}); err != nil {
			return err
		}
	}
	hostPort, err := cluster.FreeHostPort()
	if err != nil {
		return err
	}
	Env.Provider = cluster.NewProvider(cluster.Config{
		Name: name, Image: Env.Images.From.Image, Workers: opt.Workers,
		// The fallback route to NodePort 30080 where the host cannot reach
		// the nodes' own addresses.
		NodePorts: []cluster.PortMapping{{NodePort: 30080, HostPort: hostPort}},
		// The name is this suite's own: a leftover from an interrupted run
		// is ours to replace.
		ReplaceExisting: true,
		PodSubnet:       opt.PodSubnet,
		RuntimeConfig:   opt.RuntimeConfig,
	})
	return nil
}

// BuildRehearse builds the rehearse command into a temporary directory,
// for suites that run it as a user would (and kill it); remove removes it.
func BuildRehearse() (path string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "rehearse-bin-")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "rehearse")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/kube-rehearse/rehearse/cmd/rehearse").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building rehearse: %v\n%s", err, out)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// addVMWorker joins the suite's VM worker and cordons it.
func addVMWorker(ctx context.Context, name, cgroup string) error {
	vm := &Env.VM
	vm.Accel, vm.Why = cluster.VMAccel(ctx, vm.Images.Runner)
	vm.Kernel = vm.Images.Kernel
	start := time.Now()
	node, err := Env.Provider.Cluster.AddWorker(ctx, cluster.WorkerSpec{Name: name + "-vm", Image: Env.Images.From.Image,
		VM: &cluster.VMNode{Runner: vm.Images.Runner, Disk: vm.Images.Disk, Cgroup: cgroup, Accel: vm.Accel}})
	if err != nil {
		return fmt.Errorf("VM worker (cgroup %s, %s): %w", cgroup, vm.Accel, err)
	}
	vm.Node, vm.Joined = node, time.Since(start)
	fmt.Fprintf(os.Stderr, "suite %s: VM worker %s (cgroup %s, kernel %s, %s: %s) Ready in %s\n",
		name, node, cgroup, vm.Kernel, vm.Accel, vm.Why, vm.Joined.Round(time.Second))
	return drain.Cordon(ctx, Env.Provider.Cluster.Client(), node, true)
}

func exportLogsOnFailure(ctx context.Context, _ *envconf.Config, t *testing.T, _ features.Feature) (context.Context, error) {
	if t.Failed() {
		exportLogs(ctx, t)
	}
	return ctx, nil
}

// exportLogs writes the cluster's logs to $REHEARSE_LOG_DIR (or a
// directory next to the test's temporary files) and says where.
func exportLogs(ctx context.Context, t *testing.T) {
	dir := os.Getenv("REHEARSE_LOG_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "rehearse-logs")
	}
	dir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+time.Now().Format("150405"))
	if err := Env.Provider.ExportLogs(ctx, dir); err != nil {
		t.Logf("exporting the cluster's logs failed: %v", err)
		return
	}
	t.Logf("cluster logs exported to %s", dir)
}

// Rate is the suites' request rate per client kind. On the 2-core machines
// the suites run on, the cluster, the apps and the instruments share the
// CPUs: at 200 requests/s per client a DNS rehearsal (each request also
// calls a dependency) left a node so short of CPU that the resilient app's
// pods queued requests for seconds, and a control-plane upgrade starved the
// clients for 0.7 s. At 100/s a 100 ms slice still holds 10 requests of
// each client, enough to time an outage to a tenth of a second.
const Rate = 100

// Clients are the client kinds the suites' rehearsals run (harness's
// default: the gateway and the service client; the in-cluster client is
// tested on its own).
var Clients = []timeline.ClientKind{timeline.ClientGateway, timeline.ClientService}

// Baseline and Recovery are the suites' phases: 3 s (300 requests of each
// client) say whether the app runs clean before the fault and again after
// it, and shorter phases keep make test within its time budget.
const (
	Baseline = 3 * time.Second
	Recovery = 3 * time.Second
)

// Rehearser is a harness.Rehearser on the suite's cluster; options add to
// (and may override) the suite's defaults: status lines in the test log,
// Rate requests per second per client kind.
func Rehearser(t *testing.T, opts ...harness.Option) *harness.Rehearser {
	t.Helper()
	all := append([]harness.Option{harness.WithTarget(Env.Target), harness.WithLog(testWriter{t}), harness.WithRate(Rate),
		harness.WithPhases(0, Baseline, Recovery)}, opts...)
	// Keep every rehearsal's results when asked, and always in a repeat
	// (make repeat): a verdict can then be judged again from its timeline.
	if dir := os.Getenv("REHEARSE_TIMELINE_DIR"); dir != "" {
		all = append(all, harness.WithOutput(dir))
	} else if dir := os.Getenv("REHEARSE_RESULTS_DIR"); dir != "" {
		all = append(all, harness.WithOutput(filepath.Join(dir, "rehearsals")))
	}
	r, err := harness.New(all...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Log writes a rehearsal's loads, verdict and explanations to the test log.
func Log(t *testing.T, res *harness.Result) {
	t.Helper()
	if res == nil {
		return
	}
	t.Logf("rehearsal %s:\n%s", res.Run, harness.Summary(res))
}

// Outcome is one rehearsal's verdict as `make repeat` tabulates it.
type Outcome struct {
	Suite    string            `json:"suite"`
	Case     string            `json:"case"`
	Run      string            `json:"run"`
	At       time.Time         `json:"at"`
	Outcome  string            `json:"outcome"`
	Reason   string            `json:"reason,omitempty"`
	Failed   map[string]string `json:"failed,omitempty"`   // check -> diagnosis class or title
	Unjudged []string          `json:"unjudged,omitempty"` // checks that could not judge
	Requests map[string]int    `json:"requests"`           // per client kind
	Errors   map[string]int    `json:"errors"`             // failed requests per client kind
}

// Verdict is the one-line verdict of an Outcome: "fail: graceful-shutdown=class 7, error-rate/gateway=class 7".
func (o Outcome) Verdict() string {
	if len(o.Failed) == 0 {
		return o.Outcome
	}
	var parts []string
	for c, d := range o.Failed {
		parts = append(parts, c+"="+d)
	}
	sort.Strings(parts)
	return o.Outcome + ": " + strings.Join(parts, ", ")
}

// Record writes a rehearsal's outcome to $REHEARSE_RESULTS_DIR (nothing
// when unset) for `make repeat`.
func Record(t *testing.T, suiteName, caseName string, res *harness.Result) {
	t.Helper()
	if res == nil {
		return
	}
	loads := map[string]load.Summary{}
	for k, l := range res.Loads {
		loads[k.String()] = l
	}
	record(t, suiteName, caseName, res.Run, res.Report, loads)
}

// RecordRun is Record of a run record (what `rehearse run` wrote).
func RecordRun(t *testing.T, suiteName, caseName string, rec *recordpkg.Record) {
	t.Helper()
	loads := map[string]load.Summary{}
	for _, l := range rec.Loads {
		loads[l.Client] = l.Summary
	}
	record(t, suiteName, caseName, rec.Run, rec.Verdict, loads)
}

func record(t *testing.T, suiteName, caseName, run string, rep verdict.Report, loads map[string]load.Summary) {
	dir := os.Getenv("REHEARSE_RESULTS_DIR")
	if dir == "" {
		return
	}
	o := Outcome{Suite: suiteName, Case: caseName, Run: run, At: time.Now().UTC(), Outcome: string(rep.Outcome),
		Reason: rep.Reason, Failed: map[string]string{}, Requests: map[string]int{}, Errors: map[string]int{}}
	for _, c := range rep.Failed() {
		d := "failed"
		if c.Diagnosis != nil {
			d = c.Diagnosis.Class.String()
			if c.Diagnosis.Class == 0 {
				d = c.Diagnosis.Title
			}
		}
		o.Failed[c.Name] = d
	}
	for _, c := range rep.Unjudged() {
		o.Unjudged = append(o.Unjudged, c.Name)
	}
	for k, s := range loads {
		o.Requests[k], o.Errors[k] = s.Sent, s.Failed
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("recording the outcome: %v", err)
		return
	}
	b, _ := json.Marshal(o)
	f, err := os.OpenFile(filepath.Join(dir, "outcomes.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("recording the outcome: %v", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

// OtherNodeImage is the node image the workers do not run: the suite's own
// or its "refresh" variant (built in seconds), so that a suite's node-image
// upgrades can run in any order on its one cluster.
func OtherNodeImage(ctx context.Context, t *testing.T) string {
	t.Helper()
	base := Env.Images.From.Image
	variant, err := nodeimage.BuildVariant(ctx, base, "refresh")
	if err != nil {
		t.Fatalf("node image variant: %v", err)
	}
	nodes, err := Env.Target.Nodes(ctx)
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	for _, n := range nodes {
		if !n.ControlPlane && n.Image == variant {
			return base
		}
	}
	return variant
}

// Full reports whether the suites run every case (REHEARSE_FULL=1, make
// test-full: the nightly run) rather than their core cases (make test:
// each verdict's pass and fail at least once, within the time budget).
func Full() bool {
	v := os.Getenv("REHEARSE_FULL")
	return v != "" && v != "0"
}

// Select is the features a run tests, in their order: those named in core,
// or, with Full, all of them.
func Select(fs []features.Feature, core ...string) []features.Feature {
	if Full() {
		return fs
	}
	var out []features.Feature
	for _, f := range fs {
		if slices.Contains(core, f.Name()) {
			out = append(out, f)
		}
	}
	return out
}

// Rounds is how often a suite repeats a case within one run: def, or
// REHEARSE_ROUNDS when set (a whole number, 1 or more). make test keeps
// the defaults small for its time budget; repeated evidence comes from
// more rounds or from `make repeat`, which runs the whole suite N times.
func Rounds(def int) int {
	s := os.Getenv("REHEARSE_ROUNDS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "REHEARSE_ROUNDS=%q is not a whole number of 1 or more: using %d\n", s, def)
		return def
	}
	return n
}
