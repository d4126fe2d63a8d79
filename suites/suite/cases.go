package suite

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-rehearse/rehearse/harness"
)

// A case's namespace goes when the case ends, but the next case does not
// wait for that: it deploys its app meanwhile, and only its rehearsal waits
// until the namespace is gone (pods being torn down during a baseline made
// a fragile app's calls fail, and the baseline could not be judged). The
// teardown of one case and the deploy of the next overlap.
var leaving struct {
	sync.Mutex
	namespaces []string
}

// Rehearse runs one case of a suite: it deploys r's app (in namespace ns),
// waits until the namespaces of earlier cases are gone, rehearses the
// scenarios, logs the result and records its outcome for `make repeat`
// under name, and, when the case ends, deletes ns without waiting. A
// rehearsal that could not run fails the test.
func Rehearse(ctx context.Context, t *testing.T, r *harness.Rehearser, ns, suiteName, name string, builds ...harness.Planned) *harness.Result {
	t.Helper()
	t.Cleanup(func() { leave(t, ns) })
	began := time.Now()
	_, err := r.Deploy(ctx)
	require.NoError(t, err, "deploying the app")
	deployed := time.Now()
	waitLeft(t)
	t.Logf("case set-up: app deployed in %s, earlier cases' namespaces gone %s later",
		deployed.Sub(began).Round(100*time.Millisecond), time.Since(deployed).Round(100*time.Millisecond))
	res, err := r.Rehearse(ctx, builds...)
	Log(t, res)
	Record(t, suiteName, name, res)
	require.NoError(t, err)
	return res
}

// leave deletes a case's namespace and notes it for the next case to wait
// for. Its pods are then deleted at once: how they shut down was judged
// already, and a graceful end (a preStop wait, a drain) would only keep the
// next case waiting. The namespace goes first: a terminating namespace
// takes no new pods, whereas pods deleted before it are replaced by their
// ReplicaSet, and the namespace then waited for the replacements' whole
// grace period (12-27 s of each case's set-up, measured).
func leave(t *testing.T, ns string) {
	ctx := context.Background()
	client := Env.Target.Client()
	if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting namespace %s: %v", ns, err)
		return
	}
	now := int64(0)
	_ = client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &now}, metav1.ListOptions{})
	leaving.Lock()
	leaving.namespaces = append(leaving.namespaces, ns)
	leaving.Unlock()
}

// waitLeft waits, up to 3 minutes, until the namespaces of earlier cases
// are gone.
func waitLeft(t *testing.T) {
	t.Helper()
	leaving.Lock()
	pending := leaving.namespaces
	leaving.namespaces = nil
	leaving.Unlock()
	client := Env.Target.Client()
	for _, ns := range pending {
		err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Errorf("the namespace %s of an earlier case was not gone within 3 minutes: %v", ns, err)
		}
	}
}
