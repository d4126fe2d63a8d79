package observe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func isLag(e timeline.Event) bool { return e.Kind == timeline.EvWatchLag }

func TestLagProbe(t *testing.T) {
	r := start(t, []runtime.Object{pod("web-1", "n1", "10.0.0.1", true)},
		WithoutNodes(), WithoutEvents(), WithoutAppLogs(), WithLagProbe(20*time.Millisecond))
	snapshot := len(r.tl.Events())

	cms, err := r.cs.CoreV1().ConfigMaps(ns).List(bg, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, cms.Items, 1)
	cm := cms.Items[0]
	assert.True(t, strings.HasPrefix(cm.Name, "rehearse-watch-probe-"), cm.Name)
	assert.Len(t, cm.Name, len("rehearse-watch-probe-")+5)
	assert.Equal(t, map[string]string{"app.kubernetes.io/managed-by": "rehearse"}, cm.Labels)

	got := r.waitKinds(5, isLag)
	prev := 0
	for _, e := range got {
		assert.Greater(t, e.Value, time.Duration(0), e.Detail)
		assert.Less(t, e.Value, 500*time.Millisecond, e.Detail)
		var n int
		_, err := fmt.Sscanf(e.Detail, "probe %d", &n)
		require.NoError(t, err, e.Detail)
		assert.Greater(t, n, prev, "each change measured once, in order")
		prev = n
		assert.Greater(t, e.Offset, r.o.startAt)
		assert.Empty(t, e.Pod+e.Node+e.IP+e.UID+e.Name+e.Reason)
	}

	r.o.Stop()
	// The probe's ConfigMap records nothing but the lags: not a note, not
	// a Kubernetes Event, nothing naming it.
	for _, e := range r.tl.Events()[snapshot:] {
		assert.Equal(t, timeline.EvWatchLag, e.Kind, dump([]timeline.Event{e}))
		assert.NotContains(t, e.Detail, cm.Name)
	}
	_, err = r.cs.CoreV1().ConfigMaps(ns).Get(bg, cm.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "deleted at Stop: %v", err)
}

// The probe's ConfigMap is deleted at Stop even when the context Start was
// given has been cancelled (Ctrl-C).
func TestLagProbeDeletedAfterCancel(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	o, err := New(cs, timeline.New(time.Now()), Target{Namespace: ns}, WithoutNodes(), WithoutEvents(), WithSyncTimeout(5*time.Second))
	require.NoError(t, err)
	require.NoError(t, o.Start(ctx))
	list := func() int {
		cms, err := cs.CoreV1().ConfigMaps(ns).List(bg, metav1.ListOptions{})
		require.NoError(t, err)
		return len(cms.Items)
	}
	require.Equal(t, 1, list())
	cancel()
	o.Stop()
	assert.Equal(t, 0, list())
}

func TestLagProbeForbidden(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("RBAC: no"))
	})
	r := startOn(t, cs, nil, WithoutNodes(), WithoutEvents(), WithLagProbe(10*time.Millisecond))
	notes := filter(r.tl.Events(), func(e timeline.Event) bool { return e.Kind == timeline.EvNote })
	require.Len(t, notes, 1, dump(r.tl.Events()))
	assert.Equal(t, "WatchLagUnmeasured", notes[0].Reason)
	assert.Contains(t, notes[0].Detail, "forbidden")
	assert.Contains(t, notes[0].Detail, "grant create, patch, delete, list and watch on configmaps in namespace shop")
	assert.Contains(t, notes[0].Detail, "WithLagProbe(0)")
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, filter(r.tl.Events(), isLag))
}

// The probe's watch may be refused while its ConfigMap was created: noted,
// and Start is not failed by it.
func TestLagProbeWatchForbidden(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("RBAC: no"))
	})
	r := startOn(t, cs, nil, WithoutNodes(), WithoutEvents(), WithLagProbe(10*time.Millisecond))
	got := r.waitKinds(1, func(e timeline.Event) bool { return e.Reason == "WatchLagUnmeasured" })
	assert.Contains(t, got[0].Detail, "the probe's watch did not sync")
	assert.Contains(t, got[0].Detail, "forbidden")
	r.o.Stop()
	deleted := false
	for _, a := range cs.Actions() {
		deleted = deleted || (a.GetVerb() == "delete" && a.GetResource().Resource == "configmaps")
	}
	assert.True(t, deleted, "the ConfigMap it created is deleted")
	assert.Empty(t, filter(r.tl.Events(), isLag))
	assert.Empty(t, filter(r.tl.Events(), isWatchGap))
}

func TestLagProbeDisabled(t *testing.T) {
	cs := fake.NewClientset()
	start := startOn(t, cs, nil, WithoutNodes(), WithoutEvents(), WithLagProbe(0))
	for _, a := range cs.Actions() {
		assert.NotEqual(t, "configmaps", a.GetResource().Resource, "%s %s", a.GetVerb(), a.GetResource())
	}
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, filter(start.tl.Events(), isLag))
}
