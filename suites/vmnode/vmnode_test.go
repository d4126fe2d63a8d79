// Package vmnode rehearses what only a node of the other cgroup mode can
// show: the move of an application from this machine's cgroup v1 nodes
// (kind's nodes are containers and share the host's mode) to a VM node in
// cgroup v2 mode, booted from the same node image, as when an AKS
// node-image upgrade or a move to a new node pool changes the cgroup
// version under an app (catalogue class 5):
//
//   - the VM worker joins and is Ready, runs cgroup v2 and its own kernel,
//     and a pod on it answers through a NodePort from this machine;
//   - the well-behaved app (its runtime reads both versions' files) moves
//     to it under load and passes, both clients served throughout;
//   - an app whose runtime reads only cgroup v1 files finds no limit on the
//     v2 node, sizes its heap from the VM's memory and is OOM-killed there
//     (the kernel enforces the 256Mi limit): class 5, with the fix, and the
//     drain it holds up is not blamed on its PodDisruptionBudget; the same
//     with an app that sets none of our attribution headers;
//   - the same move SIGKILLed while it drains, then `rehearse restore`: the
//     old pool schedulable, the VM pool closed again, no journal
//     (restore_test.go);
//   - last, the VM node removed: no container, QEMU, tap device or Node.
//
// VM nodes boot under QEMU: with KVM (most CI runners and laptops) near
// native speed, without it (software emulation, TCG) about 15 times slower.
// So this suite runs only when asked: REHEARSE_VM=1 (make test-vm), or
// REHEARSE_VM=auto to run it only where KVM works.
package vmnode

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/fixtures/nodeimage"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/scenarios/poolmove"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

const clusterName = "rehearse-vmnode"

// rate is this suite's requests per second per client kind. Under software
// emulation the VM node's CPU is about 15 times slower: at the other
// suites' 100/s its three pods used 0.7 of its CPUs, their readiness probes
// timed out and every client failed (measured), which says nothing about
// the app; at 25/s the busy VM still slowed the rest of the cluster now
// and then (a request lost to a kube-proxy 9 s late). At 20/s a 100 ms
// slice still holds 2 requests per client.
const rate = 20

// binary is the rehearse command, built for the interrupted move.
var binary string

