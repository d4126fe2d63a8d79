package restore

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/scenarios/drain"
	"github.com/kube-rehearse/rehearse/scenarios/upgrade"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// watchCases: an app under `rehearse watch`, and an upgrade another
// process (`rehearse perform`) does to the cluster meanwhile.
var watchCases = []struct {
	name      string
	preset    appspec.Preset
	scenario  string
	set       []string
	kind      string        // what the watch must call it
	wantCode  int           // the watch's exit code
	wantClass verdict.Class // a failed check's diagnosis, when it fails
	full      bool          // only with REHEARSE_FULL
}{
	{"well-behaved/node-image-upgrade", appspec.PresetWellBehaved, upgrade.KindNodeImage, []string{"variant=refresh"},
		"node-image upgrade", 0, verdict.ClassNone, false},
	{"abrupt-shutdown/node-drain", appspec.PresetAbrupt, drain.Kind, nil,
		"nodes drained or removed", 1, verdict.ClassNoGracefulShutdown, false},
	{"abrupt-shutdown/node-image-upgrade", appspec.PresetAbrupt, upgrade.KindNodeImage, []string{"variant=refresh"},
		"node-image upgrade", 1, verdict.ClassNoGracefulShutdown, true},
}

// TestWatch runs `rehearse watch` on the suite's cluster and, once it has
// watched for longer than its baseline, upgrades (or drains) the cluster
// from a separate process, as AKS's auto-upgrade would: the watch must
// find the upgrade from the node changes alone, call it what it was, and
// judge it: a well-behaved app passes, an app that exits at SIGTERM fails
// with that diagnosis. The cluster is as before afterwards.
func TestWatch(t *testing.T) {
	var fs []features.Feature
	for _, c := range watchCases {
		if c.full && !suite.Full() {
			continue
		}
		fs = append(fs, features.New("watch/"+c.name).
			Assess("the upgrade another process did is found and judged", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				before, nodesBefore := clusterState(ctx, t), nodeNames(ctx, t)
				out := t.TempDir()
				var log bytes.Buffer
				w := exec.Command(binary, "watch", "--cluster", clusterName, "--namespace", "rehearsal-watch", "--preset", string(c.preset),
					"--for", "15m", "--stop-after", "1", "--expect-upgrade", "--baseline", "10s", "--recovery", "10s", "--quiet-period", "30s",
					"--out", out)
				w.Stdout, w.Stderr = &log, &log
				require.NoError(t, w.Start())
				done := make(chan error, 1)
				go func() { done <- w.Wait() }()
				t.Cleanup(func() {
					if w.ProcessState == nil {
						_ = w.Process.Kill()
					}
				})
				// Watching (its warm-up over), and for longer than the
				// baseline an upgrade needs.
				err := wait.PollUntilContextTimeout(ctx, time.Second, 4*time.Minute, true, func(context.Context) (bool, error) {
					return strings.Contains(log.String(), "watching for"), nil
				})
				require.NoError(t, err, "the watch did not start watching; output:\n%s", log.String())
				time.Sleep(15 * time.Second)

				args := []string{"perform", "--cluster", clusterName, "--scenario", c.scenario}
				for _, kv := range c.set {
					args = append(args, "--set", kv)
				}
				p := runRehearse(t, nil, args...)
				t.Logf("rehearse %s:\n%s", strings.Join(args, " "), p.out)
				require.Equal(t, 0, p.code, "the upgrade itself ran")

				select {
				case <-done:
				case <-time.After(5 * time.Minute):
					t.Fatalf("the watch did not judge the upgrade within 5 minutes of its end; output:\n%s", log.String())
				}
				t.Logf("rehearse watch:\n%s", log.String())
				runs, _ := filepath.Glob(filepath.Join(out, "*", "run.json"))
				require.Len(t, runs, 1, "one upgrade judged")
				rec, err := record.Read(runs[0])
				require.NoError(t, err)
				suite.RecordRun(t, "restore", "watch/"+c.name, rec)
				require.Len(t, rec.Scenarios, 1)
				assert.Equal(t, harness.WatchedUpgrade, rec.Scenarios[0].Kind)
				assert.Contains(t, rec.Scenarios[0].Name, "pool workers: "+c.kind)
				assert.Equal(t, c.wantCode, w.ProcessState.ExitCode(), "exit code")
				if c.wantCode == 0 {
					assert.Equal(t, verdict.Pass, rec.Verdict.Outcome, rec.Verdict.Reason)
				} else {
					assert.Equal(t, verdict.Fail, rec.Verdict.Outcome, rec.Verdict.Reason)
					var classes []verdict.Class
					for _, ck := range rec.Verdict.Failed() {
						if ck.Diagnosis != nil {
							classes = append(classes, ck.Diagnosis.Class)
						}
					}
					assert.Contains(t, classes, c.wantClass, "the failed checks' diagnoses")
				}
				after := clusterState(ctx, t)
				delete(after, "namespaces") // the watch's namespace stays on a cluster rehearse made
				delete(before, "namespaces")
				assert.Equal(t, before, after, "no node left cordoned, no journal left")
				assert.Equal(t, nodesBefore, nodeNames(ctx, t), "the same nodes, no surge node left; %s", workerState(ctx))
				return ctx
			}).Feature())
	}
	suite.Env.Test.Test(t, fs...)
}
