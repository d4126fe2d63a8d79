package restore

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kube-rehearse/rehearse/scenarios/dns"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

// dnsRounds is how often each interruption of a DNS fault is repeated.
var dnsRounds = suite.Rounds(1)

// dnsCases interrupt each DNS fault in the middle of its hold. The kill
// leaves the fault in the cluster, and only the journal can undo it; the
// interrupt must undo it itself before the command exits.
var dnsCases = []struct {
	name    string
	signal  syscall.Signal
	set     []string
	faulted func(ctx context.Context, before map[string]string) bool
}{
	{"coredns-outage", syscall.SIGKILL, nil, func(ctx context.Context, _ map[string]string) bool {
		d, err := suite.Env.Target.Client().AppsV1().Deployments(dns.Namespace).Get(ctx, dns.Deployment, metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 0
	}},
	{"coredns-misconfig", syscall.SIGKILL, []string{"mode=" + dns.ModeServfail, "zone=svc.cluster.local"}, func(ctx context.Context, before map[string]string) bool {
		cm, err := suite.Env.Target.Client().CoreV1().ConfigMaps(dns.Namespace).Get(ctx, dns.ConfigMap, metav1.GetOptions{})
		return err == nil && cm.Data[dns.CorefileKey] != before["Corefile"]
	}},
	{"dns-drop", syscall.SIGINT, []string{"nodes=" + node}, func(ctx context.Context, _ map[string]string) bool {
		raw, err := suite.Env.Target.Exec(ctx, node, nil, "iptables-save", "-t", "raw")
		return err == nil && strings.Contains(string(raw), "rehearse-dns-drop")
	}},
}

// TestDNSRevertAfterInterruption breaks name resolution with `rehearse
// run` and interrupts it while the fault holds: after SIGKILL, `rehearse
// restore` puts the cluster's DNS back; after SIGINT, the command does it
// before it exits (code 3). Either way the Corefile is as it was byte for
// byte, CoreDNS has its replicas and serves, every node's resolver file and
// packet filter are as before, and no journal is left.
func TestDNSRevertAfterInterruption(t *testing.T) {
	var fs []features.Feature
	for _, c := range dnsCases {
		fs = append(fs, features.New(c.name+" "+c.signal.String()).
			Assess(fmt.Sprintf("the cluster's DNS is as before, %d times out of %d", dnsRounds, dnsRounds), func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
				for i := 1; i <= dnsRounds; i++ {
					t.Logf("round %d", i)
					before := suite.ClusterDNS(ctx, t)
					args := []string{"run", "--cluster", clusterName, "--scenario", c.name, "--set", "hold=5m",
						"--rate", "20", "--baseline", "1s", "--recovery", "1s", "--out", t.TempDir()}
					for _, s := range c.set {
						args = append(args, "--set", s)
					}
					var out bytes.Buffer
					cmd := exec.Command(binary, args...)
					cmd.Stdout, cmd.Stderr = &out, &out
					require.NoError(t, cmd.Start())
					err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
						if cmd.ProcessState != nil {
							return false, fmt.Errorf("rehearse exited early")
						}
						return entries(ctx, t) >= 1 && c.faulted(ctx, before), nil
					})
					require.NoError(t, err, "the fault was not made and journaled; output:\n%s", &out)
					require.NoError(t, cmd.Process.Signal(c.signal))
					err = cmd.Wait()
					if c.signal == syscall.SIGKILL {
						require.Positive(t, entries(ctx, t), "the kill left the journal")
						b, err := exec.Command(binary, "restore", "--cluster", clusterName).CombinedOutput()
						require.NoError(t, err, "rehearse restore:\n%s", b)
						t.Logf("rehearse restore:\n%s", b)
					} else {
						var exit *exec.ExitError
						require.ErrorAs(t, err, &exit, "an interrupted rehearsal is not a pass; output:\n%s", &out)
						require.Equal(t, 3, exit.ExitCode(), "exit code 3 (interrupted); output:\n%s", &out)
					}
					assert.Equal(t, before, suite.ClusterDNS(ctx, t), "the cluster's DNS is as it was")
					assert.Zero(t, entries(ctx, t), "no journal is left")
					requireCoreDNSReady(ctx, t)
				}
				return ctx
			}).Feature())
	}
	suite.Env.Test.Test(t, suite.Select(fs, "coredns-outage "+syscall.SIGKILL.String())...)
}

// requireCoreDNSReady checks that CoreDNS has as many ready pods as it
// wants (the restore waits for it).
func requireCoreDNSReady(ctx context.Context, t *testing.T) {
	t.Helper()
	d, err := suite.Env.Target.Client().AppsV1().Deployments(dns.Namespace).Get(ctx, dns.Deployment, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, d.Spec.Replicas)
	assert.Equal(t, *d.Spec.Replicas, d.Status.ReadyReplicas, "CoreDNS pods ready")
}