func TestMain(m *testing.M) {
	switch os.Getenv("REHEARSE_VM") {
	case "1":
	case "auto":
		if why, ok := kvmWorks(); !ok {
			fmt.Printf("suites/vmnode: skipped: REHEARSE_VM=auto and %s (REHEARSE_VM=1 runs it under software emulation)\n", why)
			os.Exit(0)
		}
	default:
		fmt.Println("suites/vmnode: skipped (VM nodes boot under QEMU; set REHEARSE_VM=1, or auto to run it only where KVM works, or run make test-vm)")
		os.Exit(0)
	}
	var remove func()
	var err error
	if binary, remove, err = suite.BuildRehearse(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := suite.Main(m, clusterName, suite.Options{Workers: 1, PodSubnet: "10.246.0.0/16", VMCgroup: "v2"})
	remove()
	os.Exit(code)
}

// kvmWorks builds what VM nodes boot (cached for the suite) and asks
// whether QEMU would use KVM here.
func kvmWorks() (string, bool) {
	ctx := context.Background()
	if err := engine.Ensure(ctx, engine.Options{}); err != nil {
		return err.Error(), false
	}
	from, _ := nodeimage.Versions()
	node, err := nodeimage.Image(ctx, nodeimage.Options{Version: from})
	if err != nil {
		return err.Error(), false
	}
	vm, err := nodeimage.VMImages(ctx, nodeimage.VMOptions{NodeImage: node.Image})
	if err != nil {
		return err.Error(), false
	}
	accel, why := cluster.VMAccel(ctx, vm.Runner)
	return why, accel == "kvm"
}

func TestVMNode(t *testing.T) {
	joined := features.New("vm-node").
		Assess("the VM worker is a cgroup v2 node with its own kernel", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vm := suite.Env.VM
			t.Logf("VM worker %s: kernel %s, %s (%s), Ready %s after start", vm.Node, vm.Kernel, vm.Accel, vm.Why, vm.Joined.Round(time.Second))
			fsType, err := suite.Env.Target.Exec(ctx, vm.Node, nil, "stat", "-fc", "%T", "/sys/fs/cgroup")
			require.NoError(t, err)
			assert.Equal(t, "cgroup2fs", strings.TrimSpace(string(fsType)))
			kernel, err := suite.Env.Target.Exec(ctx, vm.Node, nil, "uname", "-r")
			require.NoError(t, err)
			assert.Equal(t, vm.Kernel, strings.TrimSpace(string(kernel)))
			return ctx
		}).Feature()
	both := features.New("cgroup-swap-both").
		Assess("an app whose runtime reads both versions moves to the cgroup v2 node and passes", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			res := move(ctx, t, "both", appspec.PresetWellBehaved, true)
			c := cgroupCheck(t, res)
			require.Equal(t, verdict.Pass, c.Status, c.Summary)
			v2, _ := c.Figure("nodes_cgroup_v2")
			assert.GreaterOrEqual(t, v2.Value, 1.0, "a cgroup v2 node was seen: %v", c.Measured)
			for _, name := range []string{"error-rate/gateway", "error-rate/service"} {
				chk, ok := res.Report.Check(name)
				require.True(t, ok, name)
				assert.Equal(t, verdict.Pass, chk.Status, "%s: %s", name, chk.Summary)
			}
			onVM := podsOn(ctx, t, "vm-both", suite.Env.VM.Node)
			assert.Positive(t, onVM, "the app's pods ended on the VM node")
			return ctx
		}).Feature()
	// The verdict must not depend on our attribution headers (real users'
	// apps do not set them): the v1-only app is rehearsed with and without.
	var v1only []features.Feature
	for _, headers := range []bool{true, false} {
		name := "v1-only"
		if !headers {
			name += "-noheaders"
		}
		v1only = append(v1only, features.New("cgroup-swap-"+name).
			Assess("a runtime reading only cgroup v1 files is OOM-killed on the cgroup v2 node: class 5", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				res := move(ctx, t, name, appspec.PresetCgroupV1Only, headers)
				c := cgroupCheck(t, res)
				require.Equal(t, verdict.Fail, c.Status, c.Summary)
				require.NotNil(t, c.Diagnosis)
				assert.Equal(t, verdict.ClassCgroup, c.Diagnosis.Class, c.Summary)
				assert.Contains(t, c.Diagnosis.Fix, "reads both cgroup versions")
				// The budget was right to hold the drain: not class 2.
				d, ok := res.Report.Check(verdict.CheckDrain)
				require.True(t, ok)
				require.NotNil(t, d.Diagnosis, d.Summary)
				assert.Equal(t, "the drain waited for replacements that never became Ready", d.Diagnosis.Title)
				return ctx
			}).Feature())
	}
	fs := append([]features.Feature{joined, both}, v1only...)
	suite.Env.Test.Test(t, append(fs, interruptedMove(), removal())...)
}

// move deploys the preset on the container worker, with or without our
// attribution headers, and moves it, under load, to the VM node (the new
// pool), returning the result.
func move(ctx context.Context, t *testing.T, name string, preset appspec.Preset, headers bool) *harness.Result {
	t.Helper()
	spec, err := appspec.PresetSpec(preset, appspec.Image)
	require.NoError(t, err)
	if !headers {
		spec = spec.WithoutAttributionHeaders()
	}
	a := harness.RehearsalApp(spec)
	a.Namespace = "vm-" + name
	r := suite.Rehearser(t, harness.WithApp(a), harness.WithName("vmnode/"+name), harness.WithRate(rate))
	res := suite.Rehearse(ctx, t, r, a.Namespace, "vmnode", name, harness.Scenario(poolmove.Kind, map[string]string{
		"from": clusterName + "-worker", "to": suite.Env.VM.Node,
		// A runtime that cannot run on the new pool blocks its drain
		// (the PodDisruptionBudget waits for a Ready replacement).
		"timeout": "2m",
	}))
	left, err := journal.Leftovers(ctx, suite.Env.Target.Client(), journal.Force())
	require.NoError(t, err)
	assert.Empty(t, left, "nothing left in the journal")
	return res
}

func cgroupCheck(t *testing.T, res *harness.Result) verdict.Check {
	t.Helper()
	c, ok := res.Report.Check(verdict.CheckCgroup)
	require.True(t, ok, "the report has a cgroup check")
	t.Logf("cgroup check: %s: %s %v", c.Status, c.Summary, c.Details)
	return c
}

func podsOn(ctx context.Context, t *testing.T, ns, node string) int {
	t.Helper()
	pods, err := suite.Env.Target.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName == node {
			n++
		}
	}
	return n
}
